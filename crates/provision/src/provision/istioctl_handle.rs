//! What the real clusters (kind, k3s, the current context) have in common: a kube client, Istio
//! installed, its addons applied and `kube-inject` done by the release's istioctl, and an
//! ending that differs per provider ([`Ending`]). One implementation of [`ClusterHandle`]
//! for all three, so they cannot drift apart.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::istio_setup::IstioSetup;
use super::{Capabilities, ClusterHandle, ClusterInfo, IstioInstall};
use crate::Result;
use crate::cluster::Cluster;

/// How a provider ends its cluster at the end of a run (delete, keep, or leave it alone).
pub(super) trait Ending: Send + Sync + 'static {
    fn end(self: Box<Self>, any_failed: bool) -> BoxFuture<'static, Result<()>>;
}

/// A real cluster with istioctl-managed Istio.
pub(super) struct IstioctlCluster {
    pub client: kube::Client,
    pub info: ClusterInfo,
    pub capabilities: Capabilities,
    pub istio: IstioSetup,
    pub ending: Box<dyn Ending>,
}

impl ClusterHandle for IstioctlCluster {
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

    fn istio_hub(&self) -> &crate::istio::IstioHub {
        self.istio.hub()
    }

    fn install_addons<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<()>> {
        self.istio.install_addons(cluster).boxed()
    }

    fn kube_inject<'a>(&'a self, yaml: &'a str) -> BoxFuture<'a, Result<String>> {
        self.istio.istioctl().kube_inject(yaml).boxed()
    }

    fn istioctl(&self) -> Option<&crate::istio::Istioctl> {
        Some(self.istio.istioctl())
    }

    fn teardown(self: Box<Self>, any_failed: bool) -> BoxFuture<'static, Result<()>> {
        self.ending.end(any_failed)
    }
}
