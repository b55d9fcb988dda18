//! Sidecar injection, as istiod's mutating webhook and `istioctl kube-inject` do it: which pods
//! get a sidecar (namespace label `istio-injection=enabled` or `istio.io/rev`, pod label
//! `sidecar.istio.io/inject=true`; `false` opts out), and what the injected pod looks like —
//! the `istio-init` and `istio-proxy` containers, the annotations and labels a reader sees.
//! From Istio 1.27 on Kubernetes 1.33+ the proxy is a native sidecar (an init container with
//! `restartPolicy: Always`); the sandbox's API server reports 1.33, so that is what the pinned
//! release does here. The proxy image is on the hub the install named, as Istio's injection
//! template writes it (see [`super::proxy_image`]).

use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Value, json};

use super::model::labels_of;
use super::{istio_minor, proxy_image};
use crate::controllers::{Cluster, PodAdmission, gr};

/// The sidecar container's name.
pub const PROXY_CONTAINER: &str = "istio-proxy";
/// The init container that sets up the traffic redirection.
pub const INIT_CONTAINER: &str = "istio-init";
/// The injection decision label and annotation.
pub const INJECT_KEY: &str = "sidecar.istio.io/inject";

/// The Kubernetes minor version the sandbox's API server reports.
const KUBERNETES_MINOR: (u32, u32) = (1, 33);

/// Whether the pinned release injects a native sidecar on this (sandbox) Kubernetes.
pub fn native_sidecar() -> bool {
    istio_minor() >= (1, 27) && KUBERNETES_MINOR >= (1, 33)
}

/// The webhook's decision for a pod in a namespace with `ns_labels`.
pub fn wants_sidecar(
    ns_labels: &std::collections::BTreeMap<String, String>,
    pod_meta: &Value,
) -> bool {
    let pod_says = pod_meta["labels"][INJECT_KEY]
        .as_str()
        .or_else(|| pod_meta["annotations"][INJECT_KEY].as_str());
    match pod_says {
        Some("false") => return false,
        Some("true") => {
            return ns_labels.get("istio-injection").map(String::as_str) != Some("disabled");
        }
        _ => {}
    }
    ns_labels.get("istio-injection").map(String::as_str) == Some("enabled")
        || ns_labels.contains_key("istio.io/rev")
}

/// Whether a pod spec already has the proxy (injection is idempotent).
pub fn has_proxy(spec: &Value) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        spec[*list]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["name"] == PROXY_CONTAINER))
    })
}

/// Istio's canonical service name and revision for a pod's labels.
fn canonical(meta: &Value, workload: &str) -> (String, String) {
    let labels = &meta["labels"];
    let name = labels["service.istio.io/canonical-name"]
        .as_str()
        .or_else(|| labels["app.kubernetes.io/name"].as_str())
        .or_else(|| labels["app"].as_str())
        .unwrap_or(workload)
        .to_string();
    let revision = labels["service.istio.io/canonical-revision"]
        .as_str()
        .or_else(|| labels["app.kubernetes.io/version"].as_str())
        .or_else(|| labels["version"].as_str())
        .unwrap_or("latest")
        .to_string();
    (name, revision)
}

fn env_field(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

/// The `istio-proxy` container as Istio's injection template writes it (the fields a reader
/// or the suite looks at; the sandbox's proxy program reads `args` and the env).
pub fn proxy_container(
    app_containers: &[String],
    pod_ports: &Value,
    workload: &str,
    native: bool,
    hub: &str,
) -> Value {
    let mut c = json!({
        "name": PROXY_CONTAINER,
        "image": proxy_image(hub),
        "imagePullPolicy": "IfNotPresent",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                 "--log_output_level=default:info"],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
            env_field("POD_NAME", "metadata.name"),
            env_field("POD_NAMESPACE", "metadata.namespace"),
            env_field("INSTANCE_IP", "status.podIP"),
            env_field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            env_field("HOST_IP", "status.hostIP"),
            {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}},
            {"name": "PROXY_CONFIG", "value": "{}\n"},
            {"name": "ISTIO_META_POD_PORTS", "value": pod_ports.to_string()},
            {"name": "ISTIO_META_APP_CONTAINERS", "value": app_containers.join(",")},
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            env_field("ISTIO_META_NODE_NAME", "spec.nodeName"),
            {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
            {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
            {"name": "TRUST_DOMAIN", "value": "cluster.local"},
        ],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4, "successThreshold": 1,
        },
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
        // values.global.proxy.privileged=true, as the workshop installs (tcpdump in istio-proxy).
        "securityContext": {
            "allowPrivilegeEscalation": true, "privileged": true, "readOnlyRootFilesystem": true,
            "runAsGroup": 1337, "runAsNonRoot": true, "runAsUser": 1337,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
        ],
    });
    if native {
        c["restartPolicy"] = json!("Always");
        c["startupProbe"] = json!({
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600, "initialDelaySeconds": 0,
        });
    }
    c
}

/// The `istio-init` container (`istio-iptables` in the proxy image, `ProxyInitImage` in
/// istio/istio `pkg/kube/inject/inject.go`: the same `<hub>/proxyv2:<tag>`).
pub fn init_container(hub: &str) -> Value {
    json!({
        "name": INIT_CONTAINER,
        "image": proxy_image(hub),
        "imagePullPolicy": "IfNotPresent",
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                 "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
                 "--log_output_level=default:info"],
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": true, "privileged": true,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": false, "runAsGroup": 0, "runAsNonRoot": false, "runAsUser": 0,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

fn volumes() -> Vec<Value> {
    vec![
        json!({"name": "workload-socket", "emptyDir": {}}),
        json!({"name": "credential-socket", "emptyDir": {}}),
        json!({"name": "workload-certs", "emptyDir": {}}),
        json!({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "istio-data", "emptyDir": {}}),
        json!({"name": "istio-podinfo", "downwardAPI": {"items": [
            {"fieldRef": {"fieldPath": "metadata.labels"}, "path": "labels"},
            {"fieldRef": {"fieldPath": "metadata.annotations"}, "path": "annotations"}]}}),
        json!({"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
    ]
}

/// Inject into a pod's `metadata` and `spec` (a Pod, or a workload's template). `workload` is
/// the owning workload's name, for the proxy's metadata; `hub` the proxy image's hub. Does
/// nothing when already injected.
pub fn inject(meta: &mut Value, spec: &mut Value, workload: &str, hub: &str) {
    if !spec.is_object() || has_proxy(spec) {
        return;
    }
    let native = native_sidecar();
    let app_containers: Vec<String> = spec["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let pod_ports: Vec<Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .collect();
    let proxy = proxy_container(&app_containers, &json!(pod_ports), workload, native, hub);

    let mut inits: Vec<Value> = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    inits.insert(0, init_container(hub));
    let mut init_names = vec![INIT_CONTAINER.to_string()];
    let mut container_names: Option<Vec<String>> = None;
    if native {
        inits.insert(1, proxy);
        init_names.push(PROXY_CONTAINER.to_string());
    } else if let Some(cs) = spec["containers"].as_array_mut() {
        cs.push(proxy);
        container_names = Some(vec![PROXY_CONTAINER.to_string()]);
    }
    spec["initContainers"] = json!(inits);
    let mut vols: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
    let vol_names: Vec<String> = volumes()
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    vols.extend(volumes());
    spec["volumes"] = json!(vols);

    if !meta.is_object() {
        *meta = json!({});
    }
    let (canonical_name, canonical_revision) = canonical(meta, workload);
    let first_app = app_containers.first().cloned().unwrap_or_default();
    let status = json!({
        "initContainers": init_names,
        "containers": container_names,
        "volumes": vol_names,
        "imagePullSecrets": null,
        "revision": "default",
    });
    let annotations = &mut meta["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    for (k, v) in [
        ("istio.io/rev", "default".to_string()),
        ("kubectl.kubernetes.io/default-container", first_app.clone()),
        ("kubectl.kubernetes.io/default-logs-container", first_app),
        ("prometheus.io/path", "/stats/prometheus".into()),
        ("prometheus.io/port", "15020".into()),
        ("prometheus.io/scrape", "true".into()),
        ("sidecar.istio.io/status", status.to_string()),
    ] {
        annotations[k] = json!(v);
    }
    let labels = &mut meta["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["security.istio.io/tlsMode"] = json!("istio");
    labels["service.istio.io/canonical-name"] = json!(canonical_name);
    labels["service.istio.io/canonical-revision"] = json!(canonical_revision);
}

/// The workload name of a pod being admitted: its ReplicaSet's Deployment (the ReplicaSet
/// name less its hash), else the generateName stem, else the pod's name.
fn admitted_workload(pod: &Value) -> String {
    let meta = &pod["metadata"];
    if let Some(owner) = meta["ownerReferences"].as_array().and_then(|o| o.first())
        && let Some(name) = owner["name"].as_str()
    {
        if owner["kind"] == "ReplicaSet" {
            return name
                .rsplit_once('-')
                .map_or(name, |(base, _)| base)
                .to_string();
        }
        return name.to_string();
    }
    meta["name"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            meta["generateName"]
                .as_str()
                .map(|g| g.trim_end_matches('-').to_string())
        })
        .unwrap_or_default()
}

/// The admission hook: injects into pods of labelled namespaces once Istio is installed.
pub struct Injector {
    pub(crate) installed: Arc<std::sync::atomic::AtomicBool>,
    /// The hub the install named (`values.global.hub` of the injector's template).
    pub(crate) hub: Arc<RwLock<String>>,
}

impl PodAdmission for Injector {
    fn admit(&self, cluster: &Cluster, pod: &mut Value) -> Result<(), String> {
        // Without istiod there is no webhook.
        if !self.installed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let ns_labels = cluster
            .store
            .get(&gr("", "namespaces"), "", &ns)
            .map(|n| labels_of(&n))
            .unwrap_or_default();
        if pod["spec"]["hostNetwork"] == true || !wants_sidecar(&ns_labels, &pod["metadata"]) {
            return Ok(());
        }
        let workload = admitted_workload(pod);
        let hub = self
            .hub
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (mut meta, mut spec) = (pod["metadata"].take(), pod["spec"].take());
        inject(&mut meta, &mut spec, &workload, &hub);
        pod["metadata"] = meta;
        pod["spec"] = spec;
        Ok(())
    }
}

/// The kinds whose pod template `kube-inject` rewrites, with the template's path.
fn template_of(obj: &mut Value) -> Option<(&mut Value, String)> {
    let kind = obj["kind"].as_str()?.to_string();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some((&mut obj["spec"]["template"], name))
        }
        "CronJob" => Some((&mut obj["spec"]["jobTemplate"]["spec"]["template"], name)),
        "Pod" => Some((obj, name)),
        _ => None,
    }
}

/// `istioctl kube-inject -f -`: every workload in a multi-document YAML gets the sidecar
/// (unless it opts out with `sidecar.istio.io/inject: "false"`), its proxy image on `hub`;
/// other documents pass unchanged. The answer is YAML again, documents separated by `---`.
pub fn kube_inject(yaml: &str, hub: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for (i, doc) in split_documents(yaml).iter().enumerate() {
        if doc.trim().is_empty() {
            continue;
        }
        let mut obj: Value = serde_saphyr::from_str(doc)
            .map_err(|e| format!("kube-inject: document {} is not valid YAML: {e}", i + 1))?;
        if obj.is_null() {
            continue;
        }
        if let Some((template, name)) = template_of(&mut obj) {
            let opted_out = template["metadata"]["labels"][INJECT_KEY] == "false"
                || template["metadata"]["annotations"][INJECT_KEY] == "false";
            if !opted_out {
                let (mut meta, mut spec) = (template["metadata"].take(), template["spec"].take());
                inject(&mut meta, &mut spec, &name, hub);
                template["metadata"] = meta;
                template["spec"] = spec;
            }
        }
        out.push(
            serde_saphyr::to_string(&obj)
                .map_err(|e| format!("kube-inject: cannot write document {}: {e}", i + 1))?,
        );
    }
    Ok(out.join("---\n"))
}

/// Split YAML text at `---` document markers.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(String::new());
            continue;
        }
        if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::ISTIO_VERSION;
    use std::collections::BTreeMap;

    fn ns(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decides_like_the_webhook() {
        let plain = json!({"labels": {"app": "a"}});
        assert!(wants_sidecar(
            &ns(&[("istio-injection", "enabled")]),
            &plain
        ));
        assert!(!wants_sidecar(&ns(&[]), &plain));
        assert!(wants_sidecar(&ns(&[("istio.io/rev", "default")]), &plain));
        let out = json!({"labels": {INJECT_KEY: "false"}});
        assert!(!wants_sidecar(&ns(&[("istio-injection", "enabled")]), &out));
        let opt_in = json!({"labels": {INJECT_KEY: "true"}});
        assert!(wants_sidecar(&ns(&[]), &opt_in));
        assert!(!wants_sidecar(
            &ns(&[("istio-injection", "disabled")]),
            &opt_in
        ));
    }

    #[test]
    fn injects_a_native_sidecar_with_istios_metadata() {
        let mut meta = json!({"labels": {"app": "service-a", "version": "v1"}});
        let mut spec = json!({"containers": [{"name": "service-a", "image": "x",
            "ports": [{"name": "http", "containerPort": 8080}]}]});
        inject(&mut meta, &mut spec, "service-a", crate::mesh::DEFAULT_HUB);
        assert!(
            native_sidecar(),
            "1.31 on Kubernetes 1.33 injects native sidecars"
        );
        let inits = spec["initContainers"].as_array().unwrap();
        assert_eq!(inits[0]["name"], INIT_CONTAINER);
        assert_eq!(inits[1]["name"], PROXY_CONTAINER);
        assert_eq!(inits[1]["restartPolicy"], "Always");
        assert_eq!(
            inits[1]["image"],
            format!("docker.io/istio/proxyv2:{ISTIO_VERSION}")
        );
        assert_eq!(spec["containers"].as_array().unwrap().len(), 1);
        assert_eq!(meta["annotations"]["prometheus.io/scrape"], "true");
        assert_eq!(meta["annotations"]["prometheus.io/port"], "15020");
        assert_eq!(
            meta["annotations"]["prometheus.io/path"],
            "/stats/prometheus"
        );
        assert_eq!(meta["labels"]["security.istio.io/tlsMode"], "istio");
        assert_eq!(
            meta["labels"]["service.istio.io/canonical-name"],
            "service-a"
        );
        assert_eq!(meta["labels"]["service.istio.io/canonical-revision"], "v1");
        let status: Value = serde_json::from_str(
            meta["annotations"]["sidecar.istio.io/status"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            status["initContainers"],
            json!(["istio-init", "istio-proxy"])
        );
        // Idempotent.
        let before = spec.clone();
        inject(&mut meta, &mut spec, "service-a", crate::mesh::DEFAULT_HUB);
        assert_eq!(spec, before);
    }

    #[test]
    fn the_sidecar_and_init_images_are_on_the_installs_hub() {
        let mut meta = json!({"labels": {"app": "service-a"}});
        let mut spec = json!({"containers": [{"name": "service-a", "image": "x"}]});
        inject(&mut meta, &mut spec, "service-a", "localhost:5000/istio");
        let want = format!("localhost:5000/istio/proxyv2:{ISTIO_VERSION}");
        let inits = spec["initContainers"].as_array().unwrap();
        assert_eq!(inits[0]["image"], want.as_str(), "istio-init");
        assert_eq!(inits[1]["image"], want.as_str(), "istio-proxy");
    }

    #[test]
    fn kube_inject_rewrites_deployments_only() {
        let yaml = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: service-a\n---\n\
            apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: service-a\nspec:\n  \
            template:\n    metadata:\n      labels:\n        app: service-a\n    spec:\n      \
            containers:\n        - name: service-a\n          image: rinormaloku/happy-service:latest\n";
        let out = kube_inject(yaml, crate::mesh::DEFAULT_HUB).unwrap();
        let docs: Vec<Value> = out
            .split("---\n")
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["kind"], "ServiceAccount");
        assert!(has_proxy(&docs[1]["spec"]["template"]["spec"]));
        assert_eq!(
            docs[1]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"],
            "true"
        );
    }
}
