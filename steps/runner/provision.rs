//! The cluster, made under the signal watch. The run's `run.json` is written first (in
//! progress, every planned scenario not run yet), so a run stopped in any way from here on —
//! even killed outright — leaves one. Then the cluster is provisioned: a failure is written
//! into `run.json` as the run's verdict (state `provisioning-failed`) and ends the run with its
//! cause; a signal lets provisioning finish so that what it made is torn down (a second signal
//! exits at once). A provisioned cluster is announced and described in `run.json`; at the
//! end of the run [`teardown`] removes it, again under the signal watch.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;

use happy_istio::provision::{self, ClusterHandle};
use happy_istio::report::{self, Progress, RunInfo};
use happy_istio::settings::{IstioVersionRequest, Settings};

use super::plan::{Plan, all_names, scenario_count};
use super::signals::{Caught, Signals, force_exit};
use super::{RunError, say};

/// A provisioned cluster and the run's report so far.
pub(super) struct ProvisionedCluster {
    pub(super) handle: Box<dyn ClusterHandle>,
    /// `run.json`, in progress.
    pub(super) progress: Progress,
    pub(super) run_id: String,
    pub(super) started: jiff::Timestamp,
}

/// How provisioning ended: a cluster to run on, or the exit code of a run a signal stopped.
pub(super) enum Provisioned {
    Ready(Box<ProvisionedCluster>),
    Ended(ExitCode),
}

/// Start the run's reports and provision its cluster.
pub(super) async fn provision(plan: &Plan, signals: &Signals) -> Result<Provisioned, RunError> {
    let settings = &plan.settings;
    let report_dir = settings.report_dir.as_path();
    report::begin(report_dir).map_err(RunError::Report)?;
    let started = jiff::Timestamp::now();
    let run_id = report::new_run_id(started, std::process::id());
    say(format!(
        "happy-istio: run {run_id}: {} scenario(s) selected; reports in {}",
        scenario_count(&plan.selection.features),
        report_dir.display()
    ));
    let mut progress = Progress::start(
        report_dir,
        RunInfo {
            run_id: run_id.clone(),
            started_at: started.to_string(),
            cluster_kind: settings.cluster.to_string(),
            istio_version: asked_istio_version(settings),
            deviations: plan.deviations.report(),
            commit: report::suite_commit(&crate::repo_root()),
            ci_run_url: report::ci_run_url(),
            ..RunInfo::default()
        },
        all_names(&plan.selection.features),
    )
    .map_err(RunError::Report)?;
    say(format!(
        "happy-istio: provisioning the cluster (HAPPY_CLUSTER={})",
        settings.cluster
    ));

    let mut provisioning = Box::pin(provision::provision(settings, &plan.timeouts));
    let provisioned = signals.unless_nth(1, &mut provisioning).await;
    let handle = match provisioned {
        Ok(done) => {
            drop(provisioning);
            match done {
                Ok(handle) => handle,
                Err(e) => {
                    write_provisioning_failure(progress, &e.to_string(), report_dir);
                    return Err(RunError::Provisioning(e));
                }
            }
        }
        Err(caught) => {
            let code = stopped_while_provisioning(caught, provisioning, progress, plan, signals);
            return code.await.map(Provisioned::Ended);
        }
    };
    announce(handle.as_ref(), &mut progress, settings);
    Ok(Provisioned::Ready(Box::new(ProvisionedCluster {
        handle,
        progress,
        run_id,
        started,
    })))
}

/// A signal came while provisioning: let it finish (a second signal exits at once), write
/// `run.json` as stopped, tear down what it made. The exit code is the signal's.
async fn stopped_while_provisioning<F>(
    caught: Caught,
    mut provisioning: Pin<Box<F>>,
    mut progress: Progress,
    plan: &Plan,
    signals: &Signals,
) -> Result<ExitCode, RunError>
where
    F: Future<Output = happy_istio::ProvisionResult<Box<dyn ClusterHandle>>>,
{
    let report_dir = plan.settings.report_dir.as_path();
    say(format!(
        "happy-istio: {} while provisioning: letting it finish so that it can be torn \
         down (a second signal stops at once)",
        caught.name
    ));
    let finished = signals.unless_nth(2, &mut provisioning).await;
    match finished {
        Err(forced) => force_exit(forced, &plan.settings, provisioning),
        Ok(Err(e)) => {
            say(format!("happy-istio: provisioning failed: {e}"));
            write_provisioning_failure(progress, &e.to_string(), report_dir);
        }
        Ok(Ok(handle)) => {
            drop(provisioning);
            note_cluster(&mut progress, handle.as_ref(), Vec::new());
            let reason = format!("not run: the run was stopped by {}", caught.name);
            let (info, summary) = progress.end(
                Some(format!("stopped by {} while provisioning", caught.name)),
                &[],
                &reason,
            );
            if let Err(e) = report::write(report_dir, &info, summary, None, None) {
                say(format!("happy-istio: {e}"));
            }
            say("happy-istio: tearing down (a second signal stops at once)");
            teardown(handle, false, signals, &plan.settings).await?;
        }
    }
    Ok(ExitCode::from(caught.code))
}

/// Tear the cluster down; a second signal meanwhile exits at once (dropping the teardown, so
/// what drops cleanly — the sandbox's directory — still goes, and killing this process's
/// children).
pub(super) async fn teardown(
    handle: Box<dyn ClusterHandle>,
    any_failed: bool,
    signals: &Signals,
    settings: &Settings,
) -> Result<(), RunError> {
    let mut teardown = handle.teardown(any_failed);
    match signals.unless_nth(2, &mut teardown).await {
        Ok(done) => done.map_err(RunError::Teardown),
        Err(forced) => force_exit(forced, settings, teardown),
    }
}

/// Say what the cluster is (and which settings do not apply to it), and put it in `run.json`.
fn announce(handle: &dyn ClusterHandle, progress: &mut Progress, settings: &Settings) {
    let info = handle.info();
    say(format!(
        "happy-istio: cluster {} ({}), Kubernetes {}{}",
        info.name,
        info.kind,
        info.kubernetes_version,
        info.note
            .as_deref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default()
    ));
    say(format!(
        "happy-istio: an Istio install by this run takes its images from {}",
        handle.istio_hub()
    ));
    let settings_notes = settings.not_applicable(info.kind);
    for note in &settings_notes {
        say(format!("happy-istio: note: {note}"));
    }
    note_cluster(progress, handle, settings_notes);
    if let Err(e) = progress.write() {
        say(format!(
            "happy-istio: warning: run.json was not brought up to date: {e}"
        ));
    }
}

/// The Istio version the run was asked for (`ISTIO_VERSION`), as a report names it before any
/// is installed: `dev` for the newest dev build (its docs line), `latest` unresolved.
fn asked_istio_version(settings: &Settings) -> String {
    match &settings.istio_version {
        IstioVersionRequest::Pinned => happy_istio::istio::releases::pinned_default().to_string(),
        IstioVersionRequest::Latest => "latest".to_string(),
        IstioVersionRequest::LatestDev => happy_istio::istio::releases::UNRESOLVED_DEV.to_string(),
        IstioVersionRequest::Exact(v) => v.to_string(),
    }
}

/// What the provisioned cluster is, into the run's run.json.
fn note_cluster(progress: &mut Progress, handle: &dyn ClusterHandle, settings_notes: Vec<String>) {
    let info = handle.info();
    let run = progress.info_mut();
    run.cluster_kind = info.kind.to_string();
    run.cluster_name = info.name.clone();
    run.kubernetes_version = info.kubernetes_version.clone();
    run.note = info.note.clone();
    run.settings_notes = settings_notes;
    run.istio_hub = Some(handle.istio_hub().to_string());
}

/// The run could not be provisioned: its run.json says so (the environment's verdict, every
/// selected scenario not run with the cause), and the run ends as before with the cause.
fn write_provisioning_failure(progress: Progress, cause: &str, report_dir: &Path) {
    match progress.provisioning_failed(cause) {
        Ok(_) => say(format!(
            "happy-istio: provisioning failed; report: {}",
            report_dir.join(report::RUN_FILE).display()
        )),
        Err(e) => say(format!("happy-istio: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(value: Option<&str>) -> String {
        let settings = Settings::from_lookup(|name| {
            (name == "ISTIO_VERSION")
                .then(|| value.map(str::to_string))
                .flatten()
        })
        .unwrap();
        asked_istio_version(&settings)
    }

    #[test]
    fn a_run_names_the_istio_version_it_was_asked_for_before_any_is_installed() {
        assert_eq!(
            asked(None),
            happy_istio::istio::releases::pinned_default().to_string()
        );
        assert_eq!(asked(Some("latest")), "latest");
        assert_eq!(
            asked(Some("dev")),
            happy_istio::istio::releases::UNRESOLVED_DEV
        );
        assert_eq!(asked(Some("1.29.2")), "1.29.2");
    }
}
