//! The run's shared environment: the cluster, its provisioner, the once-per-run Istio install
//! and addons, and the ways steps reach into pods (curl, sidecar metrics). Made once by the
//! runner before the first scenario; every scenario's World holds it.

use std::sync::{Arc, RwLock};

use happy_istio::cluster::{Cluster, ExecOutput};
use happy_istio::diagnostics::Diagnostics;
use happy_istio::manifests::{Manifest, ManifestDir};
use happy_istio::probes::curl::curl_command;
use happy_istio::probes::{CurlResult, Sample, parse_prometheus};
use happy_istio::provision::once::Once;
use happy_istio::provision::{ClusterHandle, IstioInstall};
use happy_istio::retry::Convergence;
use happy_istio::timeouts::Timeouts;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::OnceCell;

use super::failure::{Failure, Step, fail};

/// The workshop's namespace.
pub const NAMESPACE: &str = "istioinaction";
/// Where Istio, its gateways and the addons run.
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// The sidecar container's name.
pub const SIDECAR: &str = "istio-proxy";

/// The legacy client of the workshop: pod `legacy`, container `legacy`, namespace `default`.
pub const LEGACY: (&str, &str, &str) = ("default", "legacy", "legacy");

/// Everything a run shares: made once by the runner before the first scenario.
pub struct Env {
    pub cluster: Cluster,
    pub handle: Box<dyn ClusterHandle>,
    pub manifests: ManifestDir,
    pub timeouts: Timeouts,
    pub diagnostics: Diagnostics,
    istio: Once<IstioInstall>,
    addons: OnceCell<()>,
}

static ENV: RwLock<Option<Arc<Env>>> = RwLock::new(None);

impl Env {
    pub fn new(
        cluster: Cluster,
        handle: Box<dyn ClusterHandle>,
        manifests: ManifestDir,
        timeouts: Timeouts,
        diagnostics: Diagnostics,
    ) -> Self {
        Env {
            cluster,
            handle,
            manifests,
            timeouts,
            diagnostics,
            istio: Once::new("Istio install"),
            addons: OnceCell::new(),
        }
    }

    /// Make `env` the run's environment.
    pub fn install(env: Arc<Env>) {
        let mut slot = ENV.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(env);
    }

    /// Take the run's environment back (at the end of the run, for teardown).
    pub fn take() -> Option<Arc<Env>> {
        ENV.write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    pub(super) fn current() -> Option<Arc<Env>> {
        ENV.read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Give up the environment for teardown: the provisioner's handle.
    pub fn into_handle(self) -> Box<dyn ClusterHandle> {
        self.handle
    }

    /// The Istio install, made once per run (the provisioner skips it when already there). A
    /// failed install is not tried again: every later scenario fails at once with
    /// "Istio install failed earlier in this run: <first error>", an environment failure,
    /// instead of waiting out the install's limit again.
    pub async fn istio(&self) -> Result<&IstioInstall, Failure> {
        self.istio
            .get_or_run(|| self.handle.install_istio(&self.cluster))
            .await
            .map_err(Failure::from)
    }

    /// The Istio version installed, once Istio is.
    pub fn istio_version(&self) -> Option<String> {
        self.istio.get().map(|i| i.version.clone())
    }

    /// The hub of Istio's images: the installed Istio's, else the one an install by this run
    /// uses (or used, when it failed).
    pub fn istio_hub(&self) -> String {
        self.istio.get().map_or_else(
            || self.handle.istio_hub().hub.clone(),
            |i| i.hub.hub.clone(),
        )
    }

    /// The addons, installed once per run.
    pub async fn addons(&self) -> Step {
        self.istio().await?;
        self.addons
            .get_or_try_init(|| self.handle.install_addons(&self.cluster))
            .await
            .map_err(Failure::from)?;
        Ok(())
    }

    /// The policy every assertion converges with: limit, polling interval, consecutive successes.
    pub fn convergence(&self) -> Convergence {
        self.timeouts.convergence()
    }

    /// A convergence that needs only one success: for preconditions, not for verdicts.
    pub fn once(&self) -> Convergence {
        Convergence {
            consecutive: 1,
            ..self.timeouts.convergence()
        }
    }

    /// Load a workshop file from the manifests directory.
    pub fn load(&self, file: &str) -> Result<Vec<Manifest>, Failure> {
        Ok(self.manifests.load(file)?)
    }

    /// A Ready pod of a deployment.
    pub async fn ready_pod(&self, namespace: &str, deployment: &str) -> Result<Pod, Failure> {
        let pods = self.cluster.deployment_pods(namespace, deployment).await?;
        pods.into_iter()
            .find(happy_istio::cluster::pod_is_ready)
            .ok_or_else(|| {
                Failure::environment(format!(
                    "deployment {namespace}/{deployment} has no Ready pod"
                ))
            })
    }

    /// Run curl in a deployment's application container (through its sidecar when meshed).
    pub async fn curl_from(
        &self,
        namespace: &str,
        deployment: &str,
        url: &str,
    ) -> Result<Curl, Failure> {
        let pod = self.ready_pod(namespace, deployment).await?;
        let container = app_container(&pod)?;
        self.curl_from_pod(namespace, &pod_name(&pod), &container, url)
            .await
    }

    /// Run curl in a given pod and container (the legacy client has one container).
    pub async fn curl_from_pod(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        url: &str,
    ) -> Result<Curl, Failure> {
        let command = curl_command(url, self.timeouts.request);
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        let exec = self.cluster.exec(namespace, pod, container, &argv).await?;
        let result = CurlResult::from_output(exec.exit_code, &exec.stdout)?;
        Ok(Curl { exec, result })
    }

    /// The merged Prometheus metrics of a deployment's sidecar, as the workshop reads them:
    /// `kubectl exec deploy/NAME -c istio-proxy -- curl -s localhost:15020/stats/prometheus`.
    pub async fn sidecar_metrics(&self, deployment: &str) -> Result<Vec<Sample>, Failure> {
        let pod = self.ready_pod(NAMESPACE, deployment).await?;
        self.pod_sidecar_metrics(&pod_name(&pod)).await
    }

    /// One pod's sidecar metrics, as [`Env::sidecar_metrics`] reads them.
    pub async fn pod_sidecar_metrics(&self, pod: &str) -> Result<Vec<Sample>, Failure> {
        let out = self
            .cluster
            .exec(
                NAMESPACE,
                pod,
                SIDECAR,
                &["curl", "-s", "localhost:15020/stats/prometheus"],
            )
            .await?;
        if out.exit_code != 0 {
            // The metrics could not be read at all: the environment, not the claim.
            fail!(
                environment,
                "curl for {pod}'s sidecar metrics exited {}: {}",
                out.exit_code,
                out.stderr.trim()
            );
        }
        Ok(parse_prometheus(&out.stdout)?)
    }
}

/// The pod's name.
pub fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The application container of a pod: the first container that is not the sidecar.
pub fn app_container(pod: &Pod) -> Result<String, Failure> {
    pod.spec
        .as_ref()
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| c.name.clone())
        .find(|n| n != SIDECAR)
        .ok_or_else(|| {
            Failure::claim(format!(
                "pod {} has no application container",
                pod_name(pod)
            ))
        })
}

/// One curl run inside a pod: what the exec returned, and what curl made of it.
#[derive(Debug, Clone)]
pub struct Curl {
    pub exec: ExecOutput,
    pub result: CurlResult,
}

impl Curl {
    /// The status code, or `000` when there was no response.
    pub fn status(&self) -> String {
        self.result
            .http_code
            .map_or_else(|| "000".to_string(), |c| c.to_string())
    }

    /// What happened, for messages: outcome, status and curl's stderr.
    pub fn describe(&self) -> String {
        format!(
            "curl {} with status {}{}",
            self.result.outcome,
            self.status(),
            match self.exec.stderr.trim() {
                "" => String::new(),
                e => format!(": {e}"),
            }
        )
    }
}
