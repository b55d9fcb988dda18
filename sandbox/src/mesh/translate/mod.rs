//! istiod's translation, as pure functions: Kubernetes Services and pods plus Istio's
//! Gateway, VirtualService, DestinationRule, PeerAuthentication (and, through `authz`,
//! AuthorizationPolicy) in; one proxy's Envoy listeners and clusters out, with a warning for
//! every field the sandbox does not follow. Also the bootstrap each Envoy starts with, which
//! points it at its LDS and CDS files.

pub mod bootstrap;
pub(crate) mod clusters;
pub(crate) mod hosts;
pub(crate) mod input;
pub(crate) mod listeners;
pub(crate) mod peer_auth;
pub(crate) mod routes;
pub(crate) mod telemetry_api;

use std::collections::BTreeSet;

use serde_json::{Value, json};

pub use input::{MeshInput, ProxyInput, ProxyKind, Warning};

/// One proxy's dynamic configuration.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    pub listeners: Vec<Value>,
    pub clusters: Vec<Value>,
    /// What could not be followed, each once.
    pub warnings: Vec<Warning>,
}

const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// The configuration of `proxy` given the whole mesh.
pub fn translate(mesh: &MeshInput, proxy: &ProxyInput) -> ProxyConfig {
    let mut warnings = Vec::new();
    let mut clusters = clusters::outbound_clusters(mesh, proxy, &mut warnings);
    clusters.extend(clusters::passthrough_clusters(proxy));
    let listeners = match proxy.kind {
        ProxyKind::Sidecar => {
            let mut ls = listeners::sidecar_outbound(mesh, proxy, &mut warnings);
            let (inbound, inbound_clusters) =
                listeners::sidecar_inbound(mesh, proxy, &mut warnings);
            ls.push(inbound);
            clusters.extend(inbound_clusters);
            ls
        }
        ProxyKind::Router => listeners::gateway_listeners(mesh, proxy, &mut warnings),
    };
    let mut listeners = listeners;
    telemetry_api::apply(
        mesh,
        proxy,
        &mut listeners,
        &crate::mesh::telemetry::istio_text_access_log(),
    );
    warnings.extend(unsupported_fields(mesh));
    warnings.extend(telemetry_api::unsupported(mesh));
    let warnings: Vec<Warning> = warnings
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    ProxyConfig {
        listeners,
        clusters,
        warnings,
    }
}

/// Fields of DestinationRules, PeerAuthentications, Gateways and ServiceEntries that the
/// translation does not read at all (the fields it reads report their own unsupported values).
fn unsupported_fields(mesh: &MeshInput) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut check = |obj: &Value, at: &str, v: &Value, known: &[&str]| {
        for key in v.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !known.contains(&key.as_str()) {
                out.push(Warning::about(
                    obj,
                    format!("{at}{key} is not supported by the sandbox; ignored"),
                ));
            }
        }
    };
    for dr in &mesh.destination_rules {
        check(
            dr,
            "spec.",
            &dr["spec"],
            &["host", "subsets", "trafficPolicy", "exportTo"],
        );
    }
    for pa in &mesh.peer_authentications {
        check(
            pa,
            "spec.",
            &pa["spec"],
            &["selector", "mtls", "portLevelMtls"],
        );
    }
    for gw in &mesh.gateways {
        check(gw, "spec.", &gw["spec"], &["selector", "servers"]);
        for server in gw["spec"]["servers"].as_array().into_iter().flatten() {
            check(gw, "servers[].", server, &["port", "hosts", "tls", "name"]);
        }
    }
    for se in &mesh.service_entries {
        out.push(Warning::about(
            se,
            "ServiceEntry is not supported by the sandbox; its hosts are not added to the mesh",
        ));
    }
    out
}

fn discovery_response(version: u64, type_url: &str, resources: &[Value]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.insert("@type".into(), json!(type_url));
            }
            r
        })
        .collect();
    json!({"version_info": version.to_string(), "resources": resources})
}

/// The LDS file's content (a `DiscoveryResponse`).
pub fn lds_file(version: u64, listeners: &[Value]) -> Value {
    discovery_response(version, LISTENER_TYPE, listeners)
}

/// The CDS file's content (a `DiscoveryResponse`).
pub fn cds_file(version: u64, clusters: &[Value]) -> Value {
    discovery_response(version, CLUSTER_TYPE, clusters)
}

#[cfg(test)]
mod tests;
