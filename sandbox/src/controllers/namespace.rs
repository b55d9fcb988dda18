//! Namespaces: the built-in ones exist from the start, each namespace gets its `default`
//! ServiceAccount, and deleting a namespace deletes everything in it before the namespace
//! itself goes.

use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Cluster, gr, next_event};
use crate::store::StoreEvent;

/// The namespaces a fresh cluster (with Istio's) has.
pub(crate) const BUILTIN: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "istio-system",
];

/// Create the built-in namespaces and the node. Called once before the API serves.
pub(crate) fn bootstrap(cluster: &Cluster) {
    for ns in BUILTIN {
        let _ = cluster.create(
            &gr("", "namespaces"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        ensure_service_account(cluster, ns);
    }
    let ts = crate::store::now();
    // The kubelet reports Go's names (kubernetes `pkg/kubelet/nodestatus/setters.go`
    // `NodeInfo.Architecture = goruntime.GOARCH`: amd64, arm64), not Rust's.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let _ = cluster.create(
        &gr("", "nodes"),
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": super::NODE_NAME, "labels": {"kubernetes.io/hostname": super::NODE_NAME,
                "kubernetes.io/os": std::env::consts::OS, "node-role.kubernetes.io/control-plane": ""}},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": super::NODE_NAME}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "happy-sandbox is ready",
                    "lastHeartbeatTime": ts, "lastTransitionTime": ts}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-happy-sandbox", "containerRuntimeVersion": "happy-sandbox://0.1",
                    "operatingSystem": std::env::consts::OS, "architecture": arch}}}),
    );
}

fn ensure_service_account(cluster: &Cluster, ns: &str) {
    let sa = gr("", "serviceaccounts");
    if cluster.store.get(&sa, ns, "default").is_none() {
        let _ = cluster.create(
            &sa,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}),
        );
    }
}

/// Delete what is left in a terminating namespace; remove the namespace once it is empty.
fn finalize(cluster: &Cluster, ns: &str) {
    let mut remaining = 0;
    for resource in cluster.store.resources() {
        let Some(rt) = cluster.registry.by_group_resource(&resource) else {
            continue;
        };
        if !rt.namespaced {
            continue;
        }
        let (items, _) = cluster.store.list(&resource, Some(ns));
        for o in items {
            remaining += 1;
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            super::delete_object(cluster, &resource, ns, &name);
        }
    }
    if remaining == 0 {
        let _ = cluster.store.delete(&gr("", "namespaces"), "", ns, None);
    }
}

fn handle(cluster: &Cluster, ev: &StoreEvent) {
    if ev.resource == gr("", "namespaces") {
        let name = ev.name().to_string();
        if ev.kind == crate::store::EventType::Deleted {
            return;
        }
        if ev.object["metadata"]["deletionTimestamp"].is_string() {
            finalize(cluster, &name);
        } else {
            ensure_service_account(cluster, &name);
        }
    } else if ev.kind == crate::store::EventType::Deleted && !ev.namespace().is_empty() {
        let ns = ev.namespace().to_string();
        if cluster
            .store
            .get(&gr("", "namespaces"), "", &ns)
            .is_some_and(|n| n["metadata"]["deletionTimestamp"].is_string())
        {
            finalize(cluster, &ns);
        }
    }
}

fn resync(cluster: &Cluster) {
    let (namespaces, _) = cluster.store.list(&gr("", "namespaces"), None);
    for n in namespaces {
        let name = n["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if n["metadata"]["deletionTimestamp"].is_string() {
            finalize(cluster, &name);
        } else {
            ensure_service_account(cluster, &name);
        }
    }
}

pub(crate) async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let Ok((_, mut rx)) = cluster.store.subscribe(None) else {
        return;
    };
    resync(&cluster);
    while let Some(ev) = next_event(&mut rx, &shutdown).await {
        match ev {
            Some(ev) => handle(&cluster, &ev),
            None => resync(&cluster),
        }
    }
}
