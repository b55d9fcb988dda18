//! The history: every claim's verdict night after night, kept without a database in
//! `history.json`, published with the site and read back the next night. Each night's runs are
//! merged in (a run seen again replaces itself), and the file is bounded to the last `days`
//! nights.
//!
//! The index page shows it per claim and version line (the Istio minor, `dev` its own line) as
//! a strip of the last nights, as Kubernetes' TestGrid shows CI history, and for a claim failing
//! on the line's latest night, the night it started failing and the version it failed on.
//!
//! The file's format is [`History`], versioned by its `schema` field ([`SCHEMA`]); a file of a
//! newer schema is refused rather than misread.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DocsError;
use super::model::Status;

/// The file's name in the site.
pub const HISTORY_FILE: &str = "history.json";

/// The schema this code reads and writes.
pub(crate) const SCHEMA: u32 = 1;

/// `history.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// Every run kept, oldest first.
    pub runs: Vec<HistoryRun>,
}

impl Default for History {
    fn default() -> Self {
        History {
            schema: SCHEMA,
            runs: Vec::new(),
        }
    }
}

/// One run in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRun {
    pub run_id: String,
    /// The UTC date it started (`2026-12-01`).
    pub night: String,
    pub started_at: String,
    pub istio_version: String,
    /// `1.31`, or `dev`.
    pub line: String,
    pub cluster_kind: String,
    pub kubernetes_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// How the run ended when it did not run to its end (`stopped by SIGINT`, `did not
    /// finish: …`, `failed (environment failure): provisioning failed: …`); absent for a run
    /// that ran to its end. An optional field: schema 1 readers that predate it ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// Each claim's verdict.
    pub claims: BTreeMap<String, HistoryCell>,
}

/// One claim's verdict on one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCell {
    pub status: Status,
    /// Why it was skipped, or whose failure it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl History {
    /// Read the previous publication's history: `None` when the file does not exist (the first
    /// night); an error naming the file when it is malformed or of another schema.
    pub fn load(path: &Path) -> Result<Option<History>, DocsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DocsError::input(path, format!("cannot read: {e}"))),
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|m| DocsError::input(path, m))
    }

    /// Parse a history file's text; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<History, String> {
        #[derive(Deserialize)]
        struct Versioned {
            schema: Option<serde_json::Value>,
        }
        let versioned: Versioned = serde_json::from_str(text)
            .map_err(|e| format!("not a history file (JSON object expected): {e}"))?;
        match versioned.schema {
            None => return Err("not a history file: it has no \"schema\" field".into()),
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(SCHEMA.into()) => {}
            Some(other) => {
                return Err(format!(
                    "history schema {other} is not one this happy-docs reads (it reads schema \
                     {SCHEMA}); build the site with the happy-docs that wrote it, or start a \
                     new history by leaving --history out"
                ));
            }
        }
        serde_json::from_str(text).map_err(|e| format!("not a schema-{SCHEMA} history: {e}"))
    }

    /// Add `runs`; a run already kept (same id) is replaced. Runs stay ordered by night, then
    /// start time.
    pub fn merge(&mut self, runs: Vec<HistoryRun>) {
        let new_ids: BTreeSet<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        self.runs.retain(|r| !new_ids.contains(&r.run_id));
        self.runs.extend(runs);
        self.runs.sort_by(|a, b| {
            (&a.night, &a.started_at, &a.run_id).cmp(&(&b.night, &b.started_at, &b.run_id))
        });
    }

    /// Keep the runs of the last `days` nights, counted back from the newest night kept; runs
    /// without a readable date cannot be placed on a night and are dropped.
    pub fn bound(&mut self, days: u32) {
        self.runs
            .retain(|r| r.night.parse::<jiff::civil::Date>().is_ok());
        let Some(newest) = self
            .runs
            .iter()
            .filter_map(|r| r.night.parse::<jiff::civil::Date>().ok())
            .max()
        else {
            return;
        };
        let span = jiff::Span::new().days(i64::from(days.saturating_sub(1)));
        let Ok(first) = newest.checked_sub(span) else {
            return;
        };
        self.runs.retain(|r| {
            r.night
                .parse::<jiff::civil::Date>()
                .is_ok_and(|night| night >= first)
        });
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The version lines in the history: `dev` first, then the newest minor first.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .runs
            .iter()
            .map(|r| r.line.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        lines.sort_by_key(|l| line_order(l));
        lines
    }

    /// The strips of one version line: its last `nights` nights, and a row per claim
    /// (`claims` first, in their order, then any others the history knows).
    pub fn strips(&self, line: &str, claims: &[String], nights: usize) -> Strips {
        let runs: Vec<&HistoryRun> = self.runs.iter().filter(|r| r.line == line).collect();
        let all_nights: Vec<String> = runs
            .iter()
            .map(|r| r.night.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let shown: Vec<String> = all_nights[all_nights.len().saturating_sub(nights)..].to_vec();
        let mut claim_ids: Vec<String> = claims.to_vec();
        let others: BTreeSet<&String> = runs
            .iter()
            .flat_map(|r| r.claims.keys())
            .filter(|c| !claims.contains(c))
            .collect();
        claim_ids.extend(others.into_iter().cloned());
        // Per night, the runs of that night (in start order).
        let mut by_night: BTreeMap<&str, Vec<&HistoryRun>> = BTreeMap::new();
        for r in &runs {
            by_night.entry(r.night.as_str()).or_default().push(r);
        }
        let rows = claim_ids
            .into_iter()
            .map(|claim| {
                let verdicts: Vec<(&str, Option<NightVerdict>)> = all_nights
                    .iter()
                    .map(|n| {
                        let night_runs = by_night.get(n.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                        (n.as_str(), night_verdict(night_runs, &claim))
                    })
                    .collect();
                let failing_since = failing_since(&verdicts);
                let cells = verdicts[verdicts.len().saturating_sub(nights)..]
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect();
                StripRow {
                    claim,
                    cells,
                    failing_since,
                }
            })
            .collect();
        Strips {
            line: line.to_string(),
            nights: shown,
            rows,
        }
    }
}

/// The order version lines are shown in: `dev` first, then the newest minor first, then any
/// other (unparseable) line by name.
pub(crate) fn line_order(line: &str) -> (u8, Vec<u64>, String) {
    if line == "dev" {
        return (0, Vec::new(), String::new());
    }
    let parts: Option<Vec<u64>> = line.split('.').map(|p| p.parse().ok()).collect();
    match parts {
        Some(p) => (
            1,
            p.into_iter().map(|n| u64::MAX - n).collect(),
            String::new(),
        ),
        None => (2, Vec::new(), line.to_string()),
    }
}

/// One claim's verdict for one night of a line: the weightiest of that night's runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NightVerdict {
    pub status: Status,
    pub istio_version: String,
    pub reason: Option<String>,
}

fn night_verdict(runs: &[&HistoryRun], claim: &str) -> Option<NightVerdict> {
    runs.iter()
        .filter_map(|r| r.claims.get(claim).map(|c| (r, c)))
        .max_by_key(|(_, c)| c.status.weight())
        .map(|(r, c)| NightVerdict {
            status: c.status,
            istio_version: r.istio_version.clone(),
            reason: c.reason.clone(),
        })
}

/// For a claim failing on its line's latest night with a verdict: the first night of that
/// failure — the earliest failed night after the last night it held (skipped nights and nights
/// without a run say nothing either way) — and the version it failed on then.
fn failing_since(verdicts: &[(&str, Option<NightVerdict>)]) -> Option<(String, String)> {
    let mut known = verdicts
        .iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| (*n, v)))
        .filter(|(_, v)| v.status != Status::Skipped)
        .rev();
    let (night, latest) = known.next()?;
    if latest.status != Status::Failed {
        return None;
    }
    let mut first = (night, latest);
    for (night, v) in known {
        if v.status != Status::Failed {
            break;
        }
        first = (night, v);
    }
    Some((first.0.to_string(), first.1.istio_version.clone()))
}

/// One version line's strips.
#[derive(Clone, Debug)]
pub struct Strips {
    pub line: String,
    /// The nights shown, oldest first.
    pub nights: Vec<String>,
    pub rows: Vec<StripRow>,
}

/// One claim's strip.
#[derive(Clone, Debug)]
pub struct StripRow {
    pub claim: String,
    /// One per shown night; `None` when no run of that night reported the claim.
    pub cells: Vec<Option<NightVerdict>>,
    /// `(night, istio version)` the current failure began, when it is failing.
    pub failing_since: Option<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, night: &str, version: &str, line: &str, c01: Status) -> HistoryRun {
        HistoryRun {
            run_id: id.into(),
            night: night.into(),
            started_at: format!("{night}T02:00:00Z"),
            istio_version: version.into(),
            line: line.into(),
            cluster_kind: "kind".into(),
            kubernetes_version: "v1.33.1".into(),
            commit: None,
            ended: None,
            claims: [(
                "C01".to_string(),
                HistoryCell {
                    status: c01,
                    reason: None,
                },
            )]
            .into(),
        }
    }

    #[test]
    fn merge_replaces_a_run_seen_again_and_bound_keeps_the_last_nights() {
        let mut h = History::default();
        h.merge(vec![
            run("b", "2026-01-02", "1.31.0", "1.31", Status::Passed),
            run("a", "2026-01-01", "1.31.0", "1.31", Status::Passed),
        ]);
        h.merge(vec![run(
            "b",
            "2026-01-02",
            "1.31.0",
            "1.31",
            Status::Failed,
        )]);
        assert_eq!(h.runs.len(), 2);
        assert_eq!(h.runs[0].run_id, "a");
        assert_eq!(h.runs[1].claims["C01"].status, Status::Failed);
        h.merge(vec![run(
            "c",
            "2026-01-10",
            "1.31.1",
            "1.31",
            Status::Passed,
        )]);
        h.bound(9);
        let ids: Vec<&str> = h.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(
            ids,
            ["b", "c"],
            "2026-01-02 is the 9th night back from 2026-01-10"
        );
        h.bound(1);
        assert_eq!(h.runs.len(), 1);
    }

    #[test]
    fn failing_since_is_the_first_failed_night_after_the_last_pass() {
        let mut h = History::default();
        h.merge(vec![
            run("1", "2026-01-01", "1.31.0", "1.31", Status::Failed),
            run("2", "2026-01-02", "1.31.0", "1.31", Status::Passed),
            run("3", "2026-01-03", "1.31.1", "1.31", Status::Failed),
            run("4", "2026-01-04", "1.31.1", "1.31", Status::Skipped),
            run("5", "2026-01-05", "1.31.2", "1.31", Status::Failed),
            run("d", "2026-01-05", "1.32.0-alpha.x", "dev", Status::Passed),
        ]);
        let s = h.strips("1.31", &["C01".into()], 3);
        assert_eq!(s.nights, ["2026-01-03", "2026-01-04", "2026-01-05"]);
        let row = &s.rows[0];
        assert_eq!(
            row.failing_since,
            Some(("2026-01-03".to_string(), "1.31.1".to_string()))
        );
        assert_eq!(row.cells[1].as_ref().unwrap().status, Status::Skipped);
        assert_eq!(
            h.strips("dev", &["C01".into()], 3).rows[0].failing_since,
            None
        );
        assert_eq!(h.lines(), ["dev", "1.31"]);
    }

    #[test]
    fn schemas_other_than_1_and_malformed_files_are_refused_with_the_file_named() {
        let h = History::parse(r#"{"schema":1,"runs":[]}"#).unwrap();
        assert!(h.runs.is_empty());
        let e = History::parse(r#"{"schema":2,"runs":[],"lines":{}}"#).unwrap_err();
        assert!(
            e.contains("schema 2") && e.contains("reads schema 1"),
            "{e}"
        );
        assert!(
            History::parse(r#"{"runs":[]}"#)
                .unwrap_err()
                .contains("no \"schema\"")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        assert_eq!(
            History::load(&path).unwrap(),
            None,
            "absent: the first night"
        );
        std::fs::write(&path, "{\"schema\":1,\"runs\":[{]}").unwrap();
        let e = History::load(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        let roundtrip = {
            let mut h = History::default();
            h.merge(vec![run(
                "a",
                "2026-01-01",
                "1.31.0",
                "1.31",
                Status::PassedWithDeviation,
            )]);
            h
        };
        assert_eq!(
            History::parse(&roundtrip.to_json().unwrap()).unwrap(),
            roundtrip
        );
        assert!(
            roundtrip
                .to_json()
                .unwrap()
                .contains("\"passed-with-deviation\"")
        );
    }
}
