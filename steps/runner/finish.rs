//! The end of a run, however the scenarios ended: the whole-run reports (`run.json` finished or
//! stopped, the JUnit XML, the Cucumber JSON), the console summary, the living documentation
//! page, the cluster's teardown (a second signal exits at once) and the exit code — 0 when
//! every selected scenario passed or was skipped here, 1 when one failed or did not run, 128 +
//! the signal's number when a signal stopped the run.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use happy_istio::report::{self, RunInfo, Summary};
use happy_istio::settings::Settings;

use super::execute::{Ended, Executed};
use super::provision::teardown;
use super::signals::Signals;
use super::{RunError, features_dir, say, say_out};
use crate::definitions::world::Env;

/// Write the run's reports, say its summary, write its page, tear the cluster down.
pub(super) async fn finish(
    executed: Executed,
    settings: &Settings,
    signals: &Signals,
) -> Result<ExitCode, RunError> {
    let Executed {
        ended,
        not_run_reason,
        junit,
        json,
        records,
        progress,
        pulls,
    } = executed;
    let env = Env::take().ok_or(RunError::EnvironmentVanished)?;
    let (mut run_info, summary) = progress.end(ended.stopped(), &records, &not_run_reason);
    (run_info.pulls, run_info.pulls_note) = pulls.finish();
    run_info.istio_hub = Some(env.istio_hub());
    note_istio_version(&mut run_info, env.istio_version());
    let report_dir = settings.report_dir.as_path();
    let written = report::write(report_dir, &run_info, summary, Some(&junit), Some(&json));

    say_out("");
    for line in summary_lines(&run_info, summary, &json) {
        say_out(line);
    }
    match &written {
        Ok(()) => {
            for file in report::files(report_dir) {
                say_out(format!("report: {}", file.display()));
            }
        }
        Err(e) => say(format!("happy-istio: {e}")),
    }
    if written.is_ok() && settings.docs {
        write_docs(report_dir);
    }

    let any_failed = summary.failed > 0 || run_info.stopped.is_some();
    say("happy-istio: tearing down (a second signal stops at once)");
    let env = Arc::try_unwrap(env).map_err(|_| RunError::ClusterStillHeld)?;
    teardown(env.into_handle(), any_failed, signals, settings).await?;
    written.map_err(RunError::Report)?;
    Ok(exit_code(&ended, summary))
}

/// The run's exit code: a signal's own (128 + its number); otherwise success only when the
/// run finished with no scenario failed or left unrun (`--fail-fast`).
fn exit_code(ended: &Ended, summary: Summary) -> ExitCode {
    match ended {
        Ended::Signal(caught) => ExitCode::from(caught.code),
        Ended::Stopped(_) => ExitCode::FAILURE,
        Ended::Finished if summary.failed == 0 && summary.not_run == 0 => ExitCode::SUCCESS,
        Ended::Finished => ExitCode::FAILURE,
    }
}

/// The Istio version into the run's report: the installed one; a run that ended without
/// installing Istio says so when complete, and a stopped one keeps the version it was asked
/// for, so its column stays in that version's line.
fn note_istio_version(run_info: &mut RunInfo, installed: Option<String>) {
    match installed {
        Some(version) => run_info.istio_version = version,
        None if run_info.stopped.is_none() => {
            run_info.istio_version = "not installed by this run".to_string();
        }
        None => {}
    }
}

/// The summary printed after cucumber's output: the counts, each failure with its class, the
/// registry pulls, why the run stopped, the slowest steps.
fn summary_lines(run_info: &RunInfo, summary: Summary, cucumber_json: &str) -> Vec<String> {
    let mut lines = vec![summary.to_string()];
    if summary.failed > 0 {
        let environment = run_info
            .failures
            .iter()
            .filter(|f| f.class == report::FailureClass::Environment)
            .count();
        lines.push(format!(
            "failures: {} claim, {environment} environment",
            summary.failed - environment
        ));
        for f in &run_info.failures {
            lines.push(format!(
                "  {} failure: {}: {}",
                f.class,
                f.scenario,
                f.message.lines().next().unwrap_or_default()
            ));
        }
    }
    lines.push(happy_istio::cluster::pulls::describe(&run_info.pulls));
    if let Some(note) = &run_info.pulls_note {
        lines.push(format!("registry pulls: {note}"));
    }
    if let Some(stopped) = &run_info.stopped {
        lines.push(format!(
            "{stopped}; {} scenario(s) not run",
            summary.not_run
        ));
    }
    lines.extend(
        report::slowest_steps(cucumber_json, report::SLOWEST_SHOWN)
            .map(|s| report::describe_slowest(&s))
            .unwrap_or_default(),
    );
    lines
}

/// The run's living documentation page (`happy_istio::docs`) in `site/` of the report
/// directory, its history strips continuing the previous local runs'. A failure here is said
/// and changes nothing else: the run's verdict and exit code are the scenarios'.
fn write_docs(report_dir: &Path) {
    let mut options = happy_istio::docs::Options::for_reports(vec![report_dir.to_path_buf()]);
    options.features = features_dir();
    let history = options
        .out_dir()
        .join(happy_istio::docs::history::HISTORY_FILE);
    // A local history that cannot be read (another schema, a damaged file) must not cost the
    // user tonight's page: it is said, and the page starts a new history.
    options.history = match happy_istio::docs::history::History::load(&history) {
        Ok(_) => Some(history),
        Err(e) => {
            say(format!(
                "happy-istio: the previous runs' history is not carried on: {e}; the page starts \
                 a new one"
            ));
            None
        }
    };
    match happy_istio::docs::build(&options) {
        Ok(built) => say_out(format!("living documentation: {}", built.index.display())),
        Err(e) => say(format!(
            "happy-istio: the living documentation page was not written (the run's verdict \
             stands): {e}"
        )),
    }
}

#[cfg(test)]
// The harness-less targets that run the suite (`happy`, `runs`) compile this module
// without its #[test]s; `tests/it` runs them (`cargo test --test it runner::`).
#[allow(dead_code, unused_imports)]
mod tests {
    use happy_istio::report::{FailureClass, FailureRecord};

    use super::super::signals::Caught;
    use super::*;

    fn summary(passed: usize, failed: usize, skipped: usize, not_run: usize) -> Summary {
        Summary {
            passed,
            failed,
            skipped,
            not_run,
        }
    }

    #[test]
    fn the_exit_code_follows_how_the_run_ended() {
        let sighup = Caught {
            name: "SIGHUP",
            code: 129,
        };
        let cases = [
            (Ended::Finished, summary(3, 0, 2, 0), ExitCode::SUCCESS),
            (Ended::Finished, summary(3, 1, 0, 0), ExitCode::FAILURE),
            // --fail-fast: nothing failed in the record's count yet scenarios did not run.
            (Ended::Finished, summary(3, 0, 0, 2), ExitCode::FAILURE),
            (
                Ended::Stopped("gone".into()),
                summary(3, 0, 0, 0),
                ExitCode::FAILURE,
            ),
            (
                Ended::Signal(sighup),
                summary(3, 0, 0, 0),
                ExitCode::from(129),
            ),
            (
                Ended::Signal(sighup),
                summary(0, 5, 0, 9),
                ExitCode::from(129),
            ),
        ];
        for (ended, summary, code) in cases {
            assert_eq!(exit_code(&ended, summary), code, "{ended:?} {summary:?}");
        }
    }

    #[test]
    fn a_run_without_istio_says_so_unless_it_was_stopped() {
        let asked = || RunInfo {
            istio_version: "1.31.1".to_string(),
            ..RunInfo::default()
        };
        let mut info = asked();
        note_istio_version(&mut info, Some("1.30.2".to_string()));
        assert_eq!(info.istio_version, "1.30.2");
        let mut info = asked();
        note_istio_version(&mut info, None);
        assert_eq!(info.istio_version, "not installed by this run");
        let mut info = RunInfo {
            stopped: Some("stopped by SIGINT".to_string()),
            ..asked()
        };
        note_istio_version(&mut info, None);
        assert_eq!(info.istio_version, "1.31.1", "its column stays in its line");
    }

    #[test]
    fn the_summary_counts_failures_by_class_and_says_why_the_run_stopped() {
        let failure = |scenario: &str, class, message: &str| FailureRecord {
            scenario: scenario.to_string(),
            class,
            message: message.to_string(),
            step: None,
        };
        let info = RunInfo {
            failures: vec![
                failure("F — a", FailureClass::Claim, "expected 200\nsecond line"),
                failure("F — b", FailureClass::Environment, "image not found"),
                failure("G — c", FailureClass::Claim, "expected v1"),
            ],
            stopped: Some("stopped by SIGINT".to_string()),
            pulls_note: Some("not counted".to_string()),
            ..RunInfo::default()
        };
        let counts = summary(1, 3, 0, 4);
        let lines = summary_lines(&info, counts, "");
        assert_eq!(
            lines,
            [
                counts.to_string(),
                "failures: 2 claim, 1 environment".to_string(),
                "  claim failure: F — a: expected 200".to_string(),
                "  environment failure: F — b: image not found".to_string(),
                "  claim failure: G — c: expected v1".to_string(),
                happy_istio::cluster::pulls::describe(&info.pulls),
                "registry pulls: not counted".to_string(),
                "stopped by SIGINT; 4 scenario(s) not run".to_string(),
            ]
        );
        assert_eq!(
            counts.to_string(),
            "1 passed, 3 failed, 0 skipped, 4 not run"
        );
    }

    #[test]
    fn a_passing_run_prints_its_counts_pulls_and_slowest_steps() {
        let json = r#"[{"name":"F","uri":"f.feature","elements":[{"name":"a","type":"scenario",
            "steps":[{"keyword":"Then ","name":"it holds","result":{"status":"passed",
            "duration":1500000000}}]}]}]"#;
        let lines = summary_lines(&RunInfo::default(), summary(1, 0, 0, 0), json);
        assert_eq!(lines[0], "1 passed, 0 failed, 0 skipped");
        assert!(
            !lines.iter().any(|l| l.starts_with("failures:")),
            "{lines:?}"
        );
        let slowest =
            report::describe_slowest(&report::slowest_steps(json, report::SLOWEST_SHOWN).unwrap());
        assert!(!slowest.is_empty(), "the JSON above has a timed step");
        assert!(lines.ends_with(&slowest), "{lines:?}");
    }
}
