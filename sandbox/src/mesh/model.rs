//! The mesh's shared vocabulary: a workload's identity and metadata, as Istio's metadata
//! exchange carries it between sidecars.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::controllers::gr;
use crate::store::Store;

/// One workload's identity and metadata, as Istio's metadata exchange would carry it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadMeta {
    pub namespace: String,
    pub pod_name: String,
    /// The Deployment name (pod's owner ReplicaSet's owner), else the pod name.
    pub workload: String,
    /// Label `app` ("unknown" when absent).
    pub app: String,
    /// Label `version` ("unknown" when absent).
    pub version: String,
    /// `spec.serviceAccountName` or "default".
    pub service_account: String,
    pub ip: Ipv4Addr,
}

impl WorkloadMeta {
    /// The workload's identity without the scheme: `cluster.local/ns/NS/sa/SA`.
    pub fn principal(&self) -> String {
        format!(
            "cluster.local/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }

    /// The workload's SPIFFE identity (the URI SAN of its certificate).
    pub fn spiffe(&self) -> String {
        format!("spiffe://{}", self.principal())
    }
}

/// The labels of an object (`metadata.labels`) as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every `selector` entry is among `labels` (an empty selector selects everything).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `spec.selector.matchLabels` (or a plain `spec.selector` map, as Gateways have) as a map.
pub fn selector_of(v: &Value) -> BTreeMap<String, String> {
    let m = if v["matchLabels"].is_object() {
        &v["matchLabels"]
    } else {
        v
    };
    m.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The name of the workload that owns `pod`: its ReplicaSet's Deployment, else its
/// ReplicaSet (or other owner), else the pod itself — as Istio's workload name.
pub fn workload_name(store: &Store, pod: &Value) -> String {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let Some(owner) = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|o| o.first())
    else {
        return pod_name.to_string();
    };
    let owner_name = owner["name"].as_str().unwrap_or(pod_name);
    if owner["kind"] != "ReplicaSet" {
        return owner_name.to_string();
    }
    if let Some(rs) = store.get(&gr("apps", "replicasets"), ns, owner_name)
        && let Some(d) = rs["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["kind"] == "Deployment"))
        && let Some(name) = d["name"].as_str()
    {
        return name.to_string();
    }
    // Without the ReplicaSet object, its name less the pod-template-hash suffix.
    owner_name
        .rsplit_once('-')
        .map(|(base, _)| base.to_string())
        .unwrap_or_else(|| owner_name.to_string())
}

impl WorkloadMeta {
    /// The metadata of a stored pod running at `ip`.
    pub fn from_pod(store: &Store, pod: &Value, ip: Ipv4Addr) -> Self {
        let labels = labels_of(pod);
        let label = |k: &str| labels.get(k).cloned().unwrap_or_else(|| "unknown".into());
        WorkloadMeta {
            namespace: pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            pod_name: pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            workload: workload_name(store, pod),
            app: label("app"),
            version: label("version"),
            service_account: pod["spec"]["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string(),
            ip,
        }
    }
}
