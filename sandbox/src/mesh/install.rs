//! What `istioctl install --set profile=demo` creates in `istio-system`, as objects: istiod,
//! the ingress gateway (a LoadBalancer Service) and the egress gateway, with their service
//! accounts and the mesh's root certificate ConfigMap. The controllers then run them like any
//! other Deployment; the images (on the hub the install names) map to the sandbox's programs
//! (`pilot` idles, `proxyv2` runs Envoy).
//!
//! Test-only knob: `HAPPY_SANDBOX_ISTIO_PROFILE=default` installs what the `default` profile
//! would instead: the same without the egress gateway (its Deployment, Service and service
//! account), so a test can see C05's egress check fail as a reader who installed with another
//! profile would. istio/istio@1.28.0 `manifests/profiles/default.yaml` lines 19-21
//! (`egressGateways: [{name: istio-egressgateway, enabled: false}]`) against
//! `manifests/profiles/demo.yaml` lines 5-7 (`enabled: true`). Only that difference is
//! modelled. Nothing but tests should set it.

use serde_json::{Value, json};

use super::{ROOT_NAMESPACE, pilot_image, proxy_image};

/// The ingress gateway's service account (its SPIFFE identity).
pub const INGRESS_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";
/// The egress gateway's service account.
pub const EGRESS_SERVICE_ACCOUNT: &str = "istio-egressgateway-service-account";

fn service_account(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ROOT_NAMESPACE, "labels": labels}})
}

fn env_field(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn istiod(hub: &str) -> Vec<Value> {
    let labels = json!({"app": "istiod", "istio": "pilot", "istio.io/rev": "default",
                        "install.operator.istio.io/owning-resource": "unknown",
                        "operator.istio.io/component": "Pilot"});
    let pod_labels = json!({"app": "istiod", "istio": "pilot", "istio.io/rev": "default",
                            "sidecar.istio.io/inject": "false"});
    vec![
        service_account("istiod", labels.clone()),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": ROOT_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"istio": "pilot"}},
                "template": {
                    "metadata": {"labels": pod_labels,
                                 "annotations": {"prometheus.io/port": "15014", "prometheus.io/scrape": "true",
                                                 "sidecar.istio.io/inject": "false"}},
                    "spec": {
                        "serviceAccountName": "istiod",
                        "containers": [{
                            "name": "discovery",
                            "image": pilot_image(hub),
                            "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info",
                                     "--domain", "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"],
                            "ports": [
                                {"containerPort": 8080, "name": "http-debug", "protocol": "TCP"},
                                {"containerPort": 15010, "name": "grpc-xds", "protocol": "TCP"},
                                {"containerPort": 15017, "name": "https-webhooks", "protocol": "TCP"},
                            ],
                            "env": [
                                {"name": "REVISION", "value": "default"},
                                env_field("POD_NAME", "metadata.name"),
                                env_field("POD_NAMESPACE", "metadata.namespace"),
                                env_field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
                                {"name": "PILOT_TRACE_SAMPLING", "value": "100"},
                            ],
                            "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
                        }],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istiod", "namespace": ROOT_NAMESPACE,
                         "labels": {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}},
            "spec": {
                "selector": {"app": "istiod", "istio": "pilot"},
                "ports": [
                    {"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
                    {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
                    {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
                    {"name": "http-monitoring", "port": 15014, "protocol": "TCP", "targetPort": 15014},
                ],
            },
        }),
    ]
}

/// A gateway Deployment (`proxy router`) and its service account.
fn gateway(name: &str, istio_label: &str, sa: &str, ports: Value, hub: &str) -> Vec<Value> {
    let labels = json!({"app": name, "istio": istio_label, "install.operator.istio.io/owning-resource": "unknown",
                        "istio.io/rev": "default", "operator.istio.io/component":
                            if istio_label == "ingressgateway" { "IngressGateways" } else { "EgressGateways" }});
    let pod_labels = json!({"app": name, "istio": istio_label, "chart": "gateways", "heritage": "Tiller",
                            "release": "istio", "istio.io/rev": "default",
                            "service.istio.io/canonical-name": name,
                            "service.istio.io/canonical-revision": "latest",
                            "sidecar.istio.io/inject": "false"});
    vec![
        service_account(sa, json!({"app": name, "istio": istio_label})),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ROOT_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name, "istio": istio_label}},
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {"prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020",
                                        "prometheus.io/scrape": "true", "sidecar.istio.io/inject": "false",
                                        "istio.io/rev": "default"},
                    },
                    "spec": {
                        "serviceAccountName": sa,
                        "containers": [{
                            "name": "istio-proxy",
                            "image": proxy_image(hub),
                            "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                                     "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                                     "--log_output_level=default:info"],
                            "ports": ports,
                            "env": [
                                {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                                {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
                                env_field("NODE_NAME", "spec.nodeName"),
                                env_field("POD_NAME", "metadata.name"),
                                env_field("POD_NAMESPACE", "metadata.namespace"),
                                env_field("INSTANCE_IP", "status.podIP"),
                                env_field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
                                {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
                                {"name": "ISTIO_META_OWNER", "value":
                                    format!("kubernetes://apis/apps/v1/namespaces/{ROOT_NAMESPACE}/deployments/{name}")},
                                {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
                                {"name": "TRUST_DOMAIN", "value": "cluster.local"},
                                {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                                "failureThreshold": 30, "initialDelaySeconds": 1, "periodSeconds": 2,
                                "successThreshold": 1, "timeoutSeconds": 1,
                            },
                            "resources": {"limits": {"cpu": "2", "memory": "1Gi"},
                                          "requests": {"cpu": "10m", "memory": "40Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": false, "privileged": false,
                                                "readOnlyRootFilesystem": true, "runAsNonRoot": true,
                                                "runAsUser": 1337, "runAsGroup": 1337},
                        }],
                    },
                },
            },
        }),
    ]
}

fn ingress_gateway(hub: &str) -> Vec<Value> {
    let name = "istio-ingressgateway";
    let mut objects = gateway(
        name,
        "ingressgateway",
        INGRESS_SERVICE_ACCOUNT,
        json!([
            {"containerPort": 15021, "protocol": "TCP"},
            {"containerPort": 8080, "protocol": "TCP"},
            {"containerPort": 8443, "protocol": "TCP"},
            {"containerPort": 31400, "protocol": "TCP"},
            {"containerPort": 15443, "protocol": "TCP"},
            {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"},
        ]),
        hub,
    );
    objects.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ROOT_NAMESPACE,
                     "labels": {"app": name, "istio": "ingressgateway", "istio.io/rev": "default"}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name, "istio": "ingressgateway"},
            "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
                {"name": "tcp", "port": 31400, "protocol": "TCP", "targetPort": 31400},
                {"name": "tls", "port": 15443, "protocol": "TCP", "targetPort": 15443},
            ],
        },
    }));
    objects
}

fn egress_gateway(hub: &str) -> Vec<Value> {
    let name = "istio-egressgateway";
    let mut objects = gateway(
        name,
        "egressgateway",
        EGRESS_SERVICE_ACCOUNT,
        json!([
            {"containerPort": 8080, "protocol": "TCP"},
            {"containerPort": 8443, "protocol": "TCP"},
            {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"},
        ]),
        hub,
    );
    objects.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ROOT_NAMESPACE,
                     "labels": {"app": name, "istio": "egressgateway", "istio.io/rev": "default"}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": name, "istio": "egressgateway"},
            "ports": [
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
            ],
        },
    }));
    objects
}

/// The test-only variable that picks the profile the sandbox installs (see the module docs).
pub const ISTIO_PROFILE_VAR: &str = "HAPPY_SANDBOX_ISTIO_PROFILE";

/// The install profiles the sandbox models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// What the workshop installs: istiod and both gateways.
    Demo,
    /// istioctl's default: no egress gateway.
    Default,
}

impl Profile {
    /// The profile [`ISTIO_PROFILE_VAR`] names: unset or empty is the demo profile; any value
    /// other than `demo` or `default` is an error naming the variable.
    pub fn from_env() -> Result<Profile, String> {
        Profile::parse(std::env::var(ISTIO_PROFILE_VAR).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Profile, String> {
        match value.map(str::trim) {
            None | Some("" | "demo") => Ok(Profile::Demo),
            Some("default") => Ok(Profile::Default),
            Some(other) => Err(format!(
                "{ISTIO_PROFILE_VAR}={other:?}: the sandbox models the profiles demo and default only"
            )),
        }
    }
}

/// Every object of the demo profile, in creation order (the namespace first), its images on
/// `hub`.
pub fn demo_profile_objects(root_cert_pem: &str, hub: &str) -> Vec<Value> {
    profile_objects(Profile::Demo, root_cert_pem, hub)
}

/// Every object of `profile`, in creation order (the namespace first), its images on `hub`.
pub fn profile_objects(profile: Profile, root_cert_pem: &str, hub: &str) -> Vec<Value> {
    let mut objects = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ROOT_NAMESPACE},
    })];
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-ca-root-cert", "namespace": ROOT_NAMESPACE,
                     "labels": {"istio.io/config": "true"}},
        "data": {"root-cert.pem": root_cert_pem},
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": ROOT_NAMESPACE,
                     "labels": {"app": "istiod", "istio.io/rev": "default"}},
        "data": {"mesh": "accessLogFile: /dev/stdout\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\nenablePrometheusMerge: true\nrootNamespace: istio-system\ntrustDomain: cluster.local\n",
                 "meshNetworks": "networks: {}"},
    }));
    objects.extend(istiod(hub));
    objects.extend(ingress_gateway(hub));
    if profile == Profile::Demo {
        objects.extend(egress_gateway(hub));
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_profile_has_istiod_and_both_gateways() {
        let objs = demo_profile_objects("PEM", "localhost:5000/istio");
        let find = |kind: &str, name: &str| {
            objs.iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{kind} {name}"))
        };
        let istiod = find("Deployment", "istiod");
        assert_eq!(
            istiod["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("localhost:5000/istio/pilot:{}", crate::mesh::ISTIO_VERSION)
        );
        let ingress = find("Deployment", "istio-ingressgateway");
        let pod = &ingress["spec"]["template"];
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            format!(
                "localhost:5000/istio/proxyv2:{}",
                crate::mesh::ISTIO_VERSION
            )
        );
        assert_eq!(pod["metadata"]["labels"]["istio"], "ingressgateway");
        assert_eq!(pod["spec"]["serviceAccountName"], INGRESS_SERVICE_ACCOUNT);
        let svc = find("Service", "istio-ingressgateway");
        assert_eq!(svc["spec"]["type"], "LoadBalancer");
        assert!(
            svc["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == 80 && p["targetPort"] == 8080 && p["name"] == "http2")
        );
        find("Deployment", "istio-egressgateway");
        find("Service", "istio-egressgateway");
    }

    /// The default profile: istiod and the ingress gateway as in the demo profile, nothing of
    /// the egress gateway.
    #[test]
    fn the_default_profile_has_no_egress_gateway() {
        let demo = demo_profile_objects("PEM", "h");
        let default = profile_objects(Profile::Default, "PEM", "h");
        let egress = |o: &Value| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("egressgateway"))
        };
        assert!(default.iter().all(|o| !egress(o)), "{default:?}");
        let kinds: Vec<&Value> = demo
            .iter()
            .filter(|o| egress(o))
            .map(|o| &o["kind"])
            .collect();
        assert_eq!(kinds, ["ServiceAccount", "Deployment", "Service"]);
        let rest: Vec<&Value> = demo.iter().filter(|o| !egress(o)).collect();
        assert_eq!(rest, default.iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_profile_knob_takes_demo_or_default_only() {
        assert_eq!(Profile::parse(None), Ok(Profile::Demo));
        assert_eq!(Profile::parse(Some("")), Ok(Profile::Demo));
        assert_eq!(Profile::parse(Some("demo")), Ok(Profile::Demo));
        assert_eq!(Profile::parse(Some(" default ")), Ok(Profile::Default));
        let err = Profile::parse(Some("minimal")).unwrap_err();
        assert!(
            err.contains(ISTIO_PROFILE_VAR) && err.contains("minimal"),
            "{err}"
        );
    }
}
