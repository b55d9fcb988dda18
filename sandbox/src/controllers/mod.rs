//! The sandbox's controllers (namespaces, deployments, replicasets, pods, services and
//! endpoints, garbage collection, events) and the [`Cluster`] they share with the API server:
//! store, resource registry, runtime and the pod admission hooks.
//!
//! Controllers are plain tokio tasks that react to store events; they never sleep for a fixed
//! time, and each pass converges the whole resource so a missed event heals on the next one.

pub(crate) mod deployment;
pub mod events;
pub(crate) mod gc;
pub(crate) mod namespace;
pub mod pod;
pub(crate) mod service;

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::cri::Runtime;
use crate::error::ApiError;
use crate::store::{GroupResource, Registry, Store};

/// The node every pod is bound to.
pub const NODE_NAME: &str = "happy-sandbox";

/// A hook called on every pod creation, before the pod is stored (Istio's sidecar injector
/// plugs in here). It may change the pod or refuse it with a message.
pub trait PodAdmission: Send + Sync {
    fn admit(&self, cluster: &Cluster, pod: &mut Value) -> Result<(), String>;
}

/// Everything the API server and the controllers share.
pub struct Cluster {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub runtime: Arc<dyn Runtime>,
    admission: RwLock<Vec<Arc<dyn PodAdmission>>>,
}

pub fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

impl Cluster {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self {
            store: Arc::new(Store::new()),
            registry: Arc::new(Registry::new()),
            runtime,
            admission: RwLock::new(Vec::new()),
        }
    }

    /// Add a pod admission hook; hooks run in the order added.
    pub fn add_pod_admission(&self, hook: Arc<dyn PodAdmission>) {
        self.admission
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    fn admit_pod(&self, pod: &mut Value) -> Result<(), ApiError> {
        let hooks = self
            .admission
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for hook in hooks {
            hook.admit(self, pod).map_err(|m| {
                let mut e = ApiError::bad_request(format!(
                    "admission webhook denied pod {:?}: {m}",
                    pod["metadata"]["name"].as_str().unwrap_or_default()
                ));
                e.reason = "Forbidden";
                e.code = 403;
                e
            })?;
        }
        Ok(())
    }

    /// Create an object the way the API server does: admission, defaulting, then store. Used
    /// by the API and by controllers, so pods made by ReplicaSets are admitted too.
    pub fn create(&self, gr: &GroupResource, mut obj: Value) -> Result<Value, ApiError> {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("", "pods") => {
                self.admit_pod(&mut obj)?;
                default_pod(&mut obj);
            }
            ("", "services") => self.default_service(&mut obj, None)?,
            ("apps", "deployments") => default_deployment(&mut obj),
            ("", "namespaces") => {
                let name = obj["metadata"]["name"].clone();
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
                obj["status"] = json!({"phase": "Active"});
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            _ => {}
        }
        Ok(self.store.create(gr, obj)?)
    }

    /// Defaults and immutable fields on an update (kept from `old`).
    pub fn on_update(
        &self,
        gr: &GroupResource,
        old: &Value,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("", "services") => self.default_service(new, Some(old)),
            ("apps", "deployments") => {
                default_deployment(new);
                Ok(())
            }
            ("", "namespaces") => {
                if new.get("status").is_none() {
                    new["status"] = old["status"].clone();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn default_service(&self, svc: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let spec = &mut svc["spec"];
        if !spec.is_object() {
            *spec = json!({});
        }
        if spec["type"].as_str().is_none() {
            spec["type"] = json!("ClusterIP");
        }
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports {
                if p["protocol"].is_null() {
                    p["protocol"] = json!("TCP");
                }
                if p["targetPort"].is_null() {
                    p["targetPort"] = p["port"].clone();
                }
            }
        }
        if spec["sessionAffinity"].is_null() {
            spec["sessionAffinity"] = json!("None");
        }
        if spec["type"] == "ExternalName" || spec["clusterIP"] == "None" {
            return Ok(());
        }
        let ip = match old.and_then(|o| o["spec"]["clusterIP"].as_str()) {
            Some(ip) => ip.to_string(),
            None => match spec["clusterIP"].as_str() {
                Some(ip) if !ip.is_empty() => ip.to_string(),
                _ => self
                    .runtime
                    .allocate_cluster_ip()
                    .map_err(|e| ApiError::internal(format!("cannot allocate a ClusterIP: {e}")))?
                    .to_string(),
            },
        };
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        // No load balancer assigns an address, as on kind without Cloud Provider KIND
        // (kubernetes-sigs/kind site/content/docs/user/loadbalancer.md, v0.31.0 to main of
        // 2026-08-21): a LoadBalancer Service keeps an empty status.loadBalancer (EXTERNAL-IP <pending>).
        if svc.get("status").is_none() {
            svc["status"] = json!({"loadBalancer": {}});
        }
        Ok(())
    }
}

fn default_pod(pod: &mut Value) {
    default_pod_spec(&mut pod["spec"]);
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

/// The API server's defaults for a pod spec (also applied to workload templates, so
/// `kubectl describe` shows what a real cluster shows).
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    for (field, value) in [
        ("restartPolicy", "Always"),
        ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"),
        ("serviceAccountName", "default"),
    ] {
        if spec[field].is_null() {
            spec[field] = json!(value);
        }
    }
    if spec["serviceAccount"].is_null() {
        spec["serviceAccount"] = spec["serviceAccountName"].clone();
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                if c["imagePullPolicy"].is_null() {
                    let latest = c["image"]
                        .as_str()
                        .is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
                    c["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
                }
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports {
                        if p["protocol"].is_null() {
                            p["protocol"] = json!("TCP");
                        }
                    }
                }
            }
        }
    }
}

fn default_deployment(d: &mut Value) {
    default_pod_spec(&mut d["spec"]["template"]["spec"]);
    let spec = &mut d["spec"];
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
    if spec["strategy"].is_null() {
        spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    }
    if spec["revisionHistoryLimit"].is_null() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    if spec["progressDeadlineSeconds"].is_null() {
        spec["progressDeadlineSeconds"] = json!(600);
    }
}

/// The next store event; `Some(None)` when events were missed (the caller resyncs), `None` at
/// shutdown.
pub(crate) async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<crate::store::StoreEvent>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<Option<crate::store::StoreEvent>> {
    use tokio::sync::broadcast::error::RecvError;
    tokio::select! {
        _ = shutdown.cancelled() => None,
        ev = rx.recv() => match ev {
            Ok(ev) => Some(Some(ev)),
            Err(RecvError::Lagged(_)) => Some(None),
            Err(RecvError::Closed) => None,
        },
    }
}

/// Delete an object as the API would: pods and namespaces are marked and finished by their
/// controllers, the rest removed now. Already-gone objects are fine.
pub(crate) fn delete_object(cluster: &Cluster, resource: &GroupResource, ns: &str, name: &str) {
    let graceful =
        resource.group.is_empty() && matches!(resource.resource.as_str(), "pods" | "namespaces");
    if graceful {
        let _ = cluster.store.modify(resource, ns, name, |o| {
            if o["metadata"]["deletionTimestamp"].is_null() {
                o["metadata"]["deletionTimestamp"] = json!(crate::store::now());
                o["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            }
            Ok(())
        });
    } else {
        let _ = cluster.store.delete(resource, ns, name, None);
    }
}

/// Start every controller; they stop when `shutdown` is cancelled.
pub fn spawn_all(
    cluster: &Arc<Cluster>,
    shutdown: &tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    tasks.spawn(namespace::run(cluster.clone(), shutdown.clone()));
    tasks.spawn(pod::run(cluster.clone(), shutdown.clone(), tasks.clone()));
    tasks.spawn(deployment::run(cluster.clone(), shutdown.clone()));
    tasks.spawn(service::run(cluster.clone(), shutdown.clone()));
    tasks.spawn(gc::run(cluster.clone(), shutdown.clone()));
}
