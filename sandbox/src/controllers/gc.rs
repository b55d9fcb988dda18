//! Garbage collection: when an object is deleted, the objects that name it in their
//! `ownerReferences` are deleted too (background propagation), so deleting a Deployment
//! removes its ReplicaSets and their Pods. `propagationPolicy=Orphan` leaves them.
//!
//! A dependent created after its owner was deleted (a ReplicaSet controller that read its
//! ReplicaSet just before the Deployment went creates pods for it) is collected too: "the
//! dependent is subject to deletion once all owners are verified absent" (kubernetes.io,
//! Concepts, "Garbage Collection", Owners and dependents).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Cluster, delete_object, next_event};
use crate::store::{EventType, Store, StoreEvent};

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

/// Whether the object names owners and none of them exists: a namespaced owner must be in
/// the dependent's namespace, so owners are looked up there and among cluster-scoped objects.
fn owners_absent(store: &Store, o: &serde_json::Value) -> bool {
    let Some(refs) = o["metadata"]["ownerReferences"]
        .as_array()
        .filter(|r| !r.is_empty())
    else {
        return false;
    };
    let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
    let exists = |uid: &str| {
        store.resources().iter().any(|r| {
            store.list(r, None).0.iter().any(|x| {
                x["metadata"]["uid"] == uid
                    && x["metadata"]["namespace"]
                        .as_str()
                        .is_none_or(|n| n.is_empty() || n == ns)
            })
        })
    };
    refs.iter()
        .all(|r| r["uid"].as_str().is_none_or(|uid| !exists(uid)))
}

/// Objects whose owners are gone (missed while lagging): delete them.
fn resync(cluster: &Cluster) {
    for r in &cluster.store.resources() {
        for o in cluster.store.list(r, None).0 {
            if owners_absent(&cluster.store, &o) {
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
            Some(ev)
                if ev.kind == EventType::Added && owners_absent(&cluster.store, &ev.object) =>
            {
                delete_object(&cluster, &ev.resource, ev.namespace(), ev.name());
            }
            Some(_) => {}
            None => resync(&cluster),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::GroupResource;

    fn object(namespace: &str, name: &str, owner_uid: Option<&str>) -> serde_json::Value {
        let mut o = json!({"metadata": {"name": name, "namespace": namespace}});
        if let Some(uid) = owner_uid {
            o["metadata"]["ownerReferences"] = json!([{"kind": "ReplicaSet", "uid": uid}]);
        }
        o
    }

    #[test]
    fn a_dependent_is_collected_only_when_every_owner_is_absent_from_its_namespace() {
        let store = Store::new();
        let rs = GroupResource::new("apps", "replicasets");
        let owner = store.create(&rs, object("a", "web", None)).unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
        assert!(!owners_absent(&store, &object("a", "web-1", Some(&uid))));
        assert!(!owners_absent(&store, &object("a", "free", None)));
        // A namespaced owner in another namespace counts as absent.
        assert!(owners_absent(&store, &object("b", "web-1", Some(&uid))));
        store.delete(&rs, "a", "web", None).unwrap();
        assert!(owners_absent(&store, &object("a", "web-1", Some(&uid))));
    }
}
