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
pub const ENTRY: &str = "service-a";

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
