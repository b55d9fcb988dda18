//! The matrix: the workshop's chapters in order, each claim a row, one column per run, and in
//! each cell the claim's verdict on that run in words (passed, failed, skipped with the reason,
//! passed-with-deviation), linking to the scenario that decided it.
//!
//! A claim with several scenarios (C05: the demo profile's gateways) is failed when any of
//! them failed, skipped only when all were skipped, and otherwise passed — the cell then says
//! how many of its scenarios were skipped and why. It passed with a deviation when this run
//! kept on a deviation from the workshop's text that touches the claim (run.json's
//! `deviations`, by their `claims` or the scenario's `@D-…` tags).
//!
//! A run that did not run to its end keeps its column, which says how it ended
//! ([`super::model::Ending`]): its finished scenarios' verdicts, and for the rest why they did
//! not run — or, when its provisioning failed, a failure of every claim, the environment's.

use std::collections::BTreeMap;

use super::features::Chapter;
use super::history::{HistoryCell, HistoryRun};
use super::model::{Ending, NOT_SELECTED, Outcome, Run};
use crate::report::FailureClass;

/// The verdict type is the model's, which the history reads too.
pub use super::model::Status;

/// One run's column heading.
#[derive(Clone, Debug)]
pub struct Column {
    pub run_id: String,
    pub istio_version: String,
    /// Where the run's Istio images came from (absent in reports from before it was recorded).
    pub istio_hub: Option<String>,
    pub line: String,
    pub cluster_kind: String,
    pub kubernetes_version: String,
    pub night: String,
    pub started_at: String,
    pub commit: Option<String>,
    pub sandbox: bool,
    /// How the run ended, when it did not run to its end (stopped, did not finish,
    /// provisioning failed).
    pub ending: Option<Ending>,
}

/// One cell.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The run's id (its column).
    pub run_id: String,
    pub status: Status,
    /// What the cell says, in words (it begins with the status word).
    pub text: String,
    /// Why it was skipped, or the failure's class.
    pub reason: Option<String>,
    /// `chapters/<stem>.html#<anchor>` of the scenario that decided the verdict.
    pub href: String,
    /// False when the run selected none of the claim's scenarios (a filtered run): the
    /// history keeps no verdict for it.
    pub selected: bool,
}

/// One claim's row.
#[derive(Clone, Debug)]
pub struct Row {
    pub claim: String,
    /// The one-line statement: its scenarios' names.
    pub statement: String,
    /// `chapters/<stem>.html#<claim>`: its first scenario.
    pub href: String,
    pub cells: Vec<Cell>,
}

/// One chapter's rows.
#[derive(Clone, Debug)]
pub struct ChapterRows {
    pub stem: String,
    pub title: String,
    pub rows: Vec<Row>,
}

/// One scenario's outcome on one run, with the deviations it ran with.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub outcome: Outcome,
    pub deviations: Vec<String>,
}

impl ScenarioResult {
    pub fn status(&self) -> Status {
        match &self.outcome {
            Outcome::Failed { .. } => Status::Failed,
            Outcome::Skipped(_) => Status::Skipped,
            Outcome::Passed if self.deviations.is_empty() => Status::Passed,
            Outcome::Passed => Status::PassedWithDeviation,
        }
    }
}

/// The matrix, and every scenario's result on every run (for the chapter pages).
#[derive(Clone, Debug)]
pub struct Matrix {
    pub columns: Vec<Column>,
    pub chapters: Vec<ChapterRows>,
    /// `results[chapter][scenario][run]`, in the chapters' and runs' order.
    pub results: Vec<Vec<Vec<ScenarioResult>>>,
}

impl Matrix {
    pub fn new(chapters: &[Chapter], runs: &[Run]) -> Self {
        let columns = runs
            .iter()
            .map(|r| Column {
                run_id: r.id(),
                istio_version: r.info.istio_version.clone(),
                istio_hub: r.info.istio_hub.clone(),
                line: r.version_line(),
                cluster_kind: r.info.cluster_kind.clone(),
                // Not known when no cluster came up (provisioning failed).
                kubernetes_version: if r.info.kubernetes_version.is_empty() {
                    "unknown".to_string()
                } else {
                    r.info.kubernetes_version.clone()
                },
                night: r.night(),
                started_at: r.info.started_at.clone(),
                commit: r.info.commit.clone(),
                sandbox: r.is_sandbox(),
                ending: r.ending(),
            })
            .collect();
        let results: Vec<Vec<Vec<ScenarioResult>>> = chapters
            .iter()
            .map(|chapter| {
                chapter
                    .scenarios
                    .iter()
                    .map(|s| {
                        runs.iter()
                            .map(|run| {
                                let outcome = match run.find(&chapter.stem, s.line, &s.name) {
                                    Some(found) => found.outcome.clone(),
                                    None => run.absent_outcome(&chapter.title, &s.name),
                                };
                                ScenarioResult {
                                    outcome,
                                    deviations: run.deviations_for(&s.claim, &s.tags),
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let chapter_rows = chapters
            .iter()
            .zip(&results)
            .map(|(chapter, scenario_results)| {
                let mut claims: Vec<&str> = Vec::new();
                for s in &chapter.scenarios {
                    if !claims.contains(&s.claim.as_str()) {
                        claims.push(&s.claim);
                    }
                }
                let rows = claims
                    .into_iter()
                    .map(|claim| {
                        let members: Vec<usize> = (0..chapter.scenarios.len())
                            .filter(|&i| chapter.scenarios[i].claim == claim)
                            .collect();
                        let statement = members
                            .iter()
                            .map(|&i| chapter.scenarios[i].name.as_str())
                            .collect::<Vec<_>>()
                            .join("; ");
                        let cells = (0..runs.len())
                            .map(|run| {
                                let run_id = runs[run].id();
                                let parts: Vec<(&str, &ScenarioResult)> = members
                                    .iter()
                                    .map(|&i| {
                                        (
                                            chapter.scenarios[i].anchor.as_str(),
                                            &scenario_results[i][run],
                                        )
                                    })
                                    .collect();
                                Cell {
                                    run_id,
                                    ..cell(&chapter.stem, &parts)
                                }
                            })
                            .collect();
                        Row {
                            claim: claim.to_string(),
                            href: format!(
                                "chapters/{}.html#{}",
                                chapter.stem, chapter.scenarios[members[0]].anchor
                            ),
                            statement,
                            cells,
                        }
                    })
                    .collect();
                ChapterRows {
                    stem: chapter.stem.clone(),
                    title: chapter.title.clone(),
                    rows,
                }
            })
            .collect();
        Matrix {
            columns,
            chapters: chapter_rows,
            results,
        }
    }

    /// Every run of the matrix as the history keeps it.
    pub fn history_runs(&self) -> Vec<HistoryRun> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let claims: BTreeMap<String, HistoryCell> = self
                    .chapters
                    .iter()
                    .flat_map(|ch| ch.rows.iter())
                    .filter(|row| row.cells[i].selected)
                    .map(|row| {
                        let cell = &row.cells[i];
                        (
                            row.claim.clone(),
                            HistoryCell {
                                status: cell.status,
                                reason: cell.reason.clone(),
                            },
                        )
                    })
                    .collect();
                HistoryRun {
                    run_id: c.run_id.clone(),
                    night: c.night.clone(),
                    started_at: c.started_at.clone(),
                    istio_version: c.istio_version.clone(),
                    line: c.line.clone(),
                    cluster_kind: c.cluster_kind.clone(),
                    kubernetes_version: c.kubernetes_version.clone(),
                    commit: c.commit.clone(),
                    ended: c.ending.as_ref().map(|e| e.text.clone()),
                    claims,
                }
            })
            .collect()
    }

    /// Every claim row in chapter order.
    pub fn rows(&self) -> impl Iterator<Item = (&ChapterRows, &Row)> {
        self.chapters
            .iter()
            .flat_map(|ch| ch.rows.iter().map(move |r| (ch, r)))
    }
}

fn distinct(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// One claim's cell from its scenarios' results (`(anchor, result)`) on one run.
fn cell(stem: &str, parts: &[(&str, &ScenarioResult)]) -> Cell {
    let href = |anchor: &str| format!("chapters/{stem}.html#{anchor}");
    let failed: Vec<_> = parts
        .iter()
        .filter_map(|(a, r)| match &r.outcome {
            Outcome::Failed { class, .. } => Some((*a, *class)),
            _ => None,
        })
        .collect();
    if let Some((anchor, _)) = failed.first() {
        let classes = distinct(failed.iter().map(|(_, c)| c.as_str().to_string()));
        let class_words = classes.join(" and ");
        let which = if parts.len() > 1 {
            format!(", {} of {} scenarios", failed.len(), parts.len())
        } else {
            String::new()
        };
        let any_claim = failed.iter().any(|(_, c)| *c == FailureClass::Claim);
        let reason = if any_claim {
            "the claim failed"
        } else {
            "the environment failed"
        };
        return Cell {
            run_id: String::new(),
            status: Status::Failed,
            text: format!("failed ({class_words} failure{which})"),
            reason: Some(reason.to_string()),
            href: href(anchor),
            selected: true,
        };
    }
    let skips: Vec<(&str, &str)> = parts
        .iter()
        .filter_map(|(a, r)| match &r.outcome {
            Outcome::Skipped(reason) => Some((*a, reason.as_str())),
            _ => None,
        })
        .collect();
    let reasons = distinct(skips.iter().map(|(_, r)| r.to_string())).join("; ");
    if skips.len() == parts.len() {
        let anchor = parts.first().map_or("", |(a, _)| *a);
        return Cell {
            run_id: String::new(),
            status: Status::Skipped,
            text: format!("skipped: {reasons}"),
            selected: reasons != NOT_SELECTED,
            reason: Some(reasons),
            href: href(anchor),
        };
    }
    let deviations = distinct(
        parts
            .iter()
            .filter(|(_, r)| r.outcome == Outcome::Passed)
            .flat_map(|(_, r)| r.deviations.iter().cloned()),
    );
    let anchor = parts
        .iter()
        .find(|(_, r)| r.outcome == Outcome::Passed)
        .map_or("", |(a, _)| *a);
    let (status, mut text) = if deviations.is_empty() {
        (Status::Passed, "passed".to_string())
    } else {
        (
            Status::PassedWithDeviation,
            format!("passed-with-deviation ({})", deviations.join(", ")),
        )
    };
    if !skips.is_empty() {
        text.push_str(&format!(
            "; {} of {} scenarios skipped: {reasons}",
            skips.len(),
            parts.len()
        ));
    }
    Cell {
        run_id: String::new(),
        status,
        text,
        reason: (!skips.is_empty()).then_some(reasons),
        href: href(anchor),
        selected: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, deviations: &[&str]) -> ScenarioResult {
        ScenarioResult {
            outcome,
            deviations: deviations.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn failed(class: FailureClass) -> Outcome {
        Outcome::Failed {
            step: "Then x".into(),
            message: format!("{}x", class.prefix()),
            class,
        }
    }

    #[test]
    fn a_claim_fails_when_any_scenario_fails_and_links_to_that_one() {
        let ok = result(Outcome::Passed, &[]);
        let env = result(failed(FailureClass::Environment), &[]);
        let c = cell("02-x", &[("C05", &ok), ("C05-2", &env)]);
        assert_eq!(c.status, Status::Failed);
        assert_eq!(c.text, "failed (environment failure, 1 of 2 scenarios)");
        assert_eq!(c.href, "chapters/02-x.html#C05-2");
        assert_eq!(c.reason.as_deref(), Some("the environment failed"));
        let claim = result(failed(FailureClass::Claim), &[]);
        let c = cell("02-x", &[("C05", &claim), ("C05-2", &env)]);
        assert_eq!(
            c.text,
            "failed (claim and environment failure, 2 of 2 scenarios)"
        );
        assert_eq!(c.reason.as_deref(), Some("the claim failed"));
    }

    #[test]
    fn skips_deviations_and_unselected_scenarios() {
        let skipped = result(Outcome::Skipped("@kiali: no Kiali".into()), &[]);
        let dev = result(Outcome::Passed, &["D-ingress-address"]);
        let c = cell("04-x", &[("C12", &dev), ("C12-2", &skipped)]);
        assert_eq!(c.status, Status::PassedWithDeviation);
        assert_eq!(
            c.text,
            "passed-with-deviation (D-ingress-address); 1 of 2 scenarios skipped: @kiali: no Kiali"
        );
        let c = cell("04-x", &[("C14", &skipped)]);
        assert_eq!(c.status, Status::Skipped);
        assert_eq!(c.text, "skipped: @kiali: no Kiali");
        assert!(c.selected);
        let unselected = result(Outcome::Skipped(NOT_SELECTED.into()), &["D-x"]);
        let c = cell("04-x", &[("C14", &unselected)]);
        assert_eq!(c.status, Status::Skipped);
        assert!(!c.selected, "a filtered run says nothing of the claim");
        // A deviation counts only for a scenario that passed with it.
        let c = cell(
            "04-x",
            &[
                ("C12", &result(Outcome::Passed, &[])),
                ("C12-2", &unselected),
            ],
        );
        assert_eq!(c.status, Status::Passed);
    }
}
