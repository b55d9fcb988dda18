//! Kubernetes Events (core/v1) for the transitions a reader or the suite's diagnostics look
//! for: Scheduled, Pulling/Pulled/Failed, Created/Started, Killing, ScalingReplicaSet. A repeat
//! of an event is counted on the Event already written, as the kubelet's recorder does.

use serde_json::{Value, json};

use super::{Cluster, gr};
use crate::store::now;

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
    // The kubelet's recorder aggregates a repeat of an event (same source, object, type,
    // reason and message) into the Event it already wrote: `count`+1, a new `lastTimestamp`
    // (client-go `tools/record/events_cache.go`, `EventCorrelator` / `eventObserve`). Here the
    // Event's name is derived from that key, so a repeat finds it by name.
    let events = gr("", "events");
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            meta["uid"].as_str(),
            name,
            involved["kind"].as_str(),
            event_type,
            reason,
            message,
            component,
        )
            .hash(&mut h);
        h.finish()
    };
    let event_name = format!("{name}.{key:016x}");
    let repeated = cluster.store.modify(&events, namespace, &event_name, |e| {
        let count = e["count"].as_i64().unwrap_or(1);
        e["count"] = json!(count + 1);
        e["lastTimestamp"] = json!(now());
        Ok(())
    });
    if repeated.is_ok() {
        return;
    }
    let ts = now();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name, "namespace": namespace},
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
