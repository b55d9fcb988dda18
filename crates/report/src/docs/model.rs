//! One run as the site sees it: its `run.json` (what ran it, on what, with which deviations,
//! how it ended, and how each scenario ended: passed, failed with its class, skipped or never
//! run, with the reasons) and its `cucumber.json` (every scenario's steps with their statuses
//! and failure messages), read from the run's report directory as `crate::report` writes it.
//!
//! A run that did not get to the end has no `cucumber.json` (that is written at the end) but
//! always a `run.json` (`crate::report::Progress`): its scenarios' outcomes come from there.
//! Of the scenarios such a run never ran, a run whose provisioning failed says they failed, as
//! the environment's failure, with the cause; a run left `in-progress` (killed outright) says
//! it did not finish; a stopped one says why it stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DocsError;
use crate::istio::version::IstioVersion;
use crate::report::{self, FailureClass, RunInfo, RunState, Summary, cucumber_json};

/// A claim's verdict on one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Passed,
    PassedWithDeviation,
    Skipped,
    Failed,
}

impl Status {
    /// The word the pages and `data-status` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::PassedWithDeviation => "passed-with-deviation",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }

    /// One letter for the history strips (the legend spells them out).
    pub fn letter(self) -> &'static str {
        match self {
            Status::Passed => "P",
            Status::PassedWithDeviation => "D",
            Status::Skipped => "S",
            Status::Failed => "F",
        }
    }

    /// Which of two runs' verdicts of one night stands for the night: a failure anywhere,
    /// then a pass (with a deviation before without), and a skip only when nothing ran.
    pub fn weight(self) -> u8 {
        match self {
            Status::Failed => 3,
            Status::PassedWithDeviation => 2,
            Status::Passed => 1,
            Status::Skipped => 0,
        }
    }

    /// Whether it counts as the claim holding.
    pub fn holds(self) -> bool {
        matches!(self, Status::Passed | Status::PassedWithDeviation)
    }
}

/// The reason of a scenario a run did not select (a `--tags`/`--name` filter left it out):
/// the run says nothing about it, so the history does not record it.
pub(crate) const NOT_SELECTED: &str = "not selected in this run";

/// One run's reports.
#[derive(Clone, Debug)]
pub struct Run {
    /// The report directory it was read from.
    pub dir: PathBuf,
    pub info: RunInfo,
    pub summary: Option<Summary>,
    /// Every scenario cucumber reported, in report order.
    pub scenarios: Vec<ScenarioRun>,
}

/// One scenario of a run.
#[derive(Clone, Debug)]
pub struct ScenarioRun {
    /// The feature file's stem (`03-ingress`).
    pub stem: String,
    pub feature: String,
    pub name: String,
    /// Its line in the feature file.
    pub line: usize,
    /// Background steps first (marked), then the scenario's own.
    pub steps: Vec<StepRun>,
    pub outcome: Outcome,
}

/// One step's result.
#[derive(Clone, Debug)]
pub struct StepRun {
    pub keyword: String,
    pub text: String,
    /// cucumber's status word: passed, failed, skipped, undefined, …
    pub status: String,
    pub error: Option<String>,
    /// Its line in the feature file.
    pub line: usize,
    /// Whether it belongs to the feature's Background.
    pub background: bool,
}

/// How a scenario ended in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed {
        /// The failed step (`When I request / …`).
        step: String,
        message: String,
        class: FailureClass,
    },
    /// Skipped (this cluster cannot run it) or never run (the run stopped), with the reason.
    Skipped(String),
}

impl Run {
    /// The id naming this run's column (the run id, or the directory's name for reports
    /// written before run ids existed).
    pub fn id(&self) -> String {
        if self.info.run_id.is_empty() {
            self.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into())
        } else {
            self.info.run_id.clone()
        }
    }

    /// The night it ran: the UTC date it started (`2026-12-01`), or `unknown`.
    pub fn night(&self) -> String {
        night_of(&self.info.started_at)
    }

    /// Its version line: the Istio minor (`1.31`), `dev` for dev builds.
    pub fn version_line(&self) -> String {
        version_line(&self.info.istio_version)
    }

    /// The deviations this run kept on that change the whole run (its column states them).
    pub fn whole_run_deviations(&self) -> Vec<(String, String)> {
        self.info
            .deviations
            .iter()
            .filter(|d| d.state == "on" && crate::deviations::WHOLE_RUN.contains(&d.id.as_str()))
            .map(|d| (d.id.clone(), d.title.clone()))
            .collect()
    }

    pub fn is_sandbox(&self) -> bool {
        self.info.cluster_kind == "sandbox"
    }

    /// The deviations this run kept on that touch `claim` (or whose re-check it is), those of
    /// the whole run ([`crate::deviations::WHOLE_RUN`]) left out: its column says them once.
    pub fn deviations_for(&self, claim: &str, tags: &[String]) -> Vec<String> {
        self.info
            .deviations
            .iter()
            .filter(|d| d.state == "on")
            .filter(|d| !crate::deviations::WHOLE_RUN.contains(&d.id.as_str()))
            .filter(|d| d.claims.iter().any(|c| c == claim) || tags.contains(&d.id))
            .map(|d| d.id.clone())
            .collect()
    }

    /// The outcome run.json gives a scenario (`Feature — Scenario`) it skipped or never ran:
    /// skipped with the reason, or for a scenario it never ran, see [`Run::not_run_outcome`].
    fn skip_outcome(&self, feature: &str, scenario: &str) -> Option<Outcome> {
        let prefix = format!("{feature} — {scenario}: ");
        let find = |entries: &[String]| {
            entries
                .iter()
                .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_string))
        };
        if let Some(reason) = find(&self.info.skipped) {
            return Some(Outcome::Skipped(reason));
        }
        find(&self.info.not_run).map(|reason| self.not_run_outcome(reason))
    }

    /// A scenario this run never ran (run.json's `not_run`, with `reason`): failed, with the
    /// run's own verdict, when the run could run none (its provisioning failed: the
    /// environment's failure); "did not finish" when the run was killed outright (its run.json
    /// still says in progress); else skipped with the reason (the run stopped first).
    fn not_run_outcome(&self, reason: String) -> Outcome {
        if let Some(verdict) = &self.info.verdict {
            return Outcome::Failed {
                step: "(the run) the cluster is provisioned".to_string(),
                message: with_class_prefix(verdict.class, &verdict.message),
                class: verdict.class,
            };
        }
        if self.info.state() == RunState::InProgress {
            return Outcome::Skipped(DID_NOT_FINISH.to_string());
        }
        Outcome::Skipped(reason)
    }

    /// How the run ended, for its column, when it did not simply run to its end.
    pub fn ending(&self) -> Option<Ending> {
        let info = &self.info;
        match info.state() {
            RunState::Finished => None,
            RunState::Stopped => Some(Ending {
                state: "stopped",
                text: info
                    .stopped
                    .clone()
                    .unwrap_or_else(|| "stopped".to_string()),
            }),
            RunState::InProgress => {
                let finished = info.passed.len() + info.failures.len() + info.skipped.len();
                let selected = finished + info.not_run.len();
                Some(Ending {
                    state: "did-not-finish",
                    text: format!(
                        "did not finish: killed before it could write how it ended; {finished} \
                         of {selected} scenario(s) had finished"
                    ),
                })
            }
            RunState::ProvisioningFailed => {
                let cause = info
                    .verdict
                    .as_ref()
                    .map(|v| v.message.clone())
                    .or_else(|| info.stopped.clone())
                    .unwrap_or_else(|| "provisioning failed".to_string());
                let class = info
                    .verdict
                    .as_ref()
                    .map_or(FailureClass::Environment, |v| v.class);
                Some(Ending {
                    state: "provisioning-failed",
                    text: format!(
                        "failed ({} failure): {}",
                        class.as_str(),
                        cause.lines().next().unwrap_or_default()
                    ),
                })
            }
        }
    }
}

/// How a run ended, when it did not run to its end: what its column says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// `stopped`, `did-not-finish` or `provisioning-failed` (the column's `data-state`).
    pub state: &'static str,
    /// In words, beginning with the state (`stopped by SIGINT`, `failed (environment failure):
    /// provisioning failed: …`).
    pub text: String,
}

/// Why a scenario of a run killed outright did not run.
pub(crate) const DID_NOT_FINISH: &str =
    "not run: the run did not finish (it was killed before it could write how it ended)";

/// `message` as a step says it, its class in its first words.
fn with_class_prefix(class: FailureClass, message: &str) -> String {
    if FailureClass::of_message(message).is_some() {
        message.to_string()
    } else {
        format!("{}{message}", class.prefix())
    }
}

/// The UTC date of an RFC 3339 time, or `unknown`.
pub(crate) fn night_of(started_at: &str) -> String {
    started_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The version line of an Istio version: `1.31` for 1.31.x releases and pre-releases, `dev`
/// for dev builds (and for the nightly's unresolved dev cell); anything else is its own line.
pub(crate) fn version_line(istio_version: &str) -> String {
    if istio_version == crate::istio::releases::UNRESOLVED_DEV {
        return "dev".into();
    }
    match istio_version.parse::<IstioVersion>() {
        Ok(v) if v.is_dev() => "dev".into(),
        Ok(v) => format!("{}.{}", v.major, v.minor),
        Err(_) => istio_version.to_string(),
    }
}

#[derive(Deserialize)]
struct RunFile {
    #[serde(flatten)]
    info: RunInfo,
    #[serde(default)]
    summary: Option<Summary>,
}

/// Read one report directory; a directory without `run.json` whose subdirectories hold one
/// (several downloaded artifacts) is all of them, in name order.
pub fn load_reports(dir: &Path) -> Result<Vec<Run>, DocsError> {
    if dir.join(report::RUN_FILE).is_file() {
        return Ok(vec![load_run(dir)?]);
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DocsError::input(dir, format!("cannot read the report directory: {e}")))?;
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(report::RUN_FILE).is_file())
        .collect();
    subdirs.sort();
    if subdirs.is_empty() {
        return Err(DocsError::input(
            dir.join(report::RUN_FILE),
            "missing: not a run's report directory, and no subdirectory holds a run.json",
        ));
    }
    subdirs.iter().map(|d| load_run(d)).collect()
}

/// Read one run's `run.json` and `cucumber.json` (absent when the run stopped before any
/// scenario ran: every selected scenario is then in run.json's `not_run`).
pub(crate) fn load_run(dir: &Path) -> Result<Run, DocsError> {
    let run_path = dir.join(report::RUN_FILE);
    let text = std::fs::read_to_string(&run_path)
        .map_err(|e| DocsError::input(&run_path, format!("cannot read: {e}")))?;
    let file: RunFile = serde_json::from_str(&text)
        .map_err(|e| DocsError::input(&run_path, format!("not a run report: {e}")))?;
    let json_path = dir.join(report::CUCUMBER_JSON_FILE);
    let features: Vec<cucumber_json::Feature> = match std::fs::read_to_string(&json_path) {
        Ok(text) => cucumber_json::parse(&text).map_err(|e| {
            DocsError::input(&json_path, format!("not a Cucumber JSON report: {e}"))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(DocsError::input(&json_path, format!("cannot read: {e}"))),
    };
    let mut run = Run {
        dir: dir.to_path_buf(),
        info: file.info,
        summary: file.summary,
        scenarios: Vec::new(),
    };
    let mut scenarios = Vec::new();
    for feature in &features {
        let stem = feature
            .uri
            .as_deref()
            .map(|u| {
                Path::new(u)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let mut background: Vec<StepRun> = Vec::new();
        for element in &feature.elements {
            let steps = element.steps.iter().map(|s| StepRun {
                keyword: s.keyword.trim().to_string(),
                text: s.name.clone(),
                status: s.result.status.clone(),
                error: s.result.error_message.clone(),
                line: s.line,
                background: element.is_background(),
            });
            if element.is_background() {
                background = steps.collect();
                continue;
            }
            let steps: Vec<StepRun> = std::mem::take(&mut background)
                .into_iter()
                .chain(steps)
                .collect();
            let outcome = outcome_of(&run, &feature.name, &element.name, &steps);
            scenarios.push(ScenarioRun {
                stem: stem.clone(),
                feature: feature.name.clone(),
                name: element.name.clone(),
                line: element.line,
                steps,
                outcome,
            });
        }
    }
    run.scenarios = scenarios;
    Ok(run)
}

/// A scenario's outcome from its steps: failed at its first failing step (the message's class
/// read as `report::class_of_message` reads it), skipped with run.json's reason, else passed.
fn outcome_of(run: &Run, feature: &str, scenario: &str, steps: &[StepRun]) -> Outcome {
    if let Some(step) = steps.iter().find(|s| cucumber_json::is_failure(&s.status)) {
        // The step's own words: cucumber wraps a panic's message in `Matched: <file:line>
        // Step panicked. Captured output: …`, which says nothing to a reader.
        let message = step
            .error
            .as_deref()
            .map(|m| {
                m.split_once("Captured output: ")
                    .map_or(m, |(_, own)| own)
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| format!("the step is {}", step.status));
        return Outcome::Failed {
            step: format!("{} {}", step.keyword, step.text),
            class: report::class_of_message(&message),
            message,
        };
    }
    if steps.iter().any(|s| s.status != "passed") || steps.is_empty() {
        return run
            .skip_outcome(feature, scenario)
            .unwrap_or_else(|| Outcome::Skipped("a step was skipped".into()));
    }
    Outcome::Passed
}

impl Run {
    /// The outcome of a scenario of `feature` (its name) called `scenario` at `line` of the
    /// file `stem`: from cucumber.json, else run.json's skipped/not-run reason, else not part
    /// of this run.
    pub fn find(&self, stem: &str, line: usize, name: &str) -> Option<&ScenarioRun> {
        self.scenarios
            .iter()
            .find(|s| s.stem == stem && s.line == line && s.name == name)
            .or_else(|| {
                self.scenarios
                    .iter()
                    .find(|s| s.stem == stem && s.name == name)
            })
    }

    /// The outcome of a scenario that cucumber did not report (a run without `cucumber.json`:
    /// it did not get to the end): as run.json says — passed, failed (with its class, step and
    /// message), skipped or never run ([`Run::not_run_outcome`]) — else [`NOT_SELECTED`].
    pub fn absent_outcome(&self, feature: &str, name: &str) -> Outcome {
        let full = format!("{feature} — {name}");
        if let Some(f) = self.info.failures.iter().find(|f| f.scenario == full) {
            let message = f
                .message
                .split_once("Captured output: ")
                .map_or(f.message.as_str(), |(_, own)| own)
                .trim();
            return Outcome::Failed {
                step: f
                    .step
                    .clone()
                    .unwrap_or_else(|| "(the step was not recorded)".to_string()),
                message: with_class_prefix(f.class, message),
                class: f.class,
            };
        }
        if self.info.passed.contains(&full) {
            return Outcome::Passed;
        }
        self.skip_outcome(feature, name)
            .unwrap_or_else(|| Outcome::Skipped(NOT_SELECTED.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        assert_eq!(version_line("1.31.1"), "1.31");
        assert_eq!(version_line("1.29.0-beta.1"), "1.29");
        assert_eq!(
            version_line("1.32.0-alpha.0123456789abcdef0123456789abcdef01234567"),
            "dev"
        );
        assert_eq!(version_line("dev"), "dev");
        assert_eq!(
            version_line("not installed by this run"),
            "not installed by this run"
        );
        assert_eq!(night_of("2026-12-01T23:59:59.5Z"), "2026-12-01");
        assert_eq!(night_of(""), "unknown");
    }

    #[test]
    fn a_missing_or_malformed_run_json_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_reports(dir.path()).unwrap_err().to_string();
        assert!(e.contains("run.json") && e.contains("missing"), "{e}");
        std::fs::write(dir.path().join("run.json"), "{\"cluster_kind\": 3").unwrap();
        let e = load_reports(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&dir.path().join("run.json").display().to_string()),
            "{e}"
        );
        assert!(e.contains("not a run report"), "{e}");
    }
}
