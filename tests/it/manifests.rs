//! The workshop's files hold what the workshop's text says they do (rinormaloku/happy-istio's
//! README and its YAML files): names, labels, images, env, selectors and policies. A typo in a manifest fails here, before any cluster is involved.

use std::collections::BTreeMap;
use std::path::PathBuf;

use happy_istio::manifests::{Manifest, ManifestDir};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::{Value, json};

fn dir() -> ManifestDir {
    ManifestDir::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests"))
}

fn load(file: &str) -> Vec<Manifest> {
    dir().load(file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn kinds(manifests: &[Manifest]) -> Vec<(String, String)> {
    manifests
        .iter()
        .map(|m| {
            (
                m.object
                    .types
                    .as_ref()
                    .map(|t| t.kind.clone())
                    .unwrap_or_default(),
                m.object.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(manifests: &[Manifest], kind: &str) -> T {
    let m = manifests
        .iter()
        .find(|m| m.object.types.as_ref().is_some_and(|t| t.kind == kind))
        .unwrap_or_else(|| panic!("no {kind}"));
    serde_json::from_value(serde_json::to_value(&m.object).expect("serializable")).expect(kind)
}

fn spec_of(manifests: &[Manifest], kind: &str) -> Value {
    let m = manifests
        .iter()
        .find(|m| m.object.types.as_ref().is_some_and(|t| t.kind == kind))
        .unwrap_or_else(|| panic!("no {kind}"));
    m.object.data["spec"].clone()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Check a Deployment against the workshop's common facts and its own env.
fn check_app(
    deployment: &Deployment,
    name: &str,
    pod_labels: &[(&str, &str)],
    sa: &str,
    env: &[(&str, &str)],
) {
    assert_eq!(deployment.metadata.name.as_deref(), Some(name));
    let spec = deployment.spec.as_ref().expect("spec");
    assert_eq!(
        spec.selector.match_labels.as_ref(),
        Some(&labels(pod_labels)),
        "{name} selector"
    );
    let template = &spec.template;
    assert_eq!(
        template.metadata.as_ref().and_then(|m| m.labels.clone()),
        Some(labels(pod_labels)),
        "{name} pod labels"
    );
    let pod = template.spec.as_ref().expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(sa),
        "{name} service account"
    );
    assert_eq!(pod.containers.len(), 1, "{name} has one container");
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("rinormaloku/happy-service:latest"),
        "{name} image"
    );
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let port = &c.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.container_port, port.name.as_deref()),
        (8080, Some("http")),
        "{name} port"
    );
    assert_eq!(
        c.security_context.as_ref().and_then(|s| s.privileged),
        Some(false)
    );
    let vars: BTreeMap<String, Option<String>> = c
        .env
        .as_ref()
        .expect("env")
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    let mut expected: BTreeMap<String, Option<String>> =
        [("LISTEN_ADDR", "0.0.0.0:8080"), ("SERVER_TYPE", "http")]
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
    expected.insert("KUBERNETES_NAMESPACE".into(), None);
    assert_eq!(vars, expected, "{name} env");
    let ns = c
        .env
        .as_ref()
        .expect("env")
        .iter()
        .find(|e| e.name == "KUBERNETES_NAMESPACE")
        .expect("namespace var");
    let field = ns
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(field, Some("metadata.namespace"));
}

fn check_service(service: &Service, name: &str, selector: &[(&str, &str)]) {
    assert_eq!(service.metadata.name.as_deref(), Some(name));
    let spec = service.spec.as_ref().expect("spec");
    assert_eq!(
        spec.selector.as_ref(),
        Some(&labels(selector)),
        "{name} selector"
    );
    let port = &spec.ports.as_ref().expect("ports")[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
}

#[test]
fn service_a() {
    let _processes = crate::processes::shared();
    let m = load("services-a.yaml");
    assert_eq!(
        kinds(&m),
        [
            ("ServiceAccount".into(), "service-a".into()),
            ("Service".into(), "service-a".into()),
            ("Deployment".into(), "service-a".into())
        ]
    );
    check_service(
        &typed(&m, "Service"),
        "service-a",
        &[("app", "service-a"), ("version", "v1")],
    );
    check_app(
        &typed(&m, "Deployment"),
        "service-a",
        &[("app", "service-a"), ("version", "v1")],
        "service-a",
        &[
            ("NAME", "service-a"),
            ("MESSAGE", "Hello from service-a"),
            ("SERVICE_OWNER", "dave"),
            ("UPSTREAM_URIS", "http://service-b,http://service-c"),
        ],
    );
}

#[test]
fn service_b() {
    let _processes = crate::processes::shared();
    let m = load("services-b.yaml");
    assert_eq!(
        kinds(&m),
        [
            ("ServiceAccount".into(), "service-b".into()),
            ("Service".into(), "service-b".into()),
            ("Deployment".into(), "service-b".into())
        ]
    );
    check_service(&typed(&m, "Service"), "service-b", &[("app", "service-b")]);
    check_app(
        &typed(&m, "Deployment"),
        "service-b",
        &[("app", "service-b"), ("version", "v1")],
        "service-b",
        &[("NAME", "service-b"), ("SERVICE_OWNER", "oli")],
    );
}

#[test]
fn service_c_v1_and_v2() {
    let _processes = crate::processes::shared();
    let m = load("services-c-v1.yaml");
    assert_eq!(
        kinds(&m),
        [
            ("ServiceAccount".into(), "service-c".into()),
            ("Service".into(), "service-c".into()),
            ("Deployment".into(), "service-c-v1".into())
        ]
    );
    check_service(&typed(&m, "Service"), "service-c", &[("app", "service-c")]);
    check_app(
        &typed(&m, "Deployment"),
        "service-c-v1",
        &[("app", "service-c"), ("version", "v1")],
        "service-c",
        &[("NAME", "service-c(v1)"), ("SERVICE_OWNER", "sam")],
    );
    let m = load("services-c-v2.yaml");
    assert_eq!(kinds(&m), [("Deployment".into(), "service-c-v2".into())]);
    check_app(
        &typed(&m, "Deployment"),
        "service-c-v2",
        &[("app", "service-c"), ("version", "v2")],
        "service-c",
        &[
            ("NAME", "service-c(v2)"),
            ("SERVICE_OWNER", "pam"),
            ("ERROR_TYPE", "http_error"),
            ("ERROR_RATE", "0.6"),
            ("ERROR_CODE", "500"),
        ],
    );
}

#[test]
fn gateway_and_route() {
    let _processes = crate::processes::shared();
    let m = load("service-a-gateway.yaml");
    assert_eq!(kinds(&m), [("Gateway".into(), "service-a-gateway".into())]);
    assert_eq!(
        m[0].object.types.as_ref().map(|t| t.api_version.as_str()),
        Some("networking.istio.io/v1alpha3")
    );
    assert_eq!(
        spec_of(&m, "Gateway"),
        json!({
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
        })
    );
    let m = load("service-a-route.yaml");
    assert_eq!(
        kinds(&m),
        [("VirtualService".into(), "service-a-routing".into())]
    );
    assert_eq!(
        spec_of(&m, "VirtualService"),
        json!({
            "hosts": ["*"], "gateways": ["service-a-gateway"],
            "http": [{"route": [{"destination": {"host": "service-a"}}]}]
        })
    );
}

const SERVICE_C: &str = "service-c.istioinaction.svc.cluster.local";

#[test]
fn service_c_traffic_rules() {
    let _processes = crate::processes::shared();
    let m = load("service-c-dr.yaml");
    assert_eq!(kinds(&m), [("DestinationRule".into(), "service-c".into())]);
    assert_eq!(
        spec_of(&m, "DestinationRule"),
        json!({
            "host": SERVICE_C,
            "subsets": [{"name": "version-v1", "labels": {"version": "v1"}}, {"name": "version-v2", "labels": {"version": "v2"}}]
        })
    );
    let m = load("service-c-route.yaml");
    assert_eq!(kinds(&m), [("VirtualService".into(), "service-c".into())]);
    assert_eq!(
        spec_of(&m, "VirtualService"),
        json!({
            "hosts": [SERVICE_C], "gateways": ["mesh"],
            "http": [{"route": [{"destination": {"host": SERVICE_C, "subset": "version-v1"}}]}]
        })
    );
    let m = load("service-c-mirror.yaml");
    assert_eq!(kinds(&m), [("VirtualService".into(), "service-c".into())]);
    assert_eq!(
        spec_of(&m, "VirtualService"),
        json!({
            "hosts": [SERVICE_C], "gateways": ["mesh"],
            "http": [{
                "route": [{"destination": {"host": SERVICE_C, "subset": "version-v1"}}],
                "mirror": {"host": SERVICE_C, "subset": "version-v2"},
                "mirrorPercentage": {"value": 100.0}
            }]
        })
    );
}

#[test]
fn security_policies() {
    let _processes = crate::processes::shared();
    let m = load("peer-auth-strict.yaml");
    assert_eq!(kinds(&m), [("PeerAuthentication".into(), "default".into())]);
    assert_eq!(
        m[0].object.metadata.namespace.as_deref(),
        Some("istioinaction")
    );
    assert_eq!(
        m[0].object.types.as_ref().map(|t| t.api_version.as_str()),
        Some("security.istio.io/v1beta1")
    );
    assert_eq!(
        spec_of(&m, "PeerAuthentication"),
        json!({"mtls": {"mode": "STRICT"}})
    );

    let m = load("ingress-to-service-a-auth-policy.yaml");
    assert_eq!(
        kinds(&m),
        [("AuthorizationPolicy".into(), "service-a".into())]
    );
    assert_eq!(
        spec_of(&m, "AuthorizationPolicy"),
        json!({
            "selector": {"matchLabels": {"app": "service-a"}}, "action": "ALLOW",
            "rules": [{"from": [
                {"source": {"principals": ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}},
                {"source": {"namespaces": ["istio-system"]}}
            ]}]
        })
    );
    for (file, name, app) in [
        ("service-a-to-b-auth-policy.yaml", "service-b", "service-b"),
        ("service-a-to-c-auth-policy.yaml", "service-c", "service-c"),
    ] {
        let m = load(file);
        assert_eq!(kinds(&m), [("AuthorizationPolicy".into(), name.into())]);
        assert_eq!(
            spec_of(&m, "AuthorizationPolicy"),
            json!({
                "selector": {"matchLabels": {"app": app}}, "action": "ALLOW",
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/istioinaction/sa/service-a"]}}]}]
            }),
            "{file}"
        );
    }
}

#[test]
fn legacy_client() {
    let _processes = crate::processes::shared();
    let m = load("legacy.yaml");
    assert_eq!(kinds(&m), [("Pod".into(), "legacy".into())]);
    let pod: Pod = typed(&m, "Pod");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let c = &pod.spec.as_ref().expect("spec").containers[0];
    assert_eq!(c.image.as_deref(), Some("radial/busyboxplus:curl"));
    assert_eq!(
        c.command.as_deref(),
        Some(&["tail".to_string(), "-f".into(), "/dev/null".into()][..])
    );
}
