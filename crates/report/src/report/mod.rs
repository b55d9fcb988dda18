//! The run's reports under the report directory (`target/happy/` by default): cucumber writes
//! JUnit XML and Cucumber JSON; this module adds what a reader of a report needs to trust it —
//! which run it is (a run id and start time), which cluster kind ran it (a sandbox run says so),
//! the Kubernetes and Istio versions, each failure's class — and the summary line
//! `N passed, N failed, N skipped` (`, N not run` when the run stopped before some).
//!
//! Every report file is written whole or not at all: to a temporary file in the same directory,
//! then renamed over the old one, so an interrupt never leaves a truncated report. A run removes
//! the previous run's reports when it starts and writes its own `run.json` at once, saying it is
//! in progress, then again each time a scenario finishes ([`Progress`]): the file always belongs
//! to the run that wrote it, and a run killed outright (SIGKILL) still leaves one that parses,
//! with every scenario it finished, and says the run did not finish.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod cucumber_json;
mod progress;
mod timing;

pub use progress::{
    IN_PROGRESS, Progress, RunState, RunVerdict, ScenarioOutcome, ScenarioRecord, fill_outcomes,
    summarize,
};
pub use timing::{SLOWEST_SHOWN, StepTiming, describe as describe_slowest, slowest_steps};

pub use crate::cluster::pulls::RegistryPulls;
pub use crate::deviations::DeviationInfo;

/// File names inside the report directory.
pub(crate) const JUNIT_FILE: &str = "junit.xml";
pub(crate) const CUCUMBER_JSON_FILE: &str = "cucumber.json";
pub const RUN_FILE: &str = "run.json";

/// What the run ran on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `kind`, `k3s`, `existing` or `sandbox`.
    pub cluster_kind: String,
    pub cluster_name: String,
    pub kubernetes_version: String,
    /// The Istio version installed, or why none was.
    pub istio_version: String,
    /// Where Istio's images came from (or were to come from, when the install failed), e.g.
    /// `docker.io/istio` (`crate::istio::hub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio_hub: Option<String>,
    /// A note the provisioner made, e.g. "auto chose the sandbox: no Docker daemon answered".
    pub note: Option<String>,
    /// Scenarios skipped because the cluster lacks a capability, with the reason.
    pub skipped: Vec<String>,
    /// This run's id (also the name of its diagnostics directory).
    #[serde(default)]
    pub run_id: String,
    /// When the run started (RFC 3339).
    #[serde(default)]
    pub started_at: String,
    /// When the reports were written (RFC 3339).
    #[serde(default)]
    pub finished_at: String,
    /// Why the run ended before every selected scenario ran (a signal, or an environment
    /// failure every later scenario shares); `None` for a complete run.
    #[serde(default)]
    pub stopped: Option<String>,
    /// Selected scenarios that never ran because the run stopped, with the reason.
    #[serde(default)]
    pub not_run: Vec<String>,
    /// Each failed scenario with its failure's class and message.
    #[serde(default)]
    pub failures: Vec<FailureRecord>,
    /// Explicit settings this cluster kind has no use for (reported, not silently ignored).
    #[serde(default)]
    pub settings_notes: Vec<String>,
    /// Every departure from the workshop's text and whether this run kept it on
    /// (`crate::deviations`).
    #[serde(default)]
    pub deviations: Vec<DeviationInfo>,
    /// The suite's commit (`git rev-parse HEAD` of its checkout, `-dirty` with local changes;
    /// `GITHUB_SHA` in CI), when it could be found: the living documentation says which suite
    /// made a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The CI run that ran the suite (GitHub Actions: its page, where its artifacts — these
    /// reports and the diagnostics bundles — are), when run in CI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run_url: Option<String>,
    /// Where the run is ([`RunState`]): `in-progress` from its start until it ends (a run.json
    /// still saying so once its run is gone was left by a run killed outright), then
    /// `finished`, `stopped` or `provisioning-failed`. Absent in reports written before states
    /// existed (they were written at the end only): read as `finished`, see [`RunInfo::state`].
    #[serde(default, rename = "state")]
    pub run_state: RunState,
    /// The run's own verdict when it could run no scenario (its provisioning failed): whose
    /// failure it was and why. Every selected scenario is then in `not_run` with that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<RunVerdict>,
    /// Every scenario that passed (`Feature — Scenario`), so that run.json alone says how each
    /// finished scenario ended (a run killed outright leaves no Cucumber report).
    #[serde(default)]
    pub passed: Vec<String>,
    /// The run's image pulls per registry (`docker.io`, `ghcr.io`, …), counted from the
    /// kubelet's Events ([`crate::cluster::pulls`]): what counts against a registry's pull
    /// limit, and which pulls failed and were retried.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub pulls: std::collections::BTreeMap<String, RegistryPulls>,
    /// Why the pull counts are missing or incomplete, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulls_note: Option<String>,
    /// What the steps of each finished scenario observed ([`crate::evidence`]), failed steps
    /// included, in the order the scenarios finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<ScenarioEvidence>,
}

pub use crate::evidence::{Evidence, ScenarioEvidence, StepEvidence};

/// One failed scenario, for `run.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// `Feature — Scenario`.
    pub scenario: String,
    /// Whose failure it is.
    pub class: FailureClass,
    /// The failed step's message.
    pub message: String,
    /// The failed step (`Then some responses are 500`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

pub use happy_claims::error::FailureClass;

/// Whose failure a failed step is, from its message: step messages say which with their first
/// words (`claim failed: ` / `environment failed: `, see [`FailureClass::prefix`]); a message
/// with neither counts as a claim failure, so nothing is excused by accident. Cucumber may wrap
/// the message (`Step panicked. Captured output: …`); the class is read from the step's own
/// words.
pub fn class_of_message(message: &str) -> FailureClass {
    let own = message
        .split_once("Captured output: ")
        .map_or(message, |(_, rest)| rest)
        .trim_start();
    FailureClass::of_message(own).unwrap_or(FailureClass::Claim)
}

/// Whether an environment failure of a precondition step (a Background or `Given` step with
/// the text `step`) would only repeat in every scenario still to run: each of them has a step
/// with the same text. `remaining` holds each remaining scenario's step texts (its Background's
/// included). Returns how many would repeat it; `None` when some would not, or none are left.
pub fn shared_by_every_remaining<'a, S>(step: &str, remaining: S) -> Option<usize>
where
    S: IntoIterator<Item = Vec<&'a str>>,
{
    let mut count = 0;
    for steps in remaining {
        if !steps.contains(&step) {
            return None;
        }
        count += 1;
    }
    (count > 0).then_some(count)
}

/// A new run id: the UTC start time to the second and the process id, e.g.
/// `20261201T091500Z-4242` (sortable, and two runs started in the same second differ).
pub fn new_run_id(now: jiff::Timestamp, pid: u32) -> String {
    format!("{}-{pid}", now.strftime("%Y%m%dT%H%M%SZ"))
}

/// The commit of the suite's checkout at `dir`: `GITHUB_SHA` when set (CI checks out that
/// commit), else `git rev-parse HEAD` with `-dirty` when `git status --porcelain` lists local
/// changes; `None` when neither answers (no git, not a checkout).
pub fn suite_commit(dir: &Path) -> Option<String> {
    if let Ok(sha) = std::env::var("GITHUB_SHA")
        && !sha.trim().is_empty()
    {
        return Some(sha.trim().to_string());
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"]).filter(|h| !h.is_empty())?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// The page of the GitHub Actions run this process runs in:
/// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`, from the default
/// variables every step has (docs.github.com/en/actions/reference/variables-reference,
/// "Default environment variables"); `None` outside GitHub Actions.
pub fn ci_run_url() -> Option<String> {
    ci_run_url_from(|name| std::env::var(name).ok())
}

fn ci_run_url_from(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let value = |name: &str| {
        get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let server = value("GITHUB_SERVER_URL")?;
    let repository = value("GITHUB_REPOSITORY")?;
    let run = value("GITHUB_RUN_ID")?;
    Some(format!(
        "{}/{repository}/actions/runs/{run}",
        server.trim_end_matches('/')
    ))
}

/// Write `contents` to `path` whole or not at all: a temporary file in the same directory,
/// flushed to disk, then renamed over `path`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Start a run's reports in `dir`: create it and remove the previous run's reports, so a run
/// killed before it writes its own (SIGKILL) never leaves another run's to pass for its own.
pub fn begin(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the report directory {}: {e}", dir.display()))?;
    for file in [RUN_FILE, JUNIT_FILE, CUCUMBER_JSON_FILE] {
        remove_if_present(&dir.join(file))
            .map_err(|e| format!("the previous run's report stays: {e}"))?;
    }
    Ok(())
}

impl RunInfo {
    /// How the run ended, or that it has not: [`RunInfo::run_state`], except that a report
    /// written before states existed (no `state`, read as finished) and naming why it stopped
    /// is a stopped run.
    pub fn state(&self) -> RunState {
        match (self.run_state, &self.stopped) {
            (RunState::Finished, Some(_)) => RunState::Stopped,
            (state, _) => state,
        }
    }

    /// `(name, value)` pairs for the JUnit `<properties>` element.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut props = vec![
            ("cluster.kind", self.cluster_kind.clone()),
            ("cluster.name", self.cluster_name.clone()),
            ("kubernetes.version", self.kubernetes_version.clone()),
            ("istio.version", self.istio_version.clone()),
        ];
        if let Some(hub) = &self.istio_hub {
            props.push(("istio.hub", hub.clone()));
        }
        if let Some(note) = &self.note {
            props.push(("cluster.note", note.clone()));
        }
        for d in &self.deviations {
            props.push(("deviation", format!("{} {}: {}", d.id, d.state, d.detail)));
        }
        props
    }
}

/// Scenario outcomes of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Skipped because this cluster lacks a capability.
    pub skipped: usize,
    /// Selected but never run because the run stopped first (not counted as skipped here;
    /// JUnit has no such outcome and shows them as skipped with the reason).
    #[serde(default)]
    pub not_run: usize,
}

impl Summary {
    /// Read back a line printed by [`Summary`]'s `Display` (`N passed, N failed, N skipped`,
    /// optionally `, N not run`).
    pub fn parse_line(line: &str) -> Option<Summary> {
        let mut counts = line.trim().split(", ").map(|part| {
            let (n, word) = part.split_once(' ')?;
            Some((n.parse::<usize>().ok()?, word))
        });
        let summary = match (counts.next()??, counts.next()??, counts.next()??) {
            ((passed, "passed"), (failed, "failed"), (skipped, "skipped")) => Summary {
                passed,
                failed,
                skipped,
                not_run: 0,
            },
            _ => return None,
        };
        match (counts.next(), counts.next()) {
            (None, _) => Some(summary),
            (Some(Some((not_run, "not run"))), None) => Some(Summary { not_run, ..summary }),
            _ => None,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )?;
        if self.not_run > 0 {
            write!(f, ", {} not run", self.not_run)?;
        }
        Ok(())
    }
}

/// Add `<properties>` describing the run to every `<testsuite>` of a JUnit report, as its
/// first child (the JUnit schema's place for them; a self-closed `<testsuite/>` is opened to
/// hold them). The report is read and written as XML events, so attribute values are escaped
/// and nothing else of the document changes.
pub(crate) fn add_junit_properties(
    xml: &str,
    properties: &[(&str, String)],
) -> Result<String, String> {
    use quick_xml::events::{BytesEnd, BytesStart, Event};

    let unreadable = |e: &dyn std::fmt::Display| {
        format!("the JUnit report cucumber wrote cannot be read as XML: {e}")
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut writer = quick_xml::Writer::new(Vec::with_capacity(xml.len() * 2));
    let write_properties = |writer: &mut quick_xml::Writer<Vec<u8>>| -> std::io::Result<()> {
        writer.write_event(Event::Start(BytesStart::new("properties")))?;
        for (name, value) in properties {
            let property = BytesStart::new("property")
                .with_attributes([("name", *name), ("value", value.as_str())]);
            writer.write_event(Event::Empty(property))?;
        }
        writer.write_event(Event::End(BytesEnd::new("properties")))
    };
    loop {
        let event = reader.read_event().map_err(|e| unreadable(&e))?;
        let written = match event {
            Event::Eof => break,
            Event::Start(tag) if tag.name().as_ref() == b"testsuite" => writer
                .write_event(Event::Start(tag))
                .and_then(|()| write_properties(&mut writer)),
            Event::Empty(tag) if tag.name().as_ref() == b"testsuite" => {
                let end = tag.to_end().into_owned();
                writer
                    .write_event(Event::Start(tag))
                    .and_then(|()| write_properties(&mut writer))
                    .and_then(|()| writer.write_event(Event::End(end)))
            }
            other => writer.write_event(other),
        };
        written.map_err(|e| unreadable(&e))?;
    }
    String::from_utf8(writer.into_inner()).map_err(|e| unreadable(&e))
}

/// Write the reports of a run in `dir`, each whole (see [`write_atomic`]): the JUnit XML with
/// `<properties>` describing the run, the Cucumber JSON, and `run.json` with the run info and
/// `summary`. `junit_xml`/`cucumber_json` are `None` when the run produced none (it stopped
/// before cucumber started); the old files are then removed rather than left to pass for
/// this run's.
pub fn write(
    dir: &Path,
    info: &RunInfo,
    summary: Summary,
    junit_xml: Option<&str>,
    cucumber_json: Option<&str>,
) -> Result<(), String> {
    let junit_path = dir.join(JUNIT_FILE);
    let json_path = dir.join(CUCUMBER_JSON_FILE);
    match junit_xml {
        Some(xml) => write_atomic(
            &junit_path,
            add_junit_properties(xml, &info.properties())?.as_bytes(),
        )?,
        None => remove_if_present(&junit_path)?,
    }
    match cucumber_json {
        Some(json) => write_atomic(&json_path, json.as_bytes())?,
        None => remove_if_present(&json_path)?,
    }
    write_run_file(dir, info, summary, cucumber_json)
}

/// Write `run.json` alone (see [`write`]): the run info, `summary`, and the slowest steps of
/// `cucumber_json` when there is one.
pub fn write_run_file(
    dir: &Path,
    info: &RunInfo,
    summary: Summary,
    cucumber_json: Option<&str>,
) -> Result<(), String> {
    #[derive(Serialize)]
    struct Run<'a> {
        #[serde(flatten)]
        info: &'a RunInfo,
        summary: Summary,
        /// Where the time went (see [`slowest_steps`]); empty without a Cucumber report.
        slowest_steps: Vec<StepTiming>,
    }
    // The timings only add to the report: a report cucumber wrote that cannot be read for them
    // must not cost the run its run.json.
    let slowest_steps = cucumber_json
        .and_then(|json| slowest_steps(json, SLOWEST_SHOWN).ok())
        .unwrap_or_default();
    let text = serde_json::to_string_pretty(&Run {
        info,
        summary,
        slowest_steps,
    })
    .map_err(|e| format!("cannot encode the run info: {e}"))?;
    write_atomic(&dir.join(RUN_FILE), text.as_bytes())
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// The report files of a run in `dir`, for printing.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    [JUNIT_FILE, CUCUMBER_JSON_FILE, RUN_FILE]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_round_trips() {
        let s = Summary {
            passed: 1,
            failed: 3,
            skipped: 2,
            not_run: 0,
        };
        assert_eq!(s.to_string(), "1 passed, 3 failed, 2 skipped");
        assert_eq!(Summary::parse_line(&s.to_string()), Some(s));
        assert_eq!(Summary::parse_line("1 passed, 3 failed"), None);
        assert_eq!(
            Summary::parse_line("24 scenarios (4 passed, 20 skipped)"),
            None
        );
    }

    #[test]
    fn junit_gets_properties_in_every_suite() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite id="0" name="a"><testcase name="x"/></testsuite><testsuite name="b"/></testsuites>"#;
        let info = RunInfo {
            cluster_kind: "sandbox".into(),
            istio_version: "none <yet>".into(),
            istio_hub: Some("docker.io/istio".into()),
            ..RunInfo::default()
        };
        let out = add_junit_properties(xml, &info.properties()).unwrap();
        assert!(out.contains(r#"<property name="istio.hub" value="docker.io/istio"/>"#));
        assert_eq!(
            out.matches("<properties>").count(),
            2,
            "every suite gets them, a self-closed one opened: {out}"
        );
        assert!(out.contains(r#"<testsuite name="b"><properties>"#), "{out}");
        assert!(
            out.ends_with("</properties></testsuite></testsuites>"),
            "{out}"
        );
        assert!(out.contains(r#"<property name="cluster.kind" value="sandbox"/>"#));
        assert!(out.contains("none &lt;yet&gt;"));
        assert!(!out.contains("name=\"deviation\""));
        let with = RunInfo {
            deviations: vec![DeviationInfo {
                id: "D-x".into(),
                state: "off".into(),
                detail: "switched off: <as written>".into(),
                ..DeviationInfo::default()
            }],
            ..info
        };
        let out = add_junit_properties(xml, &with.properties()).unwrap();
        assert!(
            out.contains(
                r#"<property name="deviation" value="D-x off: switched off: &lt;as written&gt;"/>"#
            ),
            "{out}"
        );
        assert!(out.starts_with(
            r#"<?xml version="1.0"?><testsuites><testsuite id="0" name="a"><properties>"#
        ));
    }

    #[test]
    fn a_junit_report_that_is_not_xml_is_an_error_naming_it() {
        let err = add_junit_properties(
            "<testsuites><testsuite name=\"a\"></testsuites>",
            &[("k", "v".into())],
        )
        .unwrap_err();
        assert!(err.contains("JUnit report"), "{err}");
    }

    #[test]
    fn failure_class_from_the_message_prefix() {
        assert_eq!(
            class_of_message("environment failed: image x cannot be pulled"),
            FailureClass::Environment
        );
        assert_eq!(
            class_of_message("Step panicked. Captured output: environment failed: node not ready"),
            FailureClass::Environment
        );
        assert_eq!(
            class_of_message("claim failed: 3 of 30 responses were 500"),
            FailureClass::Claim
        );
        // Unprefixed messages count as the claim failing: nothing is excused by accident.
        assert_eq!(class_of_message("timed out after 30s"), FailureClass::Claim);
        assert_eq!(
            class_of_message("the claim failed: environment failed: x"),
            FailureClass::Claim
        );
    }

    #[test]
    fn not_run_shows_only_when_some_did_not_run() {
        let s = Summary {
            passed: 1,
            failed: 0,
            skipped: 2,
            not_run: 5,
        };
        assert_eq!(s.to_string(), "1 passed, 0 failed, 2 skipped, 5 not run");
        assert_eq!(Summary::parse_line(&s.to_string()), Some(s));
        assert_eq!(
            Summary::parse_line("1 passed, 0 failed, 2 skipped, 5 later"),
            None
        );
        assert_eq!(
            Summary::parse_line("1 passed, 0 failed, 2 skipped, 5 not run, 1 x"),
            None
        );
    }

    #[test]
    fn the_ci_run_page_from_github_actions_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            ci_run_url_from(vars(&[
                ("GITHUB_SERVER_URL", "https://github.com/"),
                ("GITHUB_REPOSITORY", "o/happy-istio"),
                ("GITHUB_RUN_ID", "42"),
            ])),
            Some("https://github.com/o/happy-istio/actions/runs/42".into())
        );
        assert_eq!(
            ci_run_url_from(vars(&[("GITHUB_SERVER_URL", "https://github.com")])),
            None
        );
    }

    #[test]
    fn run_ids_sort_by_time_and_differ_by_process() {
        let t: jiff::Timestamp = "2026-12-01T09:15:00Z".parse().unwrap();
        assert_eq!(new_run_id(t, 42), "20261201T091500Z-42");
        let later: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        assert!(new_run_id(later, 1) > new_run_id(t, 99999));
    }

    #[test]
    fn reports_are_replaced_whole_and_a_stale_run_json_goes_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RUN_FILE), "{\"run_id\":\"old\"}").unwrap();
        std::fs::write(dir.path().join(JUNIT_FILE), "old").unwrap();
        begin(dir.path()).unwrap();
        assert!(!dir.path().join(RUN_FILE).exists());
        assert!(!dir.path().join(JUNIT_FILE).exists());
        let info = RunInfo {
            run_id: "r1".into(),
            ..RunInfo::default()
        };
        write(
            dir.path(),
            &info,
            Summary::default(),
            Some("<testsuites><testsuite name=\"a\"></testsuite></testsuites>"),
            Some("[]"),
        )
        .unwrap();
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(RUN_FILE)).unwrap())
                .unwrap();
        assert_eq!(run["run_id"], "r1");
        assert_eq!(run["summary"]["not_run"], 0);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "no temporary file left: {names:?}"
        );
        // A run that produced no cucumber reports leaves none of an older run's.
        write(dir.path(), &info, Summary::default(), None, None).unwrap();
        assert!(!dir.path().join(JUNIT_FILE).exists());
        assert!(!dir.path().join(CUCUMBER_JSON_FILE).exists());
    }

    #[test]
    fn a_failure_is_shared_only_when_every_remaining_scenario_has_the_step() {
        let bg = "the namespace istioinaction";
        assert_eq!(
            shared_by_every_remaining(bg, vec![vec![bg, "x"], vec!["y", bg]]),
            Some(2)
        );
        assert_eq!(
            shared_by_every_remaining(bg, vec![vec![bg], vec!["y"]]),
            None
        );
        assert_eq!(shared_by_every_remaining(bg, Vec::<Vec<&str>>::new()), None);
    }
}
