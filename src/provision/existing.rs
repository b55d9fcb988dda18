//! The current kubeconfig context: nothing is started, Istio is installed only when istiod is
//! missing, and teardown deletes nothing (the suite's namespace is the runner's concern).

use std::path::Path;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::istio_setup::{IstioSetup, WhenInstalled, installed_istio};
use super::{Capabilities, Capability, ClusterHandle, ClusterInfo, ClusterKind, IstioInstall};
use crate::cluster::Cluster;
use crate::istio::KubeTarget;
use crate::settings::Settings;
use crate::timeouts::Timeouts;
use crate::{Error, Result};

struct ExistingHandle {
    client: kube::Client,
    info: ClusterInfo,
    capabilities: Capabilities,
    istio: IstioSetup,
}

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
    Ok(Box::new(ExistingHandle {
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
    }))
}

impl ClusterHandle for ExistingHandle {
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
        self.istio.install(cluster).boxed()
    }

    fn install_addons<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<()>> {
        self.istio.install_addons(cluster).boxed()
    }

    fn kube_inject<'a>(&'a self, yaml: &'a str) -> BoxFuture<'a, Result<String>> {
        self.istio.istioctl().kube_inject(yaml).boxed()
    }

    fn istioctl(&self) -> Option<&Path> {
        Some(self.istio.istioctl().path())
    }

    fn teardown(self: Box<Self>, _any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async { Ok(()) }.boxed()
    }
}
