//! The World of one scenario, and the run's shared environment: the cluster, its provisioner
//! and the once-per-run Istio install. Scenarios run one at a time against one namespace; the
//! World carries what a scenario observed from one step to the next.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use cucumber::World;
use happy_istio::cluster::{Cluster, ExecOutput, Forward, HttpResponse};
use happy_istio::diagnostics::Diagnostics;
use happy_istio::error::FailureClass;
use happy_istio::manifests::{Manifest, ManifestDir};
use happy_istio::probes::curl::curl_command;
use happy_istio::probes::{CurlResult, Sample, parse_prometheus};
use happy_istio::provision::once::Once;
use happy_istio::provision::{ClusterHandle, IstioInstall};
use happy_istio::retry::Convergence;
use happy_istio::timeouts::Timeouts;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::OnceCell;

/// The workshop's namespace.
pub const NAMESPACE: &str = "istioinaction";
/// Where Istio, its gateways and the addons run.
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// The sidecar container's name.
pub const SIDECAR: &str = "istio-proxy";

/// A failed step: what was expected and what was seen, and who is at fault — the claim (the
/// cluster answered, not as the workshop says) or the environment (the question could not be
/// asked). Its message always begins with `claim failed: ` or `environment failed: `, which
/// is what the runner and the reports read the class from.
#[derive(Debug)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    /// The claim failed: the cluster answered, not as the workshop says.
    pub fn claim(message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Claim,
            message: message.into(),
        }
    }

    /// The environment failed: the cluster, a tool or a setting could not be used.
    pub fn environment(message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Environment,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.class.prefix(), self.message)
    }
}

impl std::error::Error for Failure {}

/// Classified by the error's variant ([`happy_istio::Error::class`]).
impl From<happy_istio::Error> for Failure {
    fn from(e: happy_istio::Error) -> Self {
        Failure {
            class: e.class(),
            message: e.to_string(),
        }
    }
}

/// A bare message is the claim failing, as with [`fail!`].
impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::claim(s)
    }
}

/// A step's outcome.
pub type Step = Result<(), Failure>;

/// Fail a step with a formatted message: the claim failed. `fail!(environment, "…")` when it
/// is the environment.
macro_rules! fail {
    (environment, $($arg:tt)*) => {
        return Err($crate::definitions::world::Failure::environment(format!($($arg)*)))
    };
    ($($arg:tt)*) => {
        return Err($crate::definitions::world::Failure::claim(format!($($arg)*)))
    };
}
pub(crate) use fail;

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

    fn current() -> Option<Arc<Env>> {
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
        let out = self
            .cluster
            .exec(
                NAMESPACE,
                &pod_name(&pod),
                SIDECAR,
                &["curl", "-s", "localhost:15020/stats/prometheus"],
            )
            .await?;
        if out.exit_code != 0 {
            // The metrics could not be read at all: the environment, not the claim.
            fail!(
                environment,
                "curl for {deployment}'s sidecar metrics exited {}: {}",
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

/// Where a scenario's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `kubectl port-forward deploy/NAME PORT`.
    PortForward { deployment: String, port: u16 },
    /// The ingress gateway's Service, port 80.
    IngressGateway,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::PortForward { deployment, port } => {
                write!(f, "a port-forward to deploy/{deployment} on port {port}")
            }
            Route::IngressGateway => f.write_str("the ingress gateway"),
        }
    }
}

/// A request a scenario repeats: a route and a path, sent as curl sends it or loaded as a
/// browser loads it (following redirects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub route: Route,
    pub path: String,
    /// Follow redirects as a browser does ([`happy_istio::cluster::follow_redirects`]).
    pub browser: bool,
}

/// The page origin of the workshop's browser: both routes are port-forwards to local port
/// 8080 in the workshop (`kubectl port-forward deploy/service-a 8080`, `kubectl -n
/// istio-system port-forward svc/istio-ingressgateway 8080:80`).
fn browser_origin(route: &Route) -> String {
    match route {
        Route::PortForward { port, .. } => format!("http://localhost:{port}"),
        Route::IngressGateway => "http://localhost:8080".to_string(),
    }
}

/// A target's route, resolved once for a batch of requests (see
/// `happy_istio::checks::batch::converge` for why one connection may carry them all).
#[derive(Debug, Clone)]
pub enum Opened {
    /// A port-forward to the pod, reused by every request.
    Forward(Forward),
    /// D-ingress-address switched off: the workshop's LoadBalancer address, one connection per
    /// request (the address balances per connection, so a kept one would pin its choice).
    LoadBalancer,
}

impl Target {
    /// Resolve the route: the Deployment's or the gateway Service's Ready pod and its port.
    pub async fn open(&self, env: &Env) -> happy_istio::Result<Opened> {
        Ok(match &self.route {
            Route::PortForward { deployment, port } => Opened::Forward(
                env.cluster
                    .forward_to_deployment(NAMESPACE, deployment, *port)
                    .await?,
            ),
            Route::IngressGateway if super::deviations::ingress_verbatim() => Opened::LoadBalancer,
            Route::IngressGateway => Opened::Forward(
                env.cluster
                    .forward_to_service(ISTIO_NAMESPACE, "istio-ingressgateway", 80)
                    .await?,
            ),
        })
    }

    /// Send one GET request on a route of its own.
    pub async fn send(&self, env: &Env) -> happy_istio::Result<HttpResponse> {
        let opened = self.open(env).await?;
        self.send_on(env, &opened).await
    }

    /// Send one GET request (a page load with its redirects, for a browser) on `opened`.
    pub async fn send_on(&self, env: &Env, opened: &Opened) -> happy_istio::Result<HttpResponse> {
        if !self.browser {
            return get(env, opened, &self.path).await;
        }
        let origin = browser_origin(&self.route);
        happy_istio::cluster::follow_redirects(&origin, &self.path, |path| async move {
            get(env, opened, &path).await
        })
        .await
        .map_err(|e| match e {
            // The first request's own failure keeps its kind (timeouts, API errors).
            happy_istio::cluster::RedirectError::Request { error, after } if after.is_empty() => {
                error
            }
            other => happy_istio::Error::Http {
                target: format!("{} via {}", self.path, self.route),
                message: other.to_string(),
            },
        })
    }
}

async fn get(env: &Env, opened: &Opened, path: &str) -> happy_istio::Result<HttpResponse> {
    match opened {
        Opened::Forward(forward) => forward.get(path).await,
        Opened::LoadBalancer => super::deviations::get_through_load_balancer(env, path).await,
    }
}

/// One scenario's World.
#[derive(World)]
#[world(init = Self::new)]
pub struct HappyWorld {
    env: Arc<Env>,
    /// Where "I request …" sends its requests.
    pub target: Option<Target>,
    /// The last batch of responses a verdict accepted.
    pub responses: Vec<HttpResponse>,
    /// Logs read, by deployment (or deployment/container).
    pub logs: BTreeMap<String, String>,
    /// Metrics read from a sidecar.
    pub metrics: Vec<Sample>,
    /// Whose sidecar `metrics` were read from, to read them again while they catch up.
    pub metrics_of: Option<String>,
    /// The objects `istioctl kube-inject` produced.
    pub injected: Vec<Manifest>,
    /// What a packet capture printed.
    pub capture: Option<String>,
    /// The captured pod's sidecar metrics when the judged captures began, by deployment.
    pub capture_baseline: Option<(String, Vec<Sample>)>,
    /// The last curl a client made.
    pub last_curl: Option<Curl>,
    /// Kiali's graph, as fetched.
    pub graph: Option<happy_istio::checks::addons::KialiGraph>,
    /// What was read just before the scenario's requests, so verdicts judge those requests.
    pub before: Option<super::requests::Before>,
    /// The scenario's traffic, to repeat while a view that needs live traffic (Kiali) catches up.
    pub traffic: Option<super::requests::Traffic>,
}

impl fmt::Debug for HappyWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HappyWorld")
            .field("target", &self.target)
            .field("responses", &self.responses.len())
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .field("metrics", &self.metrics.len())
            .field("capture", &self.capture.as_ref().map(String::len))
            .finish()
    }
}

impl HappyWorld {
    fn new() -> Result<Self, Failure> {
        let env = Env::current().ok_or_else(|| {
            Failure::environment(
                "no cluster: the runner did not provision one before the scenarios",
            )
        })?;
        Ok(HappyWorld {
            env,
            target: None,
            responses: Vec::new(),
            logs: BTreeMap::new(),
            metrics: Vec::new(),
            metrics_of: None,
            injected: Vec::new(),
            capture: None,
            capture_baseline: None,
            last_curl: None,
            graph: None,
            before: None,
            traffic: None,
        })
    }

    /// The run's environment.
    pub fn env(&self) -> Arc<Env> {
        Arc::clone(&self.env)
    }

    /// The request target a previous "I request …" step chose.
    pub fn target(&self) -> Result<Target, Failure> {
        self.target.clone().ok_or_else(|| {
            Failure::claim("no request was chosen: a step \"I request …\" must come first")
        })
    }
}
