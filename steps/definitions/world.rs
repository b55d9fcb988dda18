//! The World of one scenario: what a scenario observed from one step to the next. Scenarios
//! run one at a time against one namespace. The pieces the World is made of have modules of
//! their own (`env`, `failure`, `target`, `readings`); they are re-exported here for the step
//! modules.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use cucumber::World;
use happy_istio::cluster::HttpResponse;
use happy_istio::manifests::Manifest;
use happy_istio::probes::Sample;

pub use super::env::{
    Curl, Env, ISTIO_NAMESPACE, LEGACY, NAMESPACE, SIDECAR, app_container, pod_name,
};
pub(crate) use super::failure::fail;
pub use super::failure::{Failure, Step};
use super::readings::{Before, SidecarCounts, Traffic};
pub use super::target::{Route, Target};

/// One scenario's World.
#[derive(World)]
#[world(init = Self::new)]
pub struct HappyWorld {
    env: Arc<Env>,
    /// Where "I request …" sent its requests.
    pub target: Option<Target>,
    /// The settled batches "I request …" kept (one batch where a Given converged on one).
    pub batches: Vec<Vec<HttpResponse>>,
    /// Every response of `batches`, in order.
    pub responses: Vec<HttpResponse>,
    /// The sidecars' counters read just before the first kept batch.
    pub sidecar_counts_before: Option<SidecarCounts>,
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
    pub before: Option<Before>,
    /// The scenario's traffic, to repeat while a view that needs live traffic (Kiali) catches up.
    pub traffic: Option<Traffic>,
    /// When the scenario's traffic began (just before its first request): Kiali's graph covers
    /// the time since then, so only this scenario's traffic decides.
    pub traffic_began: Option<tokio::time::Instant>,
    /// The uid of the Grafana dashboard the scenario found by its title.
    pub grafana_dashboard: Option<(String, String)>,
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
            batches: Vec::new(),
            responses: Vec::new(),
            sidecar_counts_before: None,
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
            traffic_began: None,
            grafana_dashboard: None,
        })
    }

    /// The run's environment.
    pub fn env(&self) -> Arc<Env> {
        Arc::clone(&self.env)
    }

    /// The reading of `deployment`, or a failure saying that the step needs one.
    pub fn before_of(&self, deployment: &str) -> Result<&Before, Failure> {
        self.before
            .as_ref()
            .filter(|b| b.deployment == deployment)
            .ok_or_else(|| {
                Failure::claim(format!(
                    "no reading of {deployment}'s sidecar was taken before the requests, so the \
                     scenario's own requests cannot be told from earlier ones: a step \
                     \"requests through the ingress gateway have …\" must come first"
                ))
            })
    }
}
