//! `run.json` over the whole life of a run, so that however the run ends it leaves one:
//!
//! - written when the run starts (state `in-progress`, every selected scenario not run yet,
//!   the cluster kind and the Istio version asked for),
//! - rewritten whole ([`super::write_atomic`]) each time a scenario finishes, and once the
//!   cluster is up (its name and Kubernetes version),
//! - written a last time when the run ends: `finished`, `stopped` (a signal, or a stop-early),
//!   or `provisioning-failed` (every selected scenario not run, with the environment's verdict).
//!
//! A run killed outright (SIGKILL, where nothing can be written any more) leaves its last copy:
//! it parses, holds every scenario that finished, and still says `in-progress` — which a reader
//! of a run that is over (`crate::docs`) shows as a run that did not finish.
//!
//! The JUnit XML and Cucumber JSON reports stay whole-run reports written at the end
//! (`super::write`): they exist when the run got that far.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FailureClass, FailureRecord, RunInfo, Summary, write_run_file};

/// Where a run is, as `run.json` says (`state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Under way. Once the run is over, a run.json still saying so was left by a run killed
    /// before it could write how it ended (SIGKILL, the machine gone): it did not finish.
    InProgress,
    /// It ran to its end (scenarios cucumber did not run, after `--fail-fast`, are in
    /// `not_run`). The default, for reports written before states existed.
    #[default]
    Finished,
    /// Stopped before every selected scenario ran: by a signal (Ctrl-C, CI cancellation, a
    /// time limit) or by an environment failure every remaining scenario shared; `stopped`
    /// says which.
    Stopped,
    /// The cluster could not be provisioned (preflight, `kind create`, a download, a dev build
    /// that cannot be resolved, a Kubernetes version outside Istio's window…): no scenario
    /// ran; `verdict` says why and whose failure it was.
    ProvisioningFailed,
}

impl RunState {
    /// The word run.json uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::InProgress => "in-progress",
            RunState::Finished => "finished",
            RunState::Stopped => "stopped",
            RunState::ProvisioningFailed => "provisioning-failed",
        }
    }
}

/// The run's own verdict, when it could run no scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunVerdict {
    /// Whose failure it was (a provisioning failure is the environment's).
    pub class: FailureClass,
    /// Why, in full (`provisioning failed: …`).
    pub message: String,
}

/// How one scenario ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioOutcome {
    Passed,
    Failed(FailureRecord),
    /// Skipped by the capability gate, with its reason.
    Skipped(String),
    /// Never ran (the run stopped first, or has not got to it yet), with the reason.
    NotRun(String),
}

/// One scenario's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioRecord {
    /// `Feature — Scenario`.
    pub name: String,
    pub outcome: ScenarioOutcome,
}

/// The reason run.json gives, while the run is under way, for each selected scenario that has
/// not finished (the one running included).
pub const IN_PROGRESS: &str = "not run: the run was still in progress when this report was written";

/// Counts of a run's records, as every report states them.
pub fn summarize(records: &[ScenarioRecord]) -> Summary {
    let mut s = Summary::default();
    for r in records {
        match r.outcome {
            ScenarioOutcome::Passed => s.passed += 1,
            ScenarioOutcome::Failed(_) => s.failed += 1,
            ScenarioOutcome::Skipped(_) => s.skipped += 1,
            ScenarioOutcome::NotRun(_) => s.not_run += 1,
        }
    }
    s
}

/// Set `info`'s per-scenario lists (`passed`, `failures`, `skipped`, `not_run`) to `records`.
pub fn fill_outcomes(info: &mut RunInfo, records: &[ScenarioRecord]) {
    info.passed.clear();
    info.failures.clear();
    info.skipped.clear();
    info.not_run.clear();
    for r in records {
        match &r.outcome {
            ScenarioOutcome::Passed => info.passed.push(r.name.clone()),
            ScenarioOutcome::Failed(f) => info.failures.push(f.clone()),
            ScenarioOutcome::Skipped(reason) => info.skipped.push(format!("{}: {reason}", r.name)),
            ScenarioOutcome::NotRun(reason) => info.not_run.push(format!("{}: {reason}", r.name)),
        }
    }
}

/// A run's `run.json` while the run is under way.
#[derive(Debug)]
pub struct Progress {
    dir: PathBuf,
    info: RunInfo,
    /// Every selected scenario (`Feature — Scenario`), in the order they run.
    selected: Vec<String>,
    /// The scenarios that finished so far, in the order they finished.
    finished: Vec<ScenarioRecord>,
}

impl Progress {
    /// Start the run's `run.json` in `dir` (which [`super::begin`] has prepared): `info` as
    /// known at the start, state `in-progress`, each of `selected` not run yet.
    pub fn start(dir: &Path, mut info: RunInfo, selected: Vec<String>) -> Result<Progress, String> {
        info.run_state = RunState::InProgress;
        let progress = Progress {
            dir: dir.to_path_buf(),
            info,
            selected,
            finished: Vec::new(),
        };
        progress.write()?;
        Ok(progress)
    }

    /// The run info, to add what becomes known (the cluster, once provisioned); [`write`]
    /// records it.
    ///
    /// [`write`]: Progress::write
    pub fn info_mut(&mut self) -> &mut RunInfo {
        &mut self.info
    }

    /// The scenarios that finished so far.
    pub fn finished(&self) -> &[ScenarioRecord] {
        &self.finished
    }

    /// Record a finished scenario (a retried one replaces its earlier attempt) and rewrite
    /// run.json.
    pub fn scenario_finished(&mut self, record: ScenarioRecord) -> Result<(), String> {
        self.finished.retain(|r| r.name != record.name);
        self.finished.push(record);
        self.write()
    }

    /// Keep what `scenario`'s steps observed (a retried scenario's replaces its earlier
    /// attempt's); the next write records it.
    pub fn scenario_evidence(&mut self, evidence: super::ScenarioEvidence) {
        let evidence_list = &mut self.info.evidence;
        evidence_list.retain(|e| e.scenario != evidence.scenario);
        if !evidence.steps.is_empty() {
            evidence_list.push(evidence);
        }
    }

    /// Rewrite run.json as the run stands: every finished scenario with its outcome, the rest
    /// not run ([`IN_PROGRESS`]).
    pub fn write(&self) -> Result<(), String> {
        let (info, summary) = self.snapshot(&self.finished, IN_PROGRESS);
        write_run_file(&self.dir, &info, summary, None)
    }

    /// The run info with `records`, and each selected scenario without one not run for
    /// `reason`.
    fn snapshot(&self, records: &[ScenarioRecord], reason: &str) -> (RunInfo, Summary) {
        let mut all: Vec<ScenarioRecord> = records.to_vec();
        for name in &self.selected {
            if !all.iter().any(|r| &r.name == name) {
                all.push(ScenarioRecord {
                    name: name.clone(),
                    outcome: ScenarioOutcome::NotRun(reason.to_string()),
                });
            }
        }
        let mut info = self.info.clone();
        fill_outcomes(&mut info, &all);
        (info, summarize(&all))
    }

    /// The run could not be provisioned: write its last run.json — state
    /// `provisioning-failed`, the environment's verdict with `cause`, every selected scenario
    /// not run for that reason. Returns what was written.
    pub fn provisioning_failed(mut self, cause: &str) -> Result<(RunInfo, Summary), String> {
        let first_line = cause.lines().next().unwrap_or_default().trim();
        self.info.run_state = RunState::ProvisioningFailed;
        self.info.stopped = Some(format!("provisioning failed: {first_line}"));
        self.info.verdict = Some(RunVerdict {
            class: FailureClass::Environment,
            message: format!("provisioning failed: {}", cause.trim()),
        });
        self.info.finished_at = jiff::Timestamp::now().to_string();
        let (info, summary) =
            self.snapshot(&[], &format!("not run: provisioning failed: {first_line}"));
        write_run_file(&self.dir, &info, summary, None)?;
        Ok((info, summary))
    }

    /// The run's final info, not yet written (the caller writes it with the whole-run reports,
    /// `super::write`): `records` (every scenario's outcome; any selected scenario without
    /// one is not run for `not_run_reason`), state `stopped` with `stopped` as the reason, or
    /// `finished`.
    pub fn end(
        mut self,
        stopped: Option<String>,
        records: &[ScenarioRecord],
        not_run_reason: &str,
    ) -> (RunInfo, Summary) {
        self.info.run_state = if stopped.is_some() {
            RunState::Stopped
        } else {
            RunState::Finished
        };
        self.info.stopped = stopped;
        self.info.finished_at = jiff::Timestamp::now().to_string();
        self.snapshot(records, not_run_reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RUN_FILE;

    fn read(dir: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(RUN_FILE)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn names() -> Vec<String> {
        ["F — a", "F — b", "G — c"].map(String::from).to_vec()
    }

    fn failed(name: &str) -> ScenarioRecord {
        ScenarioRecord {
            name: name.into(),
            outcome: ScenarioOutcome::Failed(FailureRecord {
                scenario: name.into(),
                class: FailureClass::Claim,
                message: "claim failed: 3 of 30 were 500".into(),
                step: Some("Then every response is 200".into()),
            }),
        }
    }

    #[test]
    fn run_json_is_there_from_the_start_and_follows_every_finished_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo {
            run_id: "r1".into(),
            cluster_kind: "kind".into(),
            istio_version: "1.30.5".into(),
            ..RunInfo::default()
        };
        let mut p = Progress::start(dir.path(), info, names()).unwrap();
        let run = read(dir.path());
        assert_eq!(run["state"], "in-progress");
        assert_eq!(run["run_id"], "r1");
        assert_eq!(run["istio_version"], "1.30.5");
        assert_eq!(run["summary"]["not_run"], 3);
        assert_eq!(run["not_run"][0], format!("F — a: {IN_PROGRESS}"));

        p.scenario_finished(ScenarioRecord {
            name: "F — a".into(),
            outcome: ScenarioOutcome::Passed,
        })
        .unwrap();
        p.scenario_finished(failed("F — b")).unwrap();
        let run = read(dir.path());
        assert_eq!(run["state"], "in-progress", "still under way");
        assert_eq!(run["passed"], serde_json::json!(["F — a"]));
        assert_eq!(run["failures"][0]["scenario"], "F — b");
        assert_eq!(run["failures"][0]["step"], "Then every response is 200");
        assert_eq!(
            run["not_run"],
            serde_json::json!([format!("G — c: {IN_PROGRESS}")])
        );
        assert_eq!(
            (
                &run["summary"]["passed"],
                &run["summary"]["failed"],
                &run["summary"]["not_run"]
            ),
            (&1.into(), &1.into(), &1.into())
        );
        // A retried scenario counts once, as its last attempt ended.
        p.scenario_finished(ScenarioRecord {
            name: "F — b".into(),
            outcome: ScenarioOutcome::Passed,
        })
        .unwrap();
        assert_eq!(read(dir.path())["summary"]["passed"], 2);
        assert_eq!(read(dir.path())["failures"], serde_json::json!([]));
        // Nothing but run.json was written, and no temporary file is left.
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [RUN_FILE]);

        // What a reader of the killed run gets: it parses as a run report, in progress.
        let text = std::fs::read_to_string(dir.path().join(RUN_FILE)).unwrap();
        let back: RunInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back.state(), RunState::InProgress);
        assert_eq!(back.passed, ["F — a", "F — b"]);
    }

    #[test]
    fn a_provisioning_failure_is_every_scenario_not_run_with_the_environments_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo {
            cluster_kind: "kind".into(),
            istio_version: "dev".into(),
            ..RunInfo::default()
        };
        let p = Progress::start(dir.path(), info, names()).unwrap();
        let cause = "preflight found 1 problem:\n  PROBLEM no container engine answers";
        p.provisioning_failed(cause).unwrap();
        let run = read(dir.path());
        assert_eq!(run["state"], "provisioning-failed");
        assert_eq!(
            run["stopped"],
            "provisioning failed: preflight found 1 problem:"
        );
        assert_eq!(run["verdict"]["class"], "environment");
        assert_eq!(
            run["verdict"]["message"],
            format!("provisioning failed: {cause}")
        );
        assert_eq!(run["summary"]["not_run"], 3);
        assert_eq!(run["istio_version"], "dev");
        assert_eq!(run["cluster_kind"], "kind");
        for (i, name) in names().iter().enumerate() {
            assert_eq!(
                run["not_run"][i],
                format!("{name}: not run: provisioning failed: preflight found 1 problem:")
            );
        }
        assert!(!run["finished_at"].as_str().unwrap().is_empty());
    }

    #[test]
    fn the_end_says_stopped_or_finished_and_fills_what_did_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Progress::start(dir.path(), RunInfo::default(), names()).unwrap();
        p.scenario_finished(ScenarioRecord {
            name: "F — a".into(),
            outcome: ScenarioOutcome::Passed,
        })
        .unwrap();
        let records = p.finished().to_vec();
        let (info, summary) = p.end(
            Some("stopped by SIGINT".into()),
            &records,
            "not run: the run was stopped by SIGINT",
        );
        assert_eq!(info.state(), RunState::Stopped);
        assert_eq!(info.passed, ["F — a"]);
        assert_eq!(info.not_run.len(), 2);
        assert_eq!(summary.not_run, 2);
        let p = Progress::start(dir.path(), RunInfo::default(), names()).unwrap();
        let all: Vec<ScenarioRecord> = names()
            .into_iter()
            .map(|name| ScenarioRecord {
                name,
                outcome: ScenarioOutcome::Skipped("@kiali: no Kiali".into()),
            })
            .collect();
        let (info, summary) = p.end(None, &all, "unused");
        assert_eq!(info.state(), RunState::Finished);
        assert_eq!(info.skipped.len(), 3);
        assert_eq!(summary.skipped, 3);
    }

    #[test]
    fn reports_written_before_states_existed_read_as_finished_or_stopped() {
        let old: RunInfo = serde_json::from_str(
            r#"{"cluster_kind":"kind","cluster_name":"h","kubernetes_version":"v1","istio_version":"1.31.1","note":null,"skipped":[]}"#,
        )
        .unwrap();
        assert_eq!(old.state(), RunState::Finished);
        let stopped = RunInfo {
            stopped: Some("stopped by SIGTERM".into()),
            ..old
        };
        assert_eq!(stopped.state(), RunState::Stopped);
        assert_eq!(RunState::ProvisioningFailed.as_str(), "provisioning-failed");
    }
}
