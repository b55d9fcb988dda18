//! Provisioners: where the suite's cluster comes from. One implementation per cluster kind
//! (kind, k3s, existing, sandbox) behind [`ClusterHandle`]; steps see only a `kube::Client`,
//! the capabilities a cluster may lack (each with the reason), and Istio tooling.
//!
//! `HAPPY_CLUSTER` unset (`auto`) picks kind when a Docker daemon answers, else the sandbox,
//! and says so loudly: [`ClusterInfo::note`] carries the announcement into the report.
//!
//! Before kind or k3s create anything, [`preflight`] checks everything they need and
//! reports every problem at once; `HAPPY_PREFLIGHT=warn` lets the run go on regardless.

pub mod docker;
mod existing;
pub(crate) mod istio_setup;
mod istioctl_handle;
pub mod k3s;
pub mod kind;
mod kubeconfig;
pub mod once;
pub mod preflight;
pub mod registry_auth;
pub mod sandbox;

use futures::future::BoxFuture;

use crate::cluster::Cluster;
use crate::settings::{ClusterChoice, PreflightMode, Settings};
use crate::timeouts::Timeouts;
use crate::{Error, Result};

pub use crate::cluster_kind::ClusterKind;

/// Whether a cluster offers something a scenario needs; when not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability(std::result::Result<(), String>);

impl Capability {
    /// Offered.
    pub fn available() -> Self {
        Self(Ok(()))
    }

    /// Not offered, with the reason a skipped scenario states.
    pub fn missing(reason: impl Into<String>) -> Self {
        Self(Err(reason.into()))
    }

    /// True when offered.
    pub fn is_available(&self) -> bool {
        self.0.is_ok()
    }

    /// The reason it is missing, if it is.
    pub fn missing_reason(&self) -> Option<&str> {
        self.0.as_ref().err().map(String::as_str)
    }
}

/// What a cluster offers beyond plain Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Istio (istiod, gateways, sidecar injection).
    pub istio: Capability,
    /// The Prometheus addon.
    pub prometheus: Capability,
    /// The Grafana addon.
    pub grafana: Capability,
    /// The Kiali addon.
    pub kiali: Capability,
    /// tcpdump inside istio-proxy (privileged proxies).
    pub packet_capture: Capability,
    /// Istio's egress gateway (only the demo profile installs one; a kept install may lack it).
    pub egress_gateway: Capability,
}

impl Capabilities {
    /// Everything offered (a real cluster with the workshop's Istio install).
    pub fn all() -> Self {
        Self {
            istio: Capability::available(),
            prometheus: Capability::available(),
            grafana: Capability::available(),
            kiali: Capability::available(),
            packet_capture: Capability::available(),
            egress_gateway: Capability::available(),
        }
    }
}

/// What the run is on, for the output and the reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The kind.
    pub kind: ClusterKind,
    /// Its name (kind cluster, kubeconfig context, container).
    pub name: String,
    /// The API server's version, e.g. `v1.35.0`.
    pub kubernetes_version: String,
    /// Something every report must say (auto-selection, reuse, what the sandbox is).
    pub note: Option<String>,
}

/// The outcome of installing Istio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioInstall {
    /// The version running (istiod's image tag).
    pub version: String,
    /// Where its images come from.
    pub hub: crate::istio::IstioHub,
    /// How it came to be, when not a fresh install (kept, reused, replaced).
    pub revision_note: Option<String>,
    /// Set when a kept install has no egress gateway: the reason the scenarios needing one
    /// (C05's egress check) are skipped with.
    pub missing_egress_gateway: Option<String>,
}

/// A provisioned cluster. Teardown consumes it; it is safe after a partial setup.
pub trait ClusterHandle: Send + Sync {
    /// A client for the cluster.
    fn client(&self) -> kube::Client;
    /// What the cluster is.
    fn info(&self) -> &ClusterInfo;
    /// What it offers.
    fn capabilities(&self) -> &Capabilities;
    /// Installs Istio, once per run (later calls return the first outcome, a failure included).
    fn install_istio<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<IstioInstall>>;
    /// The hub an install by this run takes Istio's images from (a kept install reports its
    /// own in [`IstioInstall::hub`]).
    fn istio_hub(&self) -> &crate::istio::IstioHub;
    /// Applies the release's addons (Prometheus, Grafana, Kiali, …); does not wait for them.
    fn install_addons<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<()>>;
    /// `istioctl kube-inject` of a manifest (the sandbox brings its own injector).
    fn kube_inject<'a>(&'a self, yaml: &'a str) -> BoxFuture<'a, Result<String>>;
    /// istioctl aimed at this cluster (kubeconfig and context), when the cluster has one (for
    /// diagnostics' proxy-config).
    fn istioctl(&self) -> Option<&crate::istio::Istioctl>;
    /// Deletes what the provisioner created, unless `HAPPY_KEEP` says to keep it.
    fn teardown(self: Box<Self>, any_failed: bool) -> BoxFuture<'static, Result<()>>;
}

/// The cluster kind a run uses, and the announcement to make about the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The kind chosen.
    pub kind: ClusterKind,
    /// Set when the choice was automatic and must be announced.
    pub note: Option<String>,
}

/// Chooses the cluster kind. `docker` is the outcome of the daemon check (only consulted for
/// `auto`; kind and k3s check it themselves, with an error that says what to do).
pub fn select(
    choice: ClusterChoice,
    docker: impl FnOnce() -> std::result::Result<String, String>,
) -> Selection {
    let fixed = |kind| Selection { kind, note: None };
    match choice {
        ClusterChoice::Kind => fixed(ClusterKind::Kind),
        ClusterChoice::K3s => fixed(ClusterKind::K3s),
        ClusterChoice::Existing => fixed(ClusterKind::Existing),
        ClusterChoice::Sandbox => fixed(ClusterKind::Sandbox),
        ClusterChoice::Auto => match docker() {
            Ok(endpoint) => Selection {
                kind: ClusterKind::Kind,
                note: Some(format!(
                    "HAPPY_CLUSTER is unset: a Docker daemon answered at {endpoint}, so this run uses kind"
                )),
            },
            Err(reason) => Selection {
                kind: ClusterKind::Sandbox,
                note: Some(format!(
                    "HAPPY_CLUSTER is unset and {reason}: this run uses the SANDBOX, an in-process \
                     stand-in for Kubernetes and Istio, not a real cluster. Start Docker or set \
                     HAPPY_CLUSTER=kind for the real thing."
                )),
            },
        },
    }
}

/// The banner printed on stderr for an automatic choice.
pub fn banner(note: &str) -> String {
    let rule = "=".repeat(78);
    format!("{rule}\nhappy-istio: {note}\n{rule}")
}

/// Provisions the cluster `settings` ask for.
pub async fn provision(settings: &Settings, timeouts: &Timeouts) -> Result<Box<dyn ClusterHandle>> {
    crate::download::install_crypto_provider();
    let docker_check = if settings.cluster == ClusterChoice::Auto {
        Some(
            docker::docker_available()
                .await
                .map(|engine| engine.to_string()),
        )
    } else {
        None
    };
    let selection = select(settings.cluster, || {
        docker_check.unwrap_or_else(|| Err("the Docker daemon was not checked".into()))
    });
    if let Some(note) = &selection.note {
        eprintln!("{}", banner(note));
    }
    match selection.kind {
        ClusterKind::Kind => {
            let engine = preflight_for(preflight::Target::Kind, settings, timeouts).await?;
            kind::provision(settings, timeouts, selection.note, engine).await
        }
        ClusterKind::K3s => {
            preflight_for(preflight::Target::K3s, settings, timeouts).await?;
            k3s::provision(settings, timeouts).await
        }
        ClusterKind::Existing => existing::provision(settings, timeouts).await,
        ClusterKind::Sandbox => sandbox::provision(settings, timeouts, selection.note).await,
    }
}

/// Runs the preflight, prints it, and stops the run on a problem unless `HAPPY_PREFLIGHT=warn`.
/// Returns the engine found (kind runs against it).
async fn preflight_for(
    target: preflight::Target,
    settings: &Settings,
    timeouts: &Timeouts,
) -> Result<docker::EngineFound> {
    let report = preflight::run(target, settings, timeouts).await;
    // A stopping report travels in the error; one that lets the run go on is printed here.
    if report.passed() || settings.preflight == PreflightMode::Warn {
        eprint!("{}", report.render());
    }
    preflight_verdict(target, report, settings.preflight)
}

/// What a preflight report means for the run.
pub(crate) fn preflight_verdict(
    target: preflight::Target,
    report: preflight::Report,
    mode: PreflightMode,
) -> Result<docker::EngineFound> {
    let kind = match target {
        preflight::Target::Kind => ClusterKind::Kind,
        preflight::Target::K3s => ClusterKind::K3s,
    };
    let failed = !report.passed();
    match (report.engine.clone(), failed, mode) {
        (Some(engine), false, _) | (Some(engine), true, PreflightMode::Warn) => {
            if failed {
                eprintln!(
                    "happy-istio: preflight found problems; going on because HAPPY_PREFLIGHT=warn"
                );
            }
            Ok(engine)
        }
        (engine, _, _) => {
            let text = report.render();
            let reason = if engine.is_none() {
                docker_missing_reason(kind, "no container engine answered")
            } else {
                format!(
                    "HAPPY_CLUSTER={kind}: the preflight found problems (HAPPY_PREFLIGHT=warn goes on regardless)"
                )
            };
            Err(Error::Provision {
                cluster: format!("{kind} cluster"),
                reason: format!("{reason}; nothing was created.\n{text}"),
            })
        }
    }
}

/// What a cluster kind that needs a container engine says when none answered.
fn docker_missing_reason(kind: ClusterKind, reason: &str) -> String {
    format!(
        "HAPPY_CLUSTER={kind} needs a Docker daemon, but {reason}. Start Docker (or point \
         DOCKER_HOST at it), or run without Docker with HAPPY_CLUSTER=sandbox"
    )
}

/// The API server's version (`v1.35.0`).
pub(crate) async fn kubernetes_version(client: &kube::Client) -> Result<String> {
    client
        .apiserver_version()
        .await
        .map(|info| info.git_version)
        .map_err(|e| Error::kube("read the API server's version", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_never_consult_docker() {
        for (choice, kind) in [
            (ClusterChoice::Kind, ClusterKind::Kind),
            (ClusterChoice::K3s, ClusterKind::K3s),
            (ClusterChoice::Existing, ClusterKind::Existing),
            (ClusterChoice::Sandbox, ClusterKind::Sandbox),
        ] {
            let selection = select(choice, || panic!("docker consulted for {choice}"));
            assert_eq!(selection, Selection { kind, note: None });
        }
    }

    #[test]
    fn auto_picks_kind_with_docker_and_the_sandbox_without_and_says_so() {
        let with = select(ClusterChoice::Auto, || {
            Ok("unix:///var/run/docker.sock".into())
        });
        assert_eq!(with.kind, ClusterKind::Kind);
        assert!(with.note.unwrap().contains("unix:///var/run/docker.sock"));

        let without = select(ClusterChoice::Auto, || {
            Err("no Docker daemon answered (x)".into())
        });
        assert_eq!(without.kind, ClusterKind::Sandbox);
        let note = without.note.unwrap();
        assert!(
            note.contains("SANDBOX") && note.contains("no Docker daemon answered (x)"),
            "{note}"
        );
        assert!(banner(&note).lines().count() >= 3);
    }

    #[tokio::test]
    async fn missing_docker_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}/docker.sock", dir.path().display());
        let env = docker::EngineEnv {
            docker_host: Some(host.clone()),
            ..docker::EngineEnv::default()
        };
        let reason = docker::find_engine(&env, std::time::Duration::from_secs(2))
            .await
            .unwrap_err();
        let text = docker_missing_reason(ClusterKind::Kind, &reason);
        assert!(
            text.starts_with("HAPPY_CLUSTER=kind needs a Docker daemon"),
            "{text}"
        );
        assert!(
            text.contains(&host)
                && text.contains("Start Docker")
                && text.contains("HAPPY_CLUSTER=sandbox"),
            "{text}"
        );
    }

    fn report(engine: bool, problem: bool) -> preflight::Report {
        let mut checks = vec![preflight::Check {
            name: "kind",
            outcome: preflight::Outcome::Ok("pinned".into()),
        }];
        if problem {
            checks.push(preflight::Check {
                name: "host port",
                outcome: preflight::Outcome::Problem {
                    problem: "127.0.0.1:8080 taken".into(),
                    fix: "free it".into(),
                },
            });
        }
        preflight::Report {
            target: preflight::Target::Kind,
            checks,
            engine: engine.then(|| docker::EngineFound {
                provider: docker::Provider::Docker,
                endpoint: "unix:///var/run/docker.sock".into(),
                origin: "the Docker CLI's default context".into(),
                docker_host_for_kind: None,
            }),
        }
    }

    #[test]
    fn a_preflight_problem_stops_the_run_unless_warn_and_no_engine_always_does() {
        use preflight::Target::Kind;
        assert!(preflight_verdict(Kind, report(true, false), PreflightMode::Strict).is_ok());
        let err = preflight_verdict(Kind, report(true, true), PreflightMode::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nothing was created")
                && err.contains("PROBLEM  host port: 127.0.0.1:8080 taken")
                && err.contains("fix: free it")
                && err.contains("HAPPY_PREFLIGHT=warn"),
            "{err}"
        );
        assert!(preflight_verdict(Kind, report(true, true), PreflightMode::Warn).is_ok());
        // Without an engine there is nothing to go on with, whatever the mode.
        let err = preflight_verdict(Kind, report(false, true), PreflightMode::Warn)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a Docker daemon"), "{err}");
    }

    #[test]
    fn capabilities_state_reasons() {
        let missing = Capability::missing("Grafana and Kiali do not run on the sandbox");
        assert!(!missing.is_available());
        assert_eq!(
            missing.missing_reason(),
            Some("Grafana and Kiali do not run on the sandbox")
        );
        assert!(Capability::available().is_available());
        assert_eq!(Capabilities::all().kiali.missing_reason(), None);
        assert_eq!(ClusterKind::K3s.to_string(), "k3s");
    }
}
