//! The run of the suite, shared by the `happy` target and the suite's own negative tests
//! (`tests/negative.rs`, which run it on deliberately broken copies of the manifests).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use cucumber::event::ScenarioFinished;
use cucumber::writer::Coloring;
use cucumber::{World, WriterExt, parser, writer};
use happy_istio::cluster::Cluster;
use happy_istio::diagnostics::Diagnostics;
use happy_istio::manifests::ManifestDir;
use happy_istio::provision::{self, ClusterHandle};
use happy_istio::report::{self, RunInfo};
use happy_istio::settings::Settings;
use happy_istio::timeouts::Timeouts;

use crate::definitions::gate::{Gate, Gated, SKIPPED_TAG, Skipped};
use crate::definitions::world::{Env, HappyWorld, ISTIO_NAMESPACE, NAMESPACE};

/// At most this many diagnostics bundles per run.
const DIAGNOSTICS_CAP: usize = 10;

fn features_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("features")
}

/// The capability tags of the features, with the reason each is missing on this cluster.
fn gate_for(handle: &dyn ClusterHandle) -> Gate {
    let caps = handle.capabilities();
    Gate::new([
        (
            "istio".to_string(),
            caps.istio.missing_reason().map(str::to_string),
        ),
        (
            "prometheus".to_string(),
            caps.prometheus.missing_reason().map(str::to_string),
        ),
        (
            "grafana".to_string(),
            caps.grafana.missing_reason().map(str::to_string),
        ),
        (
            "kiali".to_string(),
            caps.kiali.missing_reason().map(str::to_string),
        ),
        (
            "capture".to_string(),
            caps.packet_capture.missing_reason().map(str::to_string),
        ),
    ])
}

/// One run of the suite: provision, run the features (with cucumber's command-line filters),
/// report, tear down. Err is a message for a run that could not start or finish.
pub async fn run() -> Result<ExitCode, String> {
    // One TLS provider for the whole process: ring (kube and reqwest both use it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let timeouts = Timeouts::from_env().map_err(|e| e.to_string())?;
    // Every departure from the workshop's text, announced before anything runs.
    let deviations = happy_istio::deviations::Deviations::resolve(&settings);
    eprint!("{deviations}");
    let report_dir = settings.report_dir.clone();
    std::fs::create_dir_all(&report_dir).map_err(|e| {
        format!(
            "cannot create the report directory {}: {e}",
            report_dir.display()
        )
    })?;

    eprintln!(
        "happy-istio: provisioning the cluster (HAPPY_CLUSTER={})",
        settings.cluster
    );
    let handle = tokio::select! {
        handle = provision::provision(&settings, &timeouts) => handle.map_err(|e| e.to_string())?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("happy-istio: interrupted while provisioning; nothing is left running that the suite owns");
            return Ok(ExitCode::from(130));
        }
    };
    let info = handle.info().clone();
    eprintln!(
        "happy-istio: cluster {} ({}), Kubernetes {}{}",
        info.name,
        info.kind,
        info.kubernetes_version,
        info.note
            .as_deref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default()
    );
    let gate = Arc::new(gate_for(handle.as_ref()));
    let cluster = Cluster::new(handle.client(), timeouts.clone());
    let manifests = ManifestDir::new(settings.manifests_dir.clone());
    let diagnostics = Diagnostics::new(report_dir.join("diagnostics"), DIAGNOSTICS_CAP);
    Env::install(Arc::new(Env::new(
        cluster,
        handle,
        manifests,
        timeouts,
        diagnostics,
    )));

    let skipped = Arc::new(Mutex::new(Vec::<Skipped>::new()));
    let outcome = run_features(&report_dir, gate, Arc::clone(&skipped)).await;

    let Some(env) = Env::take() else {
        return Err("the run's environment vanished before teardown".into());
    };
    let mut info_out = RunInfo {
        cluster_kind: info.kind.to_string(),
        cluster_name: info.name.clone(),
        kubernetes_version: info.kubernetes_version.clone(),
        istio_version: env
            .istio_version()
            .unwrap_or_else(|| "not installed by this run".to_string()),
        note: info.note.clone(),
        skipped: skipped
            .lock()
            .map(|s| {
                s.iter()
                    .map(|s| format!("{} — {}: {}", s.feature, s.scenario, s.reason))
                    .collect()
            })
            .unwrap_or_default(),
        deviations: deviations.report(),
    };
    let summary = match outcome {
        RunOutcome::Finished => report::finish(&report_dir, &info_out),
        RunOutcome::Interrupted => Err("interrupted".to_string()),
    };
    let any_failed = !matches!(&summary, Ok(s) if s.failed == 0);
    let teardown = teardown(env, any_failed).await;

    match &summary {
        Ok(s) => {
            println!();
            println!("{s}");
            for file in report::files(&report_dir) {
                println!("report: {}", file.display());
            }
        }
        Err(e) => {
            info_out.note = Some(e.clone());
            eprintln!("happy-istio: {e}");
        }
    }
    teardown?;
    Ok(match (outcome, summary) {
        (RunOutcome::Interrupted, _) => ExitCode::from(130),
        (_, Ok(s)) if s.failed == 0 && s.passed + s.skipped > 0 => ExitCode::SUCCESS,
        (_, Ok(s)) if s.failed == 0 => {
            eprintln!("happy-istio: no scenario ran (check --tags / --name filters)");
            ExitCode::FAILURE
        }
        _ => ExitCode::FAILURE,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RunOutcome {
    Finished,
    Interrupted,
}

async fn run_features(
    report_dir: &Path,
    gate: Arc<Gate>,
    skipped: Arc<Mutex<Vec<Skipped>>>,
) -> RunOutcome {
    let junit = match File::create(report_dir.join(report::JUNIT_FILE)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("happy-istio: cannot create the JUnit report: {e}");
            return RunOutcome::Interrupted;
        }
    };
    let json = match File::create(report_dir.join(report::CUCUMBER_JSON_FILE)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("happy-istio: cannot create the Cucumber JSON report: {e}");
            return RunOutcome::Interrupted;
        }
    };
    let on_skip = Arc::new(move |s: &Skipped| {
        eprintln!(
            "happy-istio: SKIP {} — {}: {}",
            s.feature, s.scenario, s.reason
        );
        if let Ok(mut all) = skipped.lock() {
            all.push(s.clone());
        }
    });
    let cucumber = HappyWorld::cucumber::<PathBuf>()
        .with_parser(Gated { inner: parser::Basic::new(), gate, on_skip })
        .with_writer(
            writer::Basic::raw(io::stdout(), Coloring::Auto, 0)
                .summarized()
                .tee::<HappyWorld, _>(writer::JUnit::for_tee(junit, 0))
                .tee::<HappyWorld, _>(writer::Json::for_tee(json))
                .normalized(),
        )
        // Scenarios share one cluster and one namespace: one at a time.
        .max_concurrent_scenarios(1)
        // A skipped step is a failure — an undefined step must not pass for a skip — except in
        // the scenarios the gate skipped on purpose, with their reason.
        .fail_on_skipped_with(|_, _, scenario| !scenario.tags.iter().any(|t| t == SKIPPED_TAG))
        .after(|_feature, _rule, scenario, finished, world| {
            Box::pin(async move {
                let failed = matches!(
                    finished,
                    ScenarioFinished::StepFailed(..) | ScenarioFinished::BeforeHookFailed(..)
                );
                if let (true, Some(world)) = (failed, world) {
                    let env = world.env();
                    let namespaces = [NAMESPACE, ISTIO_NAMESPACE, "default"];
                    match env
                        .diagnostics
                        .capture(&env.cluster, &scenario.name, &namespaces, env.handle.istioctl())
                        .await
                    {
                        Ok(Some(path)) => eprintln!("happy-istio: diagnostics for {:?}: {}", scenario.name, path.display()),
                        Ok(None) => eprintln!("happy-istio: diagnostics cap of {DIAGNOSTICS_CAP} bundles reached; none for {:?}", scenario.name),
                        Err(e) => eprintln!("happy-istio: diagnostics for {:?} failed: {e}", scenario.name),
                    }
                }
            })
        });
    tokio::select! {
        writer = cucumber.run(features_dir()) => {
            drop(writer);
            RunOutcome::Finished
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("happy-istio: interrupted; tearing down");
            RunOutcome::Interrupted
        }
    }
}

async fn teardown(env: Arc<Env>, any_failed: bool) -> Result<(), String> {
    let env = Arc::try_unwrap(env)
        .map_err(|_| "a scenario still holds the cluster; it was not torn down".to_string())?;
    env.into_handle()
        .teardown(any_failed)
        .await
        .map_err(|e| format!("teardown failed: {e}"))
}
