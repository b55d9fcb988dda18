//! The Telemetry API's merge as istiod does it (pilot/pkg/model/telemetry.go, see the module),
//! one case per rule the workshop's negative cases and a user's mistakes rest on.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::mesh::ca::CertPaths;
use crate::mesh::model::WorkloadMeta;

fn telemetry(ns: &str, name: &str, age: u32, spec: Value) -> Value {
    json!({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
           "metadata": {"name": name, "namespace": ns,
                        "creationTimestamp": format!("2026-01-01T00:00:{age:02}Z")},
           "spec": spec})
}

fn mesh(telemetries: Vec<Value>) -> MeshInput {
    MeshInput {
        telemetries: crate::mesh::translate::input::by_age(telemetries),
        ..MeshInput::default()
    }
}

fn sidecar(app: &str) -> ProxyInput {
    ProxyInput {
        kind: ProxyKind::Sidecar,
        meta: WorkloadMeta {
            namespace: "istioinaction".into(),
            pod_name: format!("{app}-1"),
            workload: app.into(),
            app: app.into(),
            version: "v1".into(),
            service_account: app.into(),
            ip: "127.1.0.10".parse().unwrap(),
        },
        labels: BTreeMap::from([("app".into(), app.into()), ("version".into(), "v1".into())]),
        container_ports: vec![8080],
        certs: CertPaths::in_dir(Path::new("/tmp/p")),
        stats_log: Path::new("/tmp/p/stats.log").into(),
    }
}

const ON: Outputs = Outputs {
    access_log: true,
    request_count: true,
};

fn both(m: &MeshInput, app: &str) -> (Outputs, Outputs) {
    let p = sidecar(app);
    (outputs(m, &p, Mode::Client), outputs(m, &p, Mode::Server))
}

#[test]
fn without_a_telemetry_the_demo_profile_logs_and_counts() {
    assert_eq!(both(&mesh(vec![]), "service-a"), (ON, ON));
}

#[test]
fn disabling_the_envoy_provider_in_the_root_namespace_stops_every_access_log() {
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"accessLogging": [{"providers": [{"name": "envoy"}], "disabled": true}]}),
    )]);
    let off = Outputs {
        access_log: false,
        request_count: true,
    };
    assert_eq!(both(&m, "service-a"), (off, off));
}

#[test]
fn disabled_without_a_provider_falls_back_to_the_mesh_configs_access_log() {
    // No provider named and none by default: mergeLogs yields no provider, so istiod uses
    // accessLogFile (accesslog.go setHTTPAccessLog) — the log stays on.
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"accessLogging": [{"disabled": true}]}),
    )]);
    assert_eq!(both(&m, "service-a"), (ON, ON));
}

#[test]
fn an_envoy_provider_entry_for_the_server_side_only_keeps_the_client_log() {
    let m = mesh(vec![telemetry(
        "istioinaction",
        "ns",
        0,
        json!({"accessLogging": [{"providers": [{"name": "envoy"}], "match": {"mode": "SERVER"},
                                  "disabled": true}]}),
    )]);
    let (client, server) = both(&m, "service-a");
    assert!(client.access_log);
    assert!(!server.access_log);
}

#[test]
fn disabling_all_prometheus_metrics_stops_request_counts_only() {
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [{"disabled": true}]}]}),
    )]);
    let off = Outputs {
        access_log: true,
        request_count: false,
    };
    assert_eq!(both(&m, "service-a"), (off, off));
}

#[test]
fn a_request_count_override_without_providers_uses_the_default_prometheus() {
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"metrics": [{"overrides": [{"match": {"metric": "REQUEST_COUNT", "mode": "SERVER"},
                                           "disabled": true}]}]}),
    )]);
    let (client, server) = both(&m, "service-a");
    assert!(client.request_count);
    assert!(!server.request_count);
}

#[test]
fn a_custom_metric_override_leaves_request_counts_alone() {
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"metrics": [{"overrides": [{"match": {"customMetric": "my_metric"}, "disabled": true}]}]}),
    )]);
    assert_eq!(both(&m, "service-a"), (ON, ON));
}

#[test]
fn a_namespace_telemetry_overrides_the_roots() {
    let m = mesh(vec![
        telemetry(
            "istio-system",
            "mesh-default",
            0,
            json!({"metrics": [{"overrides": [{"disabled": true}]}]}),
        ),
        telemetry(
            "istioinaction",
            "ns",
            1,
            json!({"metrics": [{"overrides": [{"match": {"metric": "REQUEST_COUNT"}, "disabled": false}]}]}),
        ),
    ]);
    assert_eq!(both(&m, "service-a"), (ON, ON));
}

#[test]
fn a_telemetry_naming_only_another_provider_leaves_prometheus_out() {
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"metrics": [{"providers": [{"name": "stackdriver"}]}]}),
    )]);
    assert!(!both(&m, "service-a").0.request_count);
}

#[test]
fn a_workload_telemetry_applies_only_to_the_pods_it_selects() {
    let m = mesh(vec![telemetry(
        "istioinaction",
        "b-only",
        0,
        json!({"selector": {"matchLabels": {"app": "service-b"}},
               "accessLogging": [{"providers": [{"name": "envoy"}], "disabled": true}]}),
    )]);
    assert_eq!(both(&m, "service-a"), (ON, ON));
    assert!(!both(&m, "service-b").0.access_log);
}

#[test]
fn a_telemetry_in_another_namespace_does_not_apply() {
    let m = mesh(vec![telemetry(
        "default",
        "other",
        0,
        json!({"accessLogging": [{"providers": [{"name": "envoy"}], "disabled": true}]}),
    )]);
    assert_eq!(both(&m, "service-a"), (ON, ON));
}

#[test]
fn apply_drops_the_turned_off_logs_from_every_access_log_list() {
    let p = sidecar("service-a");
    let text = json!({"name": "text"});
    let stats = json!({"name": "stats", "typed_config": {"path": "/tmp/p/stats.log"}});
    let other = json!({"name": "other"});
    let listener = |dir: &str| {
        json!({"traffic_direction": dir, "filter_chains": [{"filters": [
            {"typed_config": {"access_log": [text.clone(), stats.clone(), other.clone()]}}]}]})
    };
    let m = mesh(vec![telemetry(
        "istio-system",
        "mesh-default",
        0,
        json!({"accessLogging": [{"providers": [{"name": "envoy"}], "disabled": true}],
               "metrics": [{"overrides": [{"match": {"mode": "SERVER"}, "disabled": true}]}]}),
    )]);
    let mut ls = vec![listener("OUTBOUND"), listener("INBOUND")];
    apply(&m, &p, &mut ls, &text);
    let logs =
        |l: &Value| l["filter_chains"][0]["filters"][0]["typed_config"]["access_log"].clone();
    assert_eq!(logs(&ls[0]), json!([stats, other]));
    assert_eq!(logs(&ls[1]), json!([other]));
}

#[test]
fn unsupported_telemetry_fields_are_reported() {
    let m = mesh(vec![telemetry(
        "istio-system",
        "t",
        0,
        json!({"tracing": [{"randomSamplingPercentage": 1.0}],
               "accessLogging": [{"filter": {"expression": "response.code >= 400"}}]}),
    )]);
    let w = unsupported(&m);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w.iter().all(|w| w.kind == "Telemetry"));
}
