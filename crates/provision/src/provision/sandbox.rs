//! The sandbox: happy-sandbox started in-process. Offline, seconds, no Docker, and honest about
//! what it is: every report says the run was on the sandbox, and what it lacks is stated as
//! missing capabilities so the scenarios that need them are skipped with that reason.

use futures::FutureExt;
use futures::future::BoxFuture;
use happy_sandbox::{Sandbox, SandboxOptions, mesh};
use tokio::sync::Mutex;

use super::istio_setup::{
    CONTROL_PLANE_SELECTORS, EGRESS_GATEWAY, install_watching, wait_control_plane,
};
use super::once::Once;
use super::{
    Capabilities, Capability, ClusterHandle, ClusterInfo, ClusterKind, IstioInstall, kubeconfig,
};
use crate::cluster::Cluster;
use crate::istio::IstioHub;
use crate::settings::{IstioVersionRequest, Settings};
use crate::timeouts::Timeouts;
use crate::{Error, Result};

/// Why Grafana and Kiali scenarios are skipped on the sandbox.
pub(crate) const DASHBOARDS_MISSING: &str = "Grafana and Kiali do not run on the sandbox";

/// The sandbox's capabilities: Istio (and so packet capture) needs an `envoy` binary,
/// Prometheus needs Istio and a `prometheus` binary; Grafana and Kiali never run here.
/// For a process about to exit at once: no sandbox of this process starts or restarts a
/// container any more (see `happy_sandbox::runtime::halt`).
pub fn halt() {
    happy_sandbox::runtime::halt();
}

pub(crate) fn sandbox_capabilities(
    envoy_missing: Option<String>,
    prometheus_missing: Option<String>,
) -> Capabilities {
    let istio = match envoy_missing {
        Some(reason) => Capability::missing(format!("the sandbox's Istio needs Envoy: {reason}")),
        None => Capability::available(),
    };
    let prometheus = match (istio.missing_reason(), prometheus_missing) {
        (Some(reason), _) => Capability::missing(reason),
        (None, Some(reason)) => Capability::missing(reason),
        (None, None) => Capability::available(),
    };
    Capabilities {
        prometheus,
        packet_capture: istio.clone(),
        egress_gateway: istio.clone(),
        istio,
        grafana: Capability::missing(DASHBOARDS_MISSING),
        kiali: Capability::missing(DASHBOARDS_MISSING),
    }
}

/// The sandbox emulates one Istio release; asking for another is an error, not a silent swap.
pub(crate) fn check_istio_request(request: &IstioVersionRequest) -> Result<()> {
    match request {
        IstioVersionRequest::Exact(version) if version.to_string() != mesh::ISTIO_VERSION => {
            Err(Error::InvalidSetting {
                var: "ISTIO_VERSION".into(),
                value: version.to_string(),
                reason: format!(
                    "the sandbox emulates Istio {} only; unset ISTIO_VERSION, or run a real \
                     Istio with HAPPY_CLUSTER=kind",
                    mesh::ISTIO_VERSION
                ),
            })
        }
        IstioVersionRequest::LatestDev => Err(Error::InvalidSetting {
            var: "ISTIO_VERSION".into(),
            value: "dev".into(),
            reason: format!(
                "the sandbox emulates Istio {} only; dev builds need HAPPY_CLUSTER=kind",
                mesh::ISTIO_VERSION
            ),
        }),
        // `latest` asks for whatever is newest; the sandbox would silently run its one pinned
        // release instead, so the request cannot be honoured.
        IstioVersionRequest::Latest => Err(Error::InvalidSetting {
            var: "ISTIO_VERSION".into(),
            value: "latest".into(),
            reason: format!(
                "the sandbox emulates Istio {} only, not the newest release; unset \
                 ISTIO_VERSION, or run the newest Istio with HAPPY_CLUSTER=kind",
                mesh::ISTIO_VERSION
            ),
        }),
        _ => Ok(()),
    }
}

/// What every sandbox report says.
pub(crate) fn sandbox_note(auto_note: Option<String>) -> String {
    let what = "SANDBOX run: happy-sandbox stands in for Kubernetes (and, where it can, Istio); \
                results say what the workshop's manifests do on it, not on a real cluster";
    match auto_note {
        Some(note) => format!("{note} {what}"),
        None => what.to_string(),
    }
}

struct SandboxHandle {
    sandbox: Mutex<Option<Sandbox>>,
    client: kube::Client,
    info: ClusterInfo,
    capabilities: Capabilities,
    /// The hub the sandbox's Istio names its images on: `HAPPY_ISTIO_HUB`, else the one its
    /// release would be installed from on kind.
    hub: IstioHub,
    installed: Once<IstioInstall>,
}

/// The hub of the sandbox's Istio: chosen as for the release it stands in for on kind.
pub(crate) fn sandbox_hub(setting: Option<&str>) -> Result<IstioHub> {
    let version: crate::istio::IstioVersion = mesh::ISTIO_VERSION.parse()?;
    // A release's hub never comes from its archive, so no release directory is read.
    IstioHub::choose(&version, setting, std::path::Path::new(""))
}

pub(super) async fn provision(
    settings: &Settings,
    _timeouts: &Timeouts,
    note: Option<String>,
) -> Result<Box<dyn ClusterHandle>> {
    check_istio_request(&settings.istio_version)?;
    let hub = sandbox_hub(settings.istio_hub.as_deref())?;
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .map_err(|e| Error::Provision {
            cluster: "sandbox cluster".into(),
            reason: format!("it did not start: {e}"),
        })?;
    let what = format!("sandbox at {}", sandbox.server_url());
    let text =
        std::fs::read_to_string(sandbox.kubeconfig_path()).map_err(|source| Error::LocalIo {
            action: "read the sandbox's kubeconfig".into(),
            path: sandbox.kubeconfig_path().to_path_buf(),
            source,
        })?;
    let connected = async {
        let client = kubeconfig::client_from_yaml(&text, None, &what).await?;
        let version = super::kubernetes_version(&client).await?;
        Ok::<_, Error>((client, version))
    };
    let (client, kubernetes_version) = match connected.await {
        Ok(pair) => pair,
        Err(e) => {
            sandbox.shutdown().await;
            return Err(e);
        }
    };
    eprintln!(
        "happy-istio: sandbox API server at {} (kubeconfig {})",
        sandbox.server_url(),
        sandbox.kubeconfig_path().display()
    );
    Ok(Box::new(SandboxHandle {
        info: ClusterInfo {
            kind: ClusterKind::Sandbox,
            name: sandbox.server_url().to_string(),
            kubernetes_version,
            note: Some(sandbox_note(note)),
        },
        sandbox: Mutex::new(Some(sandbox)),
        client,
        capabilities: sandbox_capabilities(
            mesh::envoy_unavailable_reason(),
            mesh::prometheus::unavailable_reason(),
        ),
        hub,
        installed: Once::new("Istio install"),
    }))
}

impl SandboxHandle {
    /// The install as on kind: the objects `istioctl install` creates, with the control plane
    /// watched while they are made, then the same wait for istiod and both gateways
    /// ([`install_watching`], [`wait_control_plane`]), so a pod that cannot start (a pull
    /// fault on the hub) ends it at once with the cluster's words.
    async fn install_once(&self, cluster: &Cluster) -> Result<IstioInstall> {
        let hub = &self.hub;
        install_watching(cluster, hub, |abort| async move {
            let guard = self.sandbox.lock().await;
            let sandbox = guard.as_ref().ok_or_else(stopped)?;
            eprintln!(
                "happy-istio: installing the sandbox's Istio {} (demo profile on Envoy), images from {hub}",
                mesh::ISTIO_VERSION
            );
            tokio::select! {
                installed = sandbox.install_istio_from(&hub.hub) => {
                    installed.map_err(|e| sandbox_error("installing Istio failed", e))
                }
                error = abort => Err(error),
            }
        })
        .await?;
        // The sandbox makes the objects at once; the wait for them is what istioctl's
        // readiness wait is on kind, within the same limit. Only for the components the
        // install made: under the test-only HAPPY_SANDBOX_ISTIO_PROFILE=default it makes no
        // egress gateway (as istioctl's default profile does not), and waiting for one would
        // turn C05's verdict into an install timeout; its scenario finds it missing instead.
        let egress_made = deployment_exists(cluster, EGRESS_GATEWAY_DEPLOYMENT).await?;
        let selectors: Vec<(&str, &str)> = CONTROL_PLANE_SELECTORS
            .into_iter()
            .filter(|(what, _)| egress_made || *what != EGRESS_GATEWAY)
            .collect();
        wait_control_plane(cluster, &selectors, hub, cluster.timeouts().istio_install).await?;
        Ok(IstioInstall {
            version: mesh::ISTIO_VERSION.to_string(),
            hub: hub.clone(),
            revision_note: Some(format!(
                "Istio {} as emulated by happy-sandbox on real Envoy",
                mesh::ISTIO_VERSION
            )),
            missing_egress_gateway: None,
        })
    }
}

/// The egress gateway's Deployment in istio-system (the demo profile's `istio-egressgateway`).
const EGRESS_GATEWAY_DEPLOYMENT: &str = "istio-egressgateway";

/// Whether istio-system has the Deployment `name`.
async fn deployment_exists(cluster: &Cluster, name: &str) -> Result<bool> {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(
        cluster.client().clone(),
        super::istio_setup::ISTIO_NAMESPACE,
    );
    api.get_opt(name)
        .await
        .map(|d| d.is_some())
        .map_err(|e| Error::kube(format!("get Deployment {name} in istio-system"), e))
}

fn sandbox_error(action: &str, e: impl std::fmt::Display) -> Error {
    Error::Provision {
        cluster: "sandbox cluster".into(),
        reason: format!("{action}: {e}"),
    }
}

fn stopped() -> Error {
    sandbox_error("the sandbox", "it has already been stopped")
}

impl ClusterHandle for SandboxHandle {
    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn info(&self) -> &ClusterInfo {
        &self.info
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn install_istio<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<IstioInstall>> {
        async move {
            self.installed
                .get_or_run(|| self.install_once(cluster))
                .await
                .cloned()
        }
        .boxed()
    }

    fn istio_hub(&self) -> &IstioHub {
        &self.hub
    }

    fn install_addons<'a>(&'a self, _cluster: &'a Cluster) -> BoxFuture<'a, Result<()>> {
        async move {
            let guard = self.sandbox.lock().await;
            let sandbox = guard.as_ref().ok_or_else(stopped)?;
            sandbox
                .install_addons()
                .await
                .map_err(|e| sandbox_error("installing the addons failed", e))
        }
        .boxed()
    }

    fn kube_inject<'a>(&'a self, yaml: &'a str) -> BoxFuture<'a, Result<String>> {
        async move {
            let guard = self.sandbox.lock().await;
            let sandbox = guard.as_ref().ok_or_else(stopped)?;
            sandbox
                .kube_inject(yaml)
                .map_err(|e| sandbox_error("kube-inject failed", e))
        }
        .boxed()
    }

    fn istioctl(&self) -> Option<&crate::istio::Istioctl> {
        None
    }

    fn teardown(self: Box<Self>, _any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async move {
            if let Some(sandbox) = self.sandbox.lock().await.take() {
                sandbox.shutdown().await;
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_follow_envoy_and_prometheus() {
        let caps = sandbox_capabilities(Some("no envoy on PATH".into()), None);
        let reason = caps.istio.missing_reason().unwrap();
        assert!(reason.contains("Envoy") && reason.contains("no envoy on PATH"));
        assert_eq!(caps.packet_capture.missing_reason(), Some(reason));
        assert_eq!(caps.prometheus.missing_reason(), Some(reason));

        let caps = sandbox_capabilities(None, Some("no prometheus".into()));
        assert!(caps.istio.is_available() && caps.packet_capture.is_available());
        assert_eq!(caps.prometheus.missing_reason(), Some("no prometheus"));

        let caps = sandbox_capabilities(None, None);
        assert!(caps.istio.is_available() && caps.prometheus.is_available());
        assert_eq!(caps.grafana.missing_reason(), Some(DASHBOARDS_MISSING));
        assert_eq!(caps.kiali.missing_reason(), Some(DASHBOARDS_MISSING));
    }

    #[test]
    fn another_istio_version_is_refused_by_name() {
        assert!(check_istio_request(&IstioVersionRequest::Pinned).is_ok());
        let err = check_istio_request(&IstioVersionRequest::Latest)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ISTIO_VERSION") && err.contains("latest"),
            "{err}"
        );
        let err = check_istio_request(&IstioVersionRequest::LatestDev).unwrap_err();
        assert!(err.to_string().contains("ISTIO_VERSION"));
        let other: crate::istio::version::IstioVersion = "1.22.0".parse().unwrap();
        let err = check_istio_request(&IstioVersionRequest::Exact(other))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ISTIO_VERSION") && err.contains(mesh::ISTIO_VERSION));
        let same: crate::istio::version::IstioVersion = mesh::ISTIO_VERSION.parse().unwrap();
        assert!(check_istio_request(&IstioVersionRequest::Exact(same)).is_ok());
    }

    #[test]
    fn every_sandbox_report_says_so() {
        assert!(sandbox_note(None).contains("SANDBOX"));
        let auto = sandbox_note(Some(
            "HAPPY_CLUSTER is unset and no Docker daemon answered.".into(),
        ));
        assert!(auto.starts_with("HAPPY_CLUSTER is unset") && auto.contains("SANDBOX run"));
    }
}

#[cfg(test)]
mod live {
    use std::collections::HashMap;

    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;
    use kube::api::ListParams;

    use super::mesh;
    use crate::provision::{ClusterKind, provision};
    use crate::settings::Settings;
    use crate::timeouts::Timeouts;

    /// The whole path a run takes with HAPPY_CLUSTER=sandbox: provision, talk kube-rs, tear down.
    #[tokio::test]
    async fn provisions_a_sandbox_that_answers_kube_rs_and_tears_down() {
        let cache = tempfile::tempdir().unwrap();
        let vars: HashMap<&str, String> = HashMap::from([
            ("HAPPY_CLUSTER", "sandbox".to_string()),
            ("HAPPY_CACHE_DIR", cache.path().display().to_string()),
        ]);
        let settings = Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let timeouts = Timeouts::from_lookup(|_| None).unwrap();
        let handle = provision(&settings, &timeouts).await.unwrap();
        assert_eq!(handle.info().kind, ClusterKind::Sandbox);
        assert!(
            handle
                .info()
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("SANDBOX")
        );
        assert_eq!(
            handle.capabilities().istio.is_available(),
            mesh::envoy_unavailable_reason().is_none()
        );
        assert!(handle.istioctl().is_none());
        let namespaces: Api<Namespace> = Api::all(handle.client());
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(names.iter().any(|n| n == "default"), "{names:?}");
        let err = handle
            .kube_inject("kind: [unclosed")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("kube-inject"), "{err}");
        handle.teardown(false).await.unwrap();
    }

    /// The sandbox's install names the hub's images, watches them as on kind, fails in seconds
    /// when they cannot be pulled, and a second call returns that failure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unpullable_hub_fails_the_install_at_once_and_only_once() {
        let cache = tempfile::tempdir().unwrap();
        let vars: HashMap<&str, String> = HashMap::from([
            ("HAPPY_CLUSTER", "sandbox".to_string()),
            ("HAPPY_CACHE_DIR", cache.path().display().to_string()),
            ("HAPPY_ISTIO_HUB", "docker.io/no-such-hub".to_string()),
        ]);
        let settings = Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let timeouts = Timeouts::from_lookup(|_| None).unwrap();
        let handle = provision(&settings, &timeouts).await.unwrap();
        assert_eq!(handle.istio_hub().hub, "docker.io/no-such-hub");
        let cluster = crate::cluster::Cluster::new(handle.client(), timeouts.clone());
        let started = std::time::Instant::now();
        let first = handle.install_istio(&cluster).await.unwrap_err();
        let took = started.elapsed();
        let text = first.to_string();
        println!("the sandbox's install failed after {took:?}: {text}");
        assert!(
            took < std::time::Duration::from_secs(60) && took < timeouts.pod_ready / 3,
            "{took:?}"
        );
        for part in [
            "docker.io/no-such-hub/pilot:",
            "ErrImagePull",
            "HAPPY_ISTIO_HUB",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        let started = std::time::Instant::now();
        let again = handle
            .install_istio(&cluster)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            again.starts_with("Istio install failed earlier in this run: "),
            "{again}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        handle.teardown(false).await.unwrap();
    }
}
