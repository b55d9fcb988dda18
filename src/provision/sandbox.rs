//! The sandbox: happy-sandbox started in-process. Offline, seconds, no Docker, and honest about
//! what it is: every report says the run was on the sandbox, and what it lacks is stated as
//! missing capabilities so the scenarios that need them are skipped with that reason.

use std::path::Path;

use futures::FutureExt;
use futures::future::BoxFuture;
use happy_sandbox::{Sandbox, SandboxOptions};
use tokio::sync::Mutex;

use super::{
    Capabilities, Capability, ClusterHandle, ClusterInfo, ClusterKind, IstioInstall, kubeconfig,
};
use crate::cluster::Cluster;
use crate::settings::Settings;
use crate::timeouts::Timeouts;
use crate::{Error, Result};

/// Why Istio scenarios are skipped on the sandbox. The single place to flip when the
/// sandbox's Istio half lands: set this to `None`.
pub const ISTIO_MISSING: Option<&str> = Some("the sandbox does not provide Istio yet");

/// Why Grafana and Kiali scenarios are skipped on the sandbox.
pub const DASHBOARDS_MISSING: &str = "Grafana and Kiali do not run on the sandbox";

/// The sandbox's capabilities, derived from [`ISTIO_MISSING`].
pub fn sandbox_capabilities(istio_missing: Option<&str>) -> Capabilities {
    let istio = match istio_missing {
        Some(reason) => Capability::missing(reason),
        None => Capability::available(),
    };
    Capabilities {
        prometheus: istio.clone(),
        packet_capture: istio.clone(),
        istio,
        grafana: Capability::missing(DASHBOARDS_MISSING),
        kiali: Capability::missing(DASHBOARDS_MISSING),
    }
}

/// What every sandbox report says.
pub fn sandbox_note(auto_note: Option<String>) -> String {
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
}

pub(super) async fn provision(
    settings: &Settings,
    _timeouts: &Timeouts,
    note: Option<String>,
) -> Result<Box<dyn ClusterHandle>> {
    let _ = settings;
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
        capabilities: sandbox_capabilities(ISTIO_MISSING),
    }))
}

fn no_istio() -> Error {
    Error::Provision {
        cluster: "sandbox cluster".into(),
        reason: ISTIO_MISSING
            .unwrap_or("Istio is built into the sandbox")
            .to_string(),
    }
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

    fn install_istio<'a>(&'a self, _cluster: &'a Cluster) -> BoxFuture<'a, Result<IstioInstall>> {
        async { Err(no_istio()) }.boxed()
    }

    fn install_addons<'a>(&'a self, _cluster: &'a Cluster) -> BoxFuture<'a, Result<()>> {
        async { Err(no_istio()) }.boxed()
    }

    fn kube_inject<'a>(&'a self, _yaml: &'a str) -> BoxFuture<'a, Result<String>> {
        async { Err(no_istio()) }.boxed()
    }

    fn istioctl(&self) -> Option<&Path> {
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
    fn capabilities_without_istio() {
        let caps = sandbox_capabilities(ISTIO_MISSING);
        assert_eq!(
            caps.istio.missing_reason(),
            Some("the sandbox does not provide Istio yet")
        );
        assert_eq!(
            caps.packet_capture.missing_reason(),
            Some("the sandbox does not provide Istio yet")
        );
        assert_eq!(caps.grafana.missing_reason(), Some(DASHBOARDS_MISSING));
        assert_eq!(caps.kiali.missing_reason(), Some(DASHBOARDS_MISSING));
    }

    #[test]
    fn capabilities_once_istio_lands() {
        let caps = sandbox_capabilities(None);
        assert!(
            caps.istio.is_available()
                && caps.prometheus.is_available()
                && caps.packet_capture.is_available()
        );
        assert!(!caps.grafana.is_available() && !caps.kiali.is_available());
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
        assert!(!handle.capabilities().istio.is_available());
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
            .kube_inject("kind: Deployment")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not provide Istio"), "{err}");
        handle.teardown(false).await.unwrap();
    }
}
