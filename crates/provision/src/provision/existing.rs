//! The current kubeconfig context: nothing is started, Istio is installed only when istiod is
//! missing (found by its `app=istiod` label, revisioned installs included), and teardown
//! deletes nothing (the suite's namespace is the runner's concern). Kubernetes is not ours to
//! choose here, so a version outside the Istio minor's window is warned about, not refused.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::istio_setup::{IstioSetup, WhenInstalled, installed_istio};
use super::istioctl_handle::{Ending, IstioctlCluster};
use super::{Capabilities, Capability, ClusterHandle, ClusterInfo, ClusterKind};
use crate::istio::KubeTarget;
use crate::settings::Settings;
use crate::timeouts::Timeouts;
use crate::{Error, Result};

/// The current context's cluster is not the suite's: it is left as it was found.
struct LeaveRunning;

pub(super) async fn provision(
    settings: &Settings,
    timeouts: &Timeouts,
) -> Result<Box<dyn ClusterHandle>> {
    let config = kube::Config::infer().await.map_err(|e| Error::Provision {
        cluster: "existing cluster (current kubeconfig context)".into(),
        reason: format!("no usable kubeconfig or in-cluster config (HAPPY_CLUSTER=existing uses the current context): {e}"),
    })?;
    let name = kube::config::Kubeconfig::read()
        .ok()
        .and_then(|k| k.current_context)
        .unwrap_or_else(|| config.cluster_url.to_string());
    let client = kube::Client::try_from(config)
        .map_err(|e| Error::kube("build a client for the current context", e))?;
    let kubernetes_version = super::kubernetes_version(&client).await?;
    let present = installed_istio(&client).await?;
    let mut capabilities = Capabilities::all();
    if let Some(found) = &present {
        // Only the workshop's install makes proxies privileged, which tcpdump needs.
        capabilities.packet_capture = Capability::missing(
            "Istio was installed before the suite ran; its proxies may not be privileged, which tcpdump in istio-proxy needs",
        );
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client.clone(), super::istio_setup::ISTIO_NAMESPACE);
        let egress = pods
            .list(&kube::api::ListParams::default().labels("app=istio-egressgateway"))
            .await
            .map_err(|e| Error::kube("list pods app=istio-egressgateway in istio-system", e))?;
        if egress.items.is_empty() {
            capabilities.egress_gateway =
                Capability::missing(super::istio_setup::egress_missing_reason(found));
        }
    }
    let istio = IstioSetup::prepare(
        settings,
        timeouts,
        KubeTarget::default(),
        WhenInstalled::Keep,
        false,
    )
    .await?;
    // The Istio that will run: the one found (when its tag reads as a version), else ours.
    let running = present
        .as_deref()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<crate::istio::IstioVersion>().ok())
        .unwrap_or_else(|| istio.istioctl().version().clone());
    let mut notes: Vec<String> = present
        .map(|v| format!("the current context already runs Istio {v}; it is used as it is"))
        .into_iter()
        .collect();
    notes.push(window_warning(&running, &kubernetes_version));
    Ok(Box::new(IstioctlCluster {
        client,
        info: ClusterInfo {
            kind: ClusterKind::Existing,
            name,
            kubernetes_version,
            note: Some(notes.join("; ")),
        },
        capabilities,
        istio,
        ending: Box::new(LeaveRunning),
    }))
}

/// The Kubernetes window verdict for a cluster the suite did not choose: printed loudly when
/// outside or unknown, and returned for the report either way.
fn window_warning(istio: &crate::istio::IstioVersion, kubernetes_version: &str) -> String {
    use crate::istio::support_window::{Support, check, describe, parse_kube_minor};
    let Some(kube) = parse_kube_minor(kubernetes_version) else {
        let line = format!(
            "WARNING: the API server's version {kubernetes_version:?} could not be read as major.minor; its support by Istio {istio} is unknown"
        );
        eprintln!("happy-istio: {line}");
        return line;
    };
    let support = check(istio, kube);
    let line = describe(istio, kube, &support);
    match support {
        Support::Supported(_) => line,
        Support::Outside(_) => {
            let line = format!(
                "WARNING: {line}; HAPPY_CLUSTER=existing does not choose Kubernetes, so the run goes on, but failures may come from the pairing"
            );
            eprintln!("{}", super::banner(&line));
            line
        }
        Support::Unknown(_) => {
            eprintln!("happy-istio: WARNING: {line}");
            format!("WARNING: {line}")
        }
    }
}

impl Ending for LeaveRunning {
    fn end(self: Box<Self>, _any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async { Ok(()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_cluster_outside_the_window_is_warned_not_refused() {
        let istio: crate::istio::IstioVersion = "1.29.8".parse().unwrap();
        let outside = window_warning(&istio, "v1.36.1");
        assert!(
            outside.starts_with("WARNING")
                && outside.contains("OUTSIDE")
                && outside.contains("the run goes on"),
            "{outside}"
        );
        let inside = window_warning(&istio, "v1.33.9+k3s1");
        assert!(
            !inside.contains("WARNING") && inside.contains("supported"),
            "{inside}"
        );
        assert!(window_warning(&istio, "weird").contains("could not be read"));
    }
}
