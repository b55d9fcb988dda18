//! Waiting until Deployments are available, for the messages `happy-sandbox up` prints:
//! "Istiod installed" only once istiod's pod is Ready, as `istioctl install` waits for each
//! component's Deployment before printing its `✔ … installed` line (istio/istio
//! operator/pkg/install/wait.go `WaitForResources`: a Deployment is ready when its ReplicaSet's
//! ready replicas reach the Deployment's replicas; 1.28–1.30).

use std::time::Duration;

use serde_json::Value;

use crate::store::{GroupResource, Store};

/// The variable that sets how long `up` waits for each component to become ready.
pub const READY_TIMEOUT_ENV: &str = "HAPPY_SANDBOX_READY_TIMEOUT";
/// How long by default: long enough for the first proxy to install Envoy from PyPI into the
/// cache on a slow line (`istioctl install`'s own default `--readiness-timeout` is 300 s).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The limit the environment asks for (`120s`, `5m`, `500ms`), or the default.
pub fn ready_timeout_from_env() -> Result<Duration, String> {
    match std::env::var(READY_TIMEOUT_ENV) {
        Ok(v) if !v.trim().is_empty() => crate::mesh::prometheus::parse_duration(&v)
            .map_err(|e| format!("{READY_TIMEOUT_ENV}={v:?}: {e}")),
        _ => Ok(DEFAULT_READY_TIMEOUT),
    }
}

fn deployments() -> GroupResource {
    GroupResource::new("apps", "deployments")
}

/// `READY/WANTED` of a Deployment as `kubectl get deploy` shows it, or `None` when ready: all
/// wanted replicas ready, and the status is about the current generation.
fn not_ready(d: &Value) -> Option<String> {
    let wanted = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = d["status"]["readyReplicas"].as_i64().unwrap_or(0);
    let current = d["status"]["observedGeneration"] == d["metadata"]["generation"];
    (!(current && ready >= wanted)).then(|| format!("{ready}/{wanted}"))
}

/// Wait until every named Deployment of `namespace` exists and is ready, watching the store
/// (no polling interval). On timeout, the error names each one that is not, with its
/// `READY` count.
pub async fn wait_deployments(
    store: &Store,
    namespace: &str,
    names: &[&str],
    limit: Duration,
) -> Result<(), String> {
    let (_, _, mut events) = store.list_and_subscribe(&deployments());
    let pending = || -> Vec<String> {
        names
            .iter()
            .filter_map(|n| match store.get(&deployments(), namespace, n) {
                None => Some(format!("{namespace}/{n} (absent)")),
                Some(d) => not_ready(&d).map(|r| format!("{namespace}/{n} {r}")),
            })
            .collect()
    };
    let waited = tokio::time::timeout(limit, async {
        loop {
            if pending().is_empty() {
                return;
            }
            // Any change to a Deployment may be the one: check again. A lagging receiver
            // only means we missed events, not state: check again too.
            match events.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
    .await;
    let left = pending();
    match (waited, left.is_empty()) {
        (_, true) => Ok(()),
        (Err(_), false) => Err(format!(
            "not ready after {}s: {} (READY/WANTED; raise {READY_TIMEOUT_ENV} to wait longer)",
            limit.as_secs(),
            left.join(", ")
        )),
        (Ok(()), false) => Err(format!(
            "the sandbox stopped while waiting for {}",
            left.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_is_ready_when_its_current_generation_has_all_replicas_ready() {
        let d = |ready: i64, observed: i64| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 1},
                   "status": {"readyReplicas": ready, "observedGeneration": observed}})
        };
        assert_eq!(not_ready(&d(1, 2)), None);
        assert_eq!(not_ready(&d(0, 2)).as_deref(), Some("0/1"));
        assert_eq!(not_ready(&d(1, 1)).as_deref(), Some("1/1"));
    }

    #[tokio::test]
    async fn waiting_for_an_absent_deployment_times_out_naming_it() {
        let store = Store::new();
        let err = wait_deployments(
            &store,
            "istio-system",
            &["istiod"],
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert!(err.contains("istio-system/istiod (absent)"), "{err}");
        assert!(err.contains(READY_TIMEOUT_ENV), "{err}");
    }
}
