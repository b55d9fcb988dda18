//! What a scenario reads before its requests and repeats while a view catches up: the sidecar's
//! counters and log length before a batch ([`Before`], so verdicts judge the scenario's own
//! requests), and the scenario's traffic ([`Traffic`]).

use std::collections::BTreeMap;

use happy_istio::probes::Sample;

use super::env::{Env, NAMESPACE, SIDECAR, pod_name};
use super::failure::Failure;
use super::target::Target;

/// The workload every request through the ingress gateway enters: the readings in [`Before`]
/// are of its sidecar.
pub(crate) const ENTRY: &str = "service-a";

/// Readings of a workload's sidecar taken just before a batch of requests: verdicts on
/// counters and logs judge the growth since then, i.e. the scenario's own requests, not what
/// earlier scenarios or a reused cluster left.
#[derive(Debug, Clone, Default)]
pub struct Before {
    /// The deployment whose sidecar was read.
    pub deployment: String,
    /// Its sidecar's metrics (:15020/stats/prometheus).
    pub metrics: Vec<Sample>,
    /// The number of lines of its istio-proxy log, per pod.
    pub log_lines: BTreeMap<String, usize>,
    /// How many requests the accepted batch sent (each passes `deployment` once).
    pub requests: usize,
}

impl Before {
    /// Read `deployment`'s sidecar metrics and istio-proxy log length now.
    pub async fn read(env: &Env, deployment: &str) -> Result<Before, Failure> {
        let metrics = env.sidecar_metrics(deployment).await?;
        let mut log_lines = BTreeMap::new();
        for pod in env.cluster.deployment_pods(NAMESPACE, deployment).await? {
            let name = pod_name(&pod);
            let log = env
                .cluster
                .container_logs(NAMESPACE, &name, SIDECAR)
                .await?;
            log_lines.insert(name, log.lines().count());
        }
        Ok(Before {
            deployment: deployment.to_string(),
            metrics,
            log_lines,
            requests: 0,
        })
    }
}

/// The request counters of every sidecar in the workshop's namespace, by pod, read just before
/// a batch of requests: a verdict on what a workload received (service-c v2's mirrored copies)
/// judges their growth since then. Pods without a sidecar (before the mesh) have none.
#[derive(Debug, Clone, Default)]
pub struct SidecarCounts(pub BTreeMap<String, Vec<Sample>>);

impl SidecarCounts {
    /// Read the counters of every Ready, not terminating pod that runs a sidecar, now.
    pub async fn read(env: &Env) -> Result<SidecarCounts, Failure> {
        let mut counts = BTreeMap::new();
        for pod in env.cluster.pods(NAMESPACE, "").await? {
            let spec = pod.spec.as_ref();
            // A classic sidecar container, or a native one (an init container that keeps
            // running, Istio's choice on Kubernetes 1.29+ with native sidecars on).
            let runs_sidecar = spec.is_some_and(|s| {
                s.containers.iter().any(|c| c.name == SIDECAR)
                    || s.init_containers
                        .iter()
                        .flatten()
                        .any(|c| c.name == SIDECAR && c.restart_policy.as_deref() == Some("Always"))
            });
            // A terminating pod's sidecar is draining (and soon gone): it takes no new requests.
            let terminating = pod.metadata.deletion_timestamp.is_some();
            if !runs_sidecar || terminating || !happy_istio::cluster::pod_is_ready(&pod) {
                continue;
            }
            let name = pod_name(&pod);
            counts.insert(name.clone(), env.pod_sidecar_metrics(&name).await?);
        }
        Ok(SidecarCounts(counts))
    }

    /// What every sidecar together recorded as received by `workload`.
    pub fn received_by(&self, workload: &str) -> f64 {
        self.0
            .values()
            .map(|samples| happy_istio::checks::metrics::received_by(samples, workload))
            .sum()
    }
}

/// The earliest instant an observation (a capture, a call, a batch of requests) may begin and
/// count: the suite's last change to the cluster plus the time a change takes to reach every
/// sidecar.
pub(crate) fn observations_count_from(env: &Env) -> tokio::time::Instant {
    env.cluster
        .last_change()
        .map_or_else(tokio::time::Instant::now, |changed| {
            changed + env.timeouts.propagation
        })
}

/// Traffic a scenario sends, repeated while a view catches up (Kiali only shows edges with a
/// current rate above zero; the workshop keeps `watch -n 1 curl …` running for it).
#[derive(Debug, Clone)]
pub enum Traffic {
    /// One request to a target.
    Request(Target),
    /// One call from the legacy client.
    Legacy { url: String },
}

impl Traffic {
    /// Send it once; the outcome does not matter, only that traffic flows.
    pub async fn send_once(&self, env: &Env) {
        match self {
            Traffic::Request(target) => {
                let _ = target.send(env).await;
            }
            Traffic::Legacy { url } => {
                let (ns, pod, container) = super::env::LEGACY;
                let _ = env.curl_from_pod(ns, pod, container, url).await;
            }
        }
    }
}
