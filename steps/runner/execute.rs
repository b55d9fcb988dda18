//! The scenarios: the planned features, gated for this cluster, run by cucumber one scenario
//! at a time on the provisioned cluster. Cucumber's output goes to the console as it comes;
//! every event also goes to the run's record (`recorder`), which keeps `run.json` up to date,
//! holds the JUnit and Cucumber JSON reports, and stops the run early when every scenario still
//! to run would fail the same way. A failed scenario leaves a diagnostics bundle. A signal
//! abandons the scenario in progress. What comes out is how the run ended and its record.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use cucumber::event::ScenarioFinished;
use cucumber::gherkin;
use cucumber::writer::Coloring;
use cucumber::{World as _, WriterExt as _, writer};
use happy_istio::cluster::Cluster;
use happy_istio::cluster::pulls::PullCounter;
use happy_istio::diagnostics::Diagnostics;
use happy_istio::manifests::ManifestDir;
use happy_istio::provision::ClusterHandle;
use happy_istio::report::{Progress, ScenarioRecord};
use happy_istio::settings::Settings;
use happy_istio::timeouts::Timeouts;
use tokio::sync::{Mutex, watch};

use super::plan::{self, Selection};
use super::provision::ProvisionedCluster;
use super::recorder::{Record, Recorder};
use super::signals::{Caught, Signals};
use super::{HappyOpts, RunError, features_dir, say};
use crate::definitions::gate::SKIPPED_TAG;
use crate::definitions::world::{Env, HappyWorld, ISTIO_NAMESPACE, NAMESPACE};

/// At most this many diagnostics bundles per run.
const DIAGNOSTICS_CAP: usize = 10;

/// How the scenarios' part of the run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Cucumber ran to its end (all scenarios, or until `--fail-fast` stopped it).
    Finished,
    /// A signal stopped the run.
    Signal(Caught),
    /// The record stopped the run early, for this reason.
    Stopped(String),
}

impl Ended {
    /// Why a planned scenario that has no outcome was not run.
    pub(super) fn not_run_reason(&self, fail_fast: bool) -> String {
        match self {
            Ended::Finished if fail_fast => {
                "not run: --fail-fast stopped the run after a failure".to_string()
            }
            Ended::Finished => "not run: cucumber did not run it".to_string(),
            Ended::Signal(caught) => format!("not run: the run was stopped by {}", caught.name),
            Ended::Stopped(reason) => format!("not run: the run stopped early: {reason}"),
        }
    }

    /// Why the run stopped before its end, as `run.json` says it (`None`: it did not).
    pub(super) fn stopped(&self) -> Option<String> {
        match self {
            Ended::Finished => None,
            Ended::Signal(caught) => Some(format!("stopped by {}", caught.name)),
            Ended::Stopped(reason) => Some(format!("stopped early: {reason}")),
        }
    }
}

/// The scenarios' part of the run, done: how it ended and what the record holds.
pub(super) struct Executed {
    pub(super) ended: Ended,
    pub(super) not_run_reason: String,
    /// JUnit XML.
    pub(super) junit: String,
    /// Cucumber JSON.
    pub(super) json: String,
    /// Every scenario's outcome.
    pub(super) records: Vec<ScenarioRecord>,
    /// `run.json`, still in progress.
    pub(super) progress: Progress,
    /// The run's registry pulls, counted since the run started.
    pub(super) pulls: PullCounter,
}

/// Run the selected scenarios on the provisioned cluster.
pub(super) async fn execute(
    selection: Selection,
    settings: &Settings,
    timeouts: &Timeouts,
    cluster: Box<ProvisionedCluster>,
    signals: &Signals,
) -> Result<Executed, RunError> {
    let ProvisionedCluster {
        handle,
        progress,
        run_id,
        started,
    } = *cluster;
    let features = plan::gate(selection.features, handle.as_ref());
    // The run's registry pulls, from the kubelet's Events (pulls made while provisioning too).
    let pulls = PullCounter::start(handle.client(), started);
    install_env(handle, settings, timeouts, &run_id);

    let fail_fast = selection.opts.runner.fail_fast;
    let (stop_tx, stop_rx) = watch::channel(None::<String>);
    // One task runs cucumber and the runner: the record is shared, not sent.
    let record = Rc::new(Mutex::new(
        Record::new(features.clone(), stop_tx).with_progress(progress),
    ));
    let ended = run_cucumber(selection.opts, features, &record, stop_rx, signals).await;
    let not_run_reason = ended.not_run_reason(fail_fast);
    match &ended {
        Ended::Signal(caught) => say(format!(
            "happy-istio: {}: abandoning the scenario in progress; writing the reports",
            caught.name
        )),
        Ended::Stopped(reason) => say(format!("happy-istio: stopping early: {reason}")),
        Ended::Finished => {}
    }
    let (junit, json, records, progress) = {
        let mut record = record.lock().await;
        let (junit, json, records) = record.finish(Some(&not_run_reason)).await;
        (junit, json, records, record.take_progress())
    };
    drop(record);
    Ok(Executed {
        ended,
        not_run_reason,
        junit,
        json,
        records,
        progress: progress.ok_or(RunError::ProgressVanished)?,
        pulls,
    })
}

/// Make the scenarios' environment (`Env`): the cluster, the manifests, the timeouts and the
/// run's diagnostics directory.
fn install_env(
    handle: Box<dyn ClusterHandle>,
    settings: &Settings,
    timeouts: &Timeouts,
    run_id: &str,
) {
    let cluster = Cluster::new(handle.client(), timeouts.clone());
    let manifests = ManifestDir::new(settings.manifests_dir.clone());
    let diagnostics = Diagnostics::new(
        settings.report_dir.join("diagnostics").join(run_id),
        DIAGNOSTICS_CAP,
    );
    Env::install(Arc::new(Env::new(
        cluster,
        handle,
        manifests,
        timeouts.clone(),
        diagnostics,
    )));
}

/// What cucumber runs: the features this run prepared (filtered, then gated).
struct Prepared(Vec<gherkin::Feature>);

impl<I> cucumber::Parser<I> for Prepared {
    type Cli = cucumber::parser::basic::Cli;
    type Output =
        futures::stream::Iter<std::vec::IntoIter<cucumber::parser::Result<gherkin::Feature>>>;

    fn parse(self, _input: I, _cli: Self::Cli) -> Self::Output {
        futures::stream::iter(self.0.into_iter().map(Ok).collect::<Vec<_>>())
    }
}

/// Cucumber on `features`, its events teed to the console and to `record`, until it ends, the
/// record asks to stop (through `stop`) or a signal comes.
async fn run_cucumber(
    mut opts: HappyOpts,
    features: Vec<gherkin::Feature>,
    record: &Rc<Mutex<Record>>,
    mut stop: watch::Receiver<Option<String>>,
    signals: &Signals,
) -> Ended {
    // Filtering is done: cucumber gets the prepared features and must not filter again.
    opts.re_filter = None;
    opts.tags_filter = None;
    let cucumber = HappyWorld::cucumber::<PathBuf>()
        .with_parser(Prepared(features))
        .with_writer(
            writer::Basic::raw(std::io::stdout(), Coloring::Auto, 0)
                .summarized()
                .tee::<HappyWorld, _>(
                    Recorder(Rc::clone(record))
                        .discard_stats_writes()
                        .discard_arbitrary_writes(),
                )
                .normalized(),
        )
        // Scenarios share one cluster and one namespace: one at a time.
        .max_concurrent_scenarios(1)
        // A skipped step is a failure — an undefined step must not pass for a skip — except
        // in the scenarios the gate skipped on purpose, with their reason.
        .fail_on_skipped_with(|_, _, scenario| !scenario.tags.iter().any(|t| t == SKIPPED_TAG))
        .after(|_feature, _rule, scenario, finished, world| {
            Box::pin(async move {
                let failed = matches!(
                    finished,
                    ScenarioFinished::StepFailed(..) | ScenarioFinished::BeforeHookFailed(..)
                );
                if let (true, Some(world)) = (failed, world) {
                    capture_diagnostics(&world.env(), &scenario.name).await;
                }
            })
        })
        .with_cli(opts);
    // What the steps record (happy_istio::evidence) is kept until the recorder takes it, step
    // by step, for the reports.
    happy_istio::evidence::collect();
    let scenarios = async {
        tokio::select! {
            biased;
            reason = stop.wait_for(Option::is_some) => Ended::Stopped(
                reason.ok().and_then(|r| r.clone()).unwrap_or_default(),
            ),
            _ = cucumber.run(features_dir()) => Ended::Finished,
        }
    };
    signals
        .unless_nth(1, scenarios)
        .await
        .unwrap_or_else(Ended::Signal)
}

async fn capture_diagnostics(env: &Env, scenario: &str) {
    let namespaces = [NAMESPACE, ISTIO_NAMESPACE, "default"];
    match env
        .diagnostics
        .capture(&env.cluster, scenario, &namespaces, env.handle.istioctl())
        .await
    {
        Ok(Some(path)) => say(format!(
            "happy-istio: diagnostics for {scenario:?}: {}",
            path.display()
        )),
        Ok(None) => say(format!(
            "happy-istio: diagnostics cap of {DIAGNOSTICS_CAP} bundles reached; none for {scenario:?}"
        )),
        Err(e) => say(format!(
            "happy-istio: diagnostics for {scenario:?} failed: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGTERM: Caught = Caught {
        name: "SIGTERM",
        code: 143,
    };

    #[test]
    fn scenarios_without_an_outcome_are_not_run_for_the_reason_the_run_ended() {
        assert_eq!(
            Ended::Finished.not_run_reason(true),
            "not run: --fail-fast stopped the run after a failure"
        );
        assert_eq!(
            Ended::Finished.not_run_reason(false),
            "not run: cucumber did not run it"
        );
        for fail_fast in [false, true] {
            assert_eq!(
                Ended::Signal(SIGTERM).not_run_reason(fail_fast),
                "not run: the run was stopped by SIGTERM"
            );
            assert_eq!(
                Ended::Stopped("the cluster is gone".into()).not_run_reason(fail_fast),
                "not run: the run stopped early: the cluster is gone"
            );
        }
    }

    #[test]
    fn only_a_run_that_did_not_finish_says_it_stopped() {
        assert_eq!(Ended::Finished.stopped(), None);
        assert_eq!(
            Ended::Signal(SIGTERM).stopped().as_deref(),
            Some("stopped by SIGTERM")
        );
        assert_eq!(
            Ended::Stopped("the cluster is gone".into())
                .stopped()
                .as_deref(),
            Some("stopped early: the cluster is gone")
        );
    }
}
