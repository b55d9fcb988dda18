//! Kubernetes Events (core/v1) for the transitions a reader or the suite's diagnostics look
//! for: Scheduled, Pulling/Pulled/Failed, Created/Started, Killing, ScalingReplicaSet.

use serde_json::{Value, json};

use super::{Cluster, gr};
use crate::store::{new_uid, now};

/// Record an event about `involved` (any stored object). Failures are logged, never fatal:
/// an event is a diagnostic, not state.
pub fn record(
    cluster: &Cluster,
    involved: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let meta = &involved["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    let name = meta["name"].as_str().unwrap_or_default();
    let uid_part: String = new_uid().chars().filter(|c| *c != '-').take(16).collect();
    let ts = now();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{uid_part}"), "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved["apiVersion"], "kind": involved["kind"],
            "namespace": meta["namespace"], "name": name, "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": component, "host": super::NODE_NAME},
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": super::NODE_NAME,
    });
    if let Err(e) = cluster.store.create(&gr("", "events"), event) {
        tracing::debug!("cannot record event {reason} for {name}: {e}");
    }
}
