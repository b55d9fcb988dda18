//! Envoy clusters: one `outbound|PORT|SUBSET|FQDN` per Service port (and per DestinationRule
//! subset), with the Service's ready endpoints inline; Istio's auto mTLS on the client side
//! (TLS to endpoints whose pod has a sidecar, plaintext to the others) unless a
//! DestinationRule says otherwise; and the inbound and passthrough clusters.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::hosts;
use super::input::{MeshInput, PodInfo, ProxyInput, ServiceInfo, Warning};
use crate::mesh::ca::CertPaths;

/// The source address of connections from a sidecar to its own app (Istio's inbound
/// passthrough address; the pod's recording point hands them straight to the app).
pub(crate) const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6";

/// The ALPN values an Istio client offers on mTLS connections (what server chains match on).
pub(crate) const ISTIO_ALPN: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

/// `outbound|PORT|SUBSET|FQDN`.
pub(crate) fn outbound_name(port: u16, subset: &str, fqdn: &str) -> String {
    format!("outbound|{port}|{subset}|{fqdn}")
}

/// `inbound|PORT||`.
pub(crate) fn inbound_name(port: u16) -> String {
    format!("inbound|{port}||")
}

fn socket_address(ip: &str, port: u16) -> Value {
    json!({"socket_address": {"address": ip, "port_value": port}})
}

fn file(path: &std::path::Path) -> Value {
    json!({"filename": path.display().to_string()})
}

/// The workload certificate, key and trust anchor, in a `CommonTlsContext`.
fn common_tls(certs: &CertPaths, alpn: &[&str], san: Value) -> Value {
    let mut validation = json!({"trusted_ca": file(&certs.root)});
    if san.as_array().is_some_and(|a| !a.is_empty()) {
        validation["match_typed_subject_alt_names"] = san;
    }
    json!({
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
        "alpn_protocols": alpn,
        "tls_certificates": [{"certificate_chain": file(&certs.chain), "private_key": file(&certs.key)}],
        "validation_context": validation,
    })
}

/// The client side of Istio mTLS: present our certificate, require a peer certificate signed
/// by the mesh CA whose URI SAN is one of `peer_identities` (the destination's service
/// accounts), as Istio does.
pub(crate) fn upstream_mtls(certs: &CertPaths, sni: &str, peer_identities: &[String]) -> Value {
    let san: Vec<Value> = peer_identities
        .iter()
        .map(|id| json!({"san_type": "URI", "matcher": {"exact": id}}))
        .collect();
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common_tls(certs, &["istio-peer-exchange", "istio"], json!(san)),
            "sni": sni,
        }
    })
}

/// The server side of Istio mTLS: a client certificate is required and must carry a SPIFFE
/// identity of this trust domain (Istio checks the trust domain here; who may call is the
/// AuthorizationPolicy's business).
pub(crate) fn downstream_mtls(certs: &CertPaths, http: bool) -> Value {
    let alpn: &[&str] = if http { &["h2", "http/1.1"] } else { &[] };
    let san = json!([{"san_type": "URI", "matcher": {"prefix": format!("spiffe://{}/", crate::mesh::TRUST_DOMAIN)}}]);
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": common_tls(certs, alpn, san),
            "require_client_certificate": true,
        }
    })
}

fn raw_buffer() -> Value {
    json!({
        "name": "envoy.transport_sockets.raw_buffer",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}
    })
}

/// An ORIGINAL_DST cluster (connects where the connection was going) from `source`.
pub(crate) fn original_dst(name: &str, source: &str) -> Value {
    json!({
        "name": name,
        "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED",
        "connect_timeout": "10s",
        "cleanup_interval": "60s",
        "upstream_bind_config": {"source_address": {"address": source, "port_value": 0}},
    })
}

/// How a cluster's connections are secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsChoice {
    /// Istio's auto mTLS: per endpoint, by its `tlsMode` metadata.
    Auto,
    IstioMutual,
    Disable,
}

/// The DestinationRule for `fqdn`, oldest first among those visible (Istio prefers the
/// client's namespace, then the Service's, then the root namespace).
pub(crate) fn destination_rule_for<'a>(
    mesh: &'a MeshInput,
    fqdn: &str,
    proxy_namespace: &str,
    service_namespace: &str,
) -> Option<&'a Value> {
    let applies = |dr: &&Value| {
        let ns = dr["metadata"]["namespace"].as_str().unwrap_or_default();
        dr["spec"]["host"]
            .as_str()
            .is_some_and(|h| hosts::matches(&hosts::resolve(h, ns), fqdn))
    };
    let in_ns = |ns: &str| {
        mesh.destination_rules
            .iter()
            .filter(applies)
            .find(|dr| dr["metadata"]["namespace"] == ns)
    };
    in_ns(proxy_namespace)
        .or_else(|| in_ns(service_namespace))
        .or_else(|| in_ns(crate::mesh::ROOT_NAMESPACE))
}

/// What of a DestinationRule traffic policy the sandbox follows; the rest is reported.
fn apply_traffic_policy(
    policy: &Value,
    dr: &Value,
    cluster: &mut Value,
    tls: &mut TlsChoice,
    warnings: &mut Vec<Warning>,
    at: &str,
) {
    let Some(obj) = policy.as_object() else {
        return;
    };
    for (key, value) in obj {
        match key.as_str() {
            "tls" => match value["mode"].as_str() {
                Some("ISTIO_MUTUAL") => *tls = TlsChoice::IstioMutual,
                Some("DISABLE") => *tls = TlsChoice::Disable,
                Some(other) => warnings.push(Warning::about(
                    dr,
                    format!("{at}trafficPolicy.tls.mode {other} is not supported by the sandbox; Istio's auto mTLS is used"),
                )),
                None => {}
            },
            "loadBalancer" => match value["simple"].as_str() {
                Some("ROUND_ROBIN") => cluster["lb_policy"] = json!("ROUND_ROBIN"),
                Some("LEAST_REQUEST") | Some("LEAST_CONN") => {
                    cluster["lb_policy"] = json!("LEAST_REQUEST")
                }
                Some("RANDOM") => cluster["lb_policy"] = json!("RANDOM"),
                _ => warnings.push(Warning::about(
                    dr,
                    format!("{at}trafficPolicy.loadBalancer {value} is not supported by the sandbox; round robin is used"),
                )),
            },
            other => warnings.push(Warning::about(
                dr,
                format!("{at}trafficPolicy.{other} is not supported by the sandbox; ignored"),
            )),
        }
    }
}

/// One outbound cluster for `svc` port `port`, over `endpoints`.
#[allow(clippy::too_many_arguments)]
fn outbound_cluster(
    proxy: &ProxyInput,
    svc: &ServiceInfo,
    port: u16,
    subset: &str,
    endpoints: &[&PodInfo],
    target: &super::input::Target,
    tls: TlsChoice,
    peer_identities: &[String],
) -> Value {
    let fqdn = svc.fqdn();
    let name = outbound_name(port, subset, &fqdn);
    let lb_endpoints: Vec<Value> = endpoints
        .iter()
        .filter(|p| p.ready)
        .filter_map(|p| {
            let port = p.target_port(target)?;
            let mut ep = json!({"endpoint": {"address": socket_address(&p.ip.to_string(), port)}});
            if p.sidecar {
                ep["metadata"] = json!({"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}});
            }
            Some(ep)
        })
        .collect();
    let sni = format!("outbound_.{port}_.{subset}_.{fqdn}");
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        // Istio's default since 1.14 (what a DestinationRule without loadBalancer gets): with
        // equal weights Envoy picks the less busy of two random hosts, so sequential requests
        // spread at random, not in the strict alternation ROUND_ROBIN would give.
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]},
        "upstream_bind_config": {"source_address": {"address": proxy.meta.ip.to_string(), "port_value": 0}},
        "common_lb_config": {"healthy_panic_threshold": {}},
        "circuit_breakers": {"thresholds": [{"max_connections": 4294967295u32, "max_pending_requests": 4294967295u32,
                                              "max_requests": 4294967295u32, "max_retries": 4294967295u32}]},
        "metadata": {"filter_metadata": {"istio": {
            "services": [{"host": fqdn, "name": svc.name, "namespace": svc.namespace}],
            "subset": subset,
        }}},
    });
    match tls {
        TlsChoice::Auto => {
            cluster["transport_socket_matches"] = json!([
                {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
                 "transport_socket": upstream_mtls(&proxy.certs, &sni, peer_identities)},
                {"name": "tlsMode-disabled", "match": {}, "transport_socket": raw_buffer()},
            ]);
        }
        TlsChoice::IstioMutual => {
            cluster["transport_socket"] = upstream_mtls(&proxy.certs, &sni, peer_identities);
        }
        TlsChoice::Disable => {}
    }
    cluster
}

/// Every outbound cluster a proxy needs: each Service port, and each subset of the
/// DestinationRule that applies to the Service.
pub(crate) fn outbound_clusters(
    mesh: &MeshInput,
    proxy: &ProxyInput,
    warnings: &mut Vec<Warning>,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut reported = BTreeSet::new();
    for svc in &mesh.services {
        let fqdn = svc.fqdn();
        let endpoints: Vec<&PodInfo> = mesh.endpoints_of(svc).collect();
        let identities: Vec<String> = endpoints
            .iter()
            .map(|p| p.spiffe())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let dr = destination_rule_for(mesh, &fqdn, &proxy.meta.namespace, &svc.namespace);
        // Warnings about a DestinationRule once per rule, not once per port.
        let mut dr_warnings = Vec::new();
        for sp in &svc.ports {
            let mut tls = TlsChoice::Auto;
            let mut base = json!({"lb_policy": "LEAST_REQUEST"});
            if let Some(dr) = dr {
                apply_traffic_policy(
                    &dr["spec"]["trafficPolicy"],
                    dr,
                    &mut base,
                    &mut tls,
                    &mut dr_warnings,
                    "",
                );
            }
            let mut default = outbound_cluster(
                proxy,
                svc,
                sp.port,
                "",
                &endpoints,
                &sp.target,
                tls,
                &identities,
            );
            default["lb_policy"] = base["lb_policy"].clone();
            out.push(default);
            let Some(dr) = dr else { continue };
            for subset in dr["spec"]["subsets"].as_array().into_iter().flatten() {
                let Some(subset_name) = subset["name"].as_str() else {
                    dr_warnings.push(Warning::about(dr, "a subset without a name is ignored"));
                    continue;
                };
                let selector = crate::mesh::model::selector_of(&subset["labels"]);
                let members: Vec<&PodInfo> = endpoints
                    .iter()
                    .copied()
                    .filter(|p| crate::mesh::model::selects(&selector, &p.labels))
                    .collect();
                let (mut subset_tls, mut subset_base) = (tls, base.clone());
                apply_traffic_policy(
                    &subset["trafficPolicy"],
                    dr,
                    &mut subset_base,
                    &mut subset_tls,
                    &mut dr_warnings,
                    &format!("subsets[{subset_name}]."),
                );
                let mut c = outbound_cluster(
                    proxy,
                    svc,
                    sp.port,
                    subset_name,
                    &members,
                    &sp.target,
                    subset_tls,
                    &identities,
                );
                c["lb_policy"] = subset_base["lb_policy"].clone();
                out.push(c);
            }
        }
        for w in dr_warnings {
            if reported.insert(w.clone()) {
                warnings.push(w);
            }
        }
    }
    out
}

/// The clusters every proxy has besides the outbound ones.
pub(crate) fn passthrough_clusters(proxy: &ProxyInput) -> Vec<Value> {
    vec![
        original_dst("PassthroughCluster", &proxy.meta.ip.to_string()),
        original_dst("InboundPassthroughCluster", INBOUND_PASSTHROUGH_SOURCE),
        json!({"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s",
               "load_assignment": {"cluster_name": "BlackHoleCluster", "endpoints": []}}),
    ]
}

/// `inbound|PORT||`: to the app on the port the connection was for, from 127.0.0.6.
pub(crate) fn inbound_cluster(port: u16) -> Value {
    original_dst(&inbound_name(port), INBOUND_PASSTHROUGH_SOURCE)
}
