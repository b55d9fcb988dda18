//! Garbage collection: when an object is deleted, the objects that name it in their
//! `ownerReferences` are deleted too (background propagation), so deleting a Deployment
//! removes its ReplicaSets and their Pods. `propagationPolicy=Orphan` leaves them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Cluster, delete_object, next_event};
use crate::store::{EventType, StoreEvent};

fn owned_by(o: &serde_json::Value, uid: &str) -> bool {
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

fn collect(cluster: &Cluster, ev: &StoreEvent) {
    if ev.object["metadata"]["annotations"]["happy-sandbox/orphan-dependents"] == "true" {
        return;
    }
    let Some(uid) = ev.object["metadata"]["uid"].as_str() else {
        return;
    };
    let ns = ev.namespace();
    for resource in cluster.store.resources() {
        let scope = if ns.is_empty() { None } else { Some(ns) };
        let (items, _) = cluster.store.list(&resource, scope);
        for o in items.iter().filter(|o| owned_by(o, uid)) {
            let dep_ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            delete_object(cluster, &resource, dep_ns, name);
        }
    }
}

/// Objects whose owner is gone (missed while lagging): delete them.
fn resync(cluster: &Cluster) {
    let resources = cluster.store.resources();
    let mut uids = std::collections::HashSet::new();
    for r in &resources {
        for o in cluster.store.list(r, None).0 {
            if let Some(u) = o["metadata"]["uid"].as_str() {
                uids.insert(u.to_string());
            }
        }
    }
    for r in &resources {
        for o in cluster.store.list(r, None).0 {
            let orphaned = o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    !refs.is_empty()
                        && refs
                            .iter()
                            .all(|x| x["uid"].as_str().is_none_or(|u| !uids.contains(u)))
                });
            if orphaned {
                let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                delete_object(cluster, r, ns, name);
            }
        }
    }
}

pub(crate) async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let Ok((_, mut rx)) = cluster.store.subscribe(None) else {
        return;
    };
    while let Some(ev) = next_event(&mut rx, &shutdown).await {
        match ev {
            Some(ev) if ev.kind == EventType::Deleted => collect(&cluster, &ev),
            Some(_) => {}
            None => resync(&cluster),
        }
    }
}
