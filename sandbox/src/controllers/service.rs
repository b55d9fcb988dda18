//! Services: Endpoints and EndpointSlices from the ready and not-ready pods a Service selects,
//! and the runtime's DNS name and forwarding (`update_service` / `remove_service`) kept in
//! step with every change.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Cluster, gr, next_event};
use crate::cri::{EndpointView, ServicePortView, ServiceView, TargetPort};
use crate::store::selectors::LabelSelector;
use crate::store::{EventType, StoreEvent};

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn named_ports(pod: &Value) -> Vec<(String, u16)> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|l| pod["spec"][l].as_array().into_iter().flatten())
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                u16::try_from(p["containerPort"].as_u64()?).ok()?,
            ))
        })
        .collect()
}

fn view(svc: &Value, pods: &[Value]) -> Option<ServiceView> {
    let cluster_ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str()?.parse().ok()?;
    let ports = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p["port"].as_u64()?).ok()?;
            let target_port = match &p["targetPort"] {
                Value::Number(n) => TargetPort::Number(u16::try_from(n.as_u64()?).ok()?),
                Value::String(s) => match s.parse::<u16>() {
                    Ok(n) => TargetPort::Number(n),
                    Err(_) => TargetPort::Name(s.clone()),
                },
                _ => TargetPort::Number(port),
            };
            Some(ServicePortView {
                name: p["name"].as_str().map(String::from),
                port,
                target_port,
            })
        })
        .collect();
    let endpoints = pods
        .iter()
        .filter_map(|p| {
            Some(EndpointView {
                pod_name: name(p).to_string(),
                ip: p["status"]["podIP"].as_str()?.parse().ok()?,
                ready: is_ready(p),
                named_ports: named_ports(p),
            })
        })
        .collect();
    Some(ServiceView {
        namespace: svc["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name: name(svc).to_string(),
        cluster_ip,
        ports,
        endpoints,
    })
}

fn resolve(port: &ServicePortView, ep: &EndpointView) -> Option<u16> {
    match &port.target_port {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(n) => ep
            .named_ports
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, p)| *p),
    }
}

/// An EndpointSlice entry for a terminating pod: kept, with `ready: false`,
/// `serving` as the pod's readiness and `terminating: true` (kubernetes
/// staging/src/k8s.io/endpointslice/utils.go `podToEndpoint`, and
/// util/controller_utils.go `ShouldPodBeInEndpoints` with includeTerminating for slices;
/// Endpoints leave it out; 1.26–1.34).
fn terminating_endpoint(ns: &str, pod: &Value) -> Option<Value> {
    let ip = pod["status"]["podIP"].as_str()?;
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return None;
    }
    Some(json!({
        "addresses": [ip],
        "conditions": {"ready": false, "serving": is_ready(pod), "terminating": true},
        "nodeName": super::NODE_NAME,
        "targetRef": {"kind": "Pod", "namespace": ns, "name": name(pod), "uid": pod["metadata"]["uid"]},
    }))
}

fn write_endpoints(
    cluster: &Cluster,
    svc: &Value,
    v: &ServiceView,
    pods: &[Value],
    terminating: &[Value],
) {
    let ns = v.namespace.as_str();
    let uid_of = |pod: &str| {
        pods.iter()
            .find(|p| name(p) == pod)
            .map(|p| p["metadata"]["uid"].clone())
            .unwrap_or(Value::Null)
    };
    let address = |ep: &EndpointView| {
        json!({"ip": ep.ip.to_string(), "nodeName": super::NODE_NAME,
        "targetRef": {"kind": "Pod", "namespace": ns, "name": ep.pod_name, "uid": uid_of(&ep.pod_name)}})
    };
    let ports: Vec<Value> = v
        .ports
        .iter()
        .filter_map(|p| {
            let first = v.endpoints.first()?;
            let mut o = json!({"port": resolve(p, first)?, "protocol": "TCP"});
            if let Some(n) = &p.name {
                o["name"] = json!(n);
            }
            Some(o)
        })
        .collect();
    let ready: Vec<Value> = v
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .map(address)
        .collect();
    let not_ready: Vec<Value> = v
        .endpoints
        .iter()
        .filter(|e| !e.ready)
        .map(address)
        .collect();
    let mut subset = json!({"ports": ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let subsets = if v.endpoints.is_empty() {
        json!([])
    } else {
        json!([subset])
    };
    let labels = svc["metadata"]["labels"].clone();
    upsert(
        cluster,
        &gr("", "endpoints"),
        ns,
        &v.name,
        |o| {
            o["metadata"]["labels"] = if labels.is_null() {
                json!({})
            } else {
                labels.clone()
            };
            o["subsets"] = subsets.clone();
        },
        json!({"apiVersion": "v1", "kind": "Endpoints"}),
    );
    let slice_ports: Vec<Value> = v
        .ports
        .iter()
        .filter_map(|p| {
            let first = v.endpoints.first()?;
            let mut o = json!({"port": resolve(p, first)?, "protocol": "TCP"});
            if let Some(n) = &p.name {
                o["name"] = json!(n);
            } else {
                o["name"] = json!("");
            }
            Some(o)
        })
        .collect();
    let endpoints: Vec<Value> = v.endpoints.iter().map(|e| json!({
        "addresses": [e.ip.to_string()],
        "conditions": {"ready": e.ready, "serving": e.ready, "terminating": false},
        "nodeName": super::NODE_NAME,
        "targetRef": {"kind": "Pod", "namespace": ns, "name": e.pod_name, "uid": uid_of(&e.pod_name)},
    })).chain(terminating.iter().filter_map(|p| terminating_endpoint(ns, p))).collect();
    let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": v.name, "uid": svc["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true}]);
    upsert(
        cluster,
        &gr("discovery.k8s.io", "endpointslices"),
        ns,
        &format!("{}-sbx", v.name),
        |o| {
            o["metadata"]["labels"] = json!({"kubernetes.io/service-name": v.name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"});
            o["metadata"]["ownerReferences"] = owner.clone();
            o["addressType"] = json!("IPv4");
            o["endpoints"] = json!(endpoints);
            o["ports"] = json!(slice_ports);
        },
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}),
    );
}

fn upsert(
    cluster: &Cluster,
    resource: &crate::store::GroupResource,
    ns: &str,
    obj_name: &str,
    fill: impl Fn(&mut Value),
    skeleton: Value,
) {
    let updated = cluster.store.modify(resource, ns, obj_name, |o| {
        fill(o);
        Ok(())
    });
    if updated.is_err() {
        let mut o = skeleton;
        o["metadata"] = json!({"name": obj_name, "namespace": ns});
        fill(&mut o);
        let _ = cluster.store.create(resource, o);
    }
}

struct ServiceController {
    cluster: Arc<Cluster>,
    /// What the runtime was last told, per service, so it is told only about changes.
    sent: HashMap<(String, String), ServiceView>,
}

impl ServiceController {
    fn reconcile_namespace(&mut self, ns: &str) {
        let services = self.cluster.store.list(&gr("", "services"), Some(ns)).0;
        let (pods, terminating): (Vec<Value>, Vec<Value>) = self
            .cluster
            .store
            .list(&gr("", "pods"), Some(ns))
            .0
            .into_iter()
            .filter(|p| p["status"]["podIP"].is_string())
            .partition(|p| p["metadata"]["deletionTimestamp"].is_null());
        for svc in &services {
            let selected: Vec<Value> = match svc["spec"]["selector"].as_object() {
                Some(m) if !m.is_empty() => {
                    let sel = LabelSelector::from_object(&svc["spec"]["selector"]);
                    pods.iter().filter(|p| sel.matches(p)).cloned().collect()
                }
                // No selector: endpoints are managed by someone else.
                _ => continue,
            };
            let Some(v) = view(svc, &selected) else {
                continue;
            };
            let sel = LabelSelector::from_object(&svc["spec"]["selector"]);
            let leaving: Vec<Value> = terminating
                .iter()
                .filter(|p| sel.matches(p))
                .cloned()
                .collect();
            write_endpoints(&self.cluster, svc, &v, &selected, &leaving);
            let key = (ns.to_string(), name(svc).to_string());
            if self.sent.get(&key) != Some(&v) {
                self.cluster.runtime.update_service(v.clone());
                self.sent.insert(key, v);
            }
        }
        let gone: Vec<(String, String)> = self
            .sent
            .keys()
            .filter(|(n, s)| n == ns && !services.iter().any(|svc| name(svc) == s))
            .cloned()
            .collect();
        for key in gone {
            self.cluster.runtime.remove_service(&key.0, &key.1);
            let _ = self
                .cluster
                .store
                .delete(&gr("", "endpoints"), &key.0, &key.1, None);
            self.sent.remove(&key);
        }
    }

    fn resync(&mut self) {
        let (namespaces, _) = self.cluster.store.list(&gr("", "namespaces"), None);
        let mut all: Vec<String> = namespaces.iter().map(|n| name(n).to_string()).collect();
        all.extend(self.sent.keys().map(|(n, _)| n.clone()));
        all.sort();
        all.dedup();
        for ns in all {
            self.reconcile_namespace(&ns);
        }
    }
}

fn relevant(ev: &StoreEvent) -> bool {
    ev.resource == gr("", "services")
        || (ev.resource == gr("", "pods") && ev.kind != EventType::Added)
}

pub(crate) async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let Ok((_, mut rx)) = cluster.store.subscribe(None) else {
        return;
    };
    let mut c = ServiceController {
        cluster,
        sent: HashMap::new(),
    };
    c.resync();
    while let Some(ev) = next_event(&mut rx, &shutdown).await {
        match ev {
            Some(ev) if relevant(&ev) => {
                let mut namespaces = vec![ev.namespace().to_string()];
                while let Ok(more) = rx.try_recv() {
                    if relevant(&more) && !namespaces.iter().any(|n| n == more.namespace()) {
                        namespaces.push(more.namespace().to_string());
                    }
                }
                for ns in namespaces {
                    c.reconcile_namespace(&ns);
                }
            }
            Some(_) => {}
            None => c.resync(),
        }
    }
    // Shutdown: the runtime forgets the services this controller set up.
    for (ns, name) in c.sent.keys() {
        c.cluster.runtime.remove_service(ns, name);
    }
}
