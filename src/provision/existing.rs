//! The current kubeconfig context: nothing is started, Istio is installed only when istiod is
//! missing, and teardown deletes nothing (the suite's namespace is the runner's concern).

use futures::FutureExt;
use futures::future::BoxFuture;

use super::istio_setup::{IstioSetup, WhenInstalled, installed_istio};
use super::istioctl_cluster::{Ending, IstioctlCluster};
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
    if present.is_some() {
        // Only the workshop's install makes proxies privileged, which tcpdump needs.
        capabilities.packet_capture = Capability::missing(
            "Istio was installed before the suite ran; its proxies may not be privileged, which tcpdump in istio-proxy needs",
        );
    }
    let istio = IstioSetup::prepare(
        settings,
        timeouts,
        KubeTarget::default(),
        WhenInstalled::Keep,
        false,
    )
    .await?;
    Ok(Box::new(IstioctlCluster {
        client,
        info: ClusterInfo {
            kind: ClusterKind::Existing,
            name,
            kubernetes_version,
            note: present.map(|v| {
                format!("the current context already runs Istio {v}; it is used as it is")
            }),
        },
        capabilities,
        istio,
        ending: Box::new(LeaveRunning),
    }))
}

impl Ending for LeaveRunning {
    fn end(self: Box<Self>, _any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async { Ok(()) }.boxed()
    }
}
