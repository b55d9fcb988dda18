//! Envoy listeners for sidecars and gateways.
//!
//! Traffic reaches a proxy the way Istio's iptables rules would send it, but without iptables:
//! the pod's egress (outbound) and its recording point (inbound) connect to the proxy and send a
//! PROXY protocol header carrying the original addresses. So:
//!
//! - `virtualOutbound` (podIP:15001) reads the header and, with `use_original_dst`, hands the
//!   connection to the listener of the original destination — `0.0.0.0_PORT` for HTTP
//!   Services (routes by Host), `CLUSTERIP_PORT` for TCP Services (neither binds a port) — or
//!   passes it through;
//! - `virtualInbound` (podIP:15006) reads the header and picks a filter chain by original port
//!   and by what the client speaks (Istio mTLS or plaintext), per PeerAuthentication;
//! - a gateway's `gateway-entry` (podIP:15006) hands connections to its `0.0.0.0_PORT` server
//!   listeners the same way.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::clusters::{ISTIO_ALPN, downstream_mtls, inbound_cluster, inbound_name, outbound_name};
use super::hosts;
use super::input::{MeshInput, PodInfo, Protocol, ProxyInput, Warning};
use super::peer_auth::{MtlsMode, mode_for};
use super::routes::{RouteContext, default_route, gateway_ref_matches, virtual_service_routes};
use crate::mesh::authz;
use crate::mesh::telemetry::{self, Reporter};

/// The port every outbound connection of a sidecar enters by.
pub(crate) const OUTBOUND_PORT: u16 = 15001;
/// The port every inbound connection of a sidecar (or gateway) enters by.
pub(crate) const INBOUND_PORT: u16 = 15006;

fn addr(ip: &str, port: u16) -> Value {
    json!({"socket_address": {"address": ip, "port_value": port}})
}

fn proxy_protocol_filter() -> Value {
    json!({"name": "envoy.filters.listener.proxy_protocol",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"}})
}

fn tls_inspector() -> Value {
    json!({"name": "envoy.filters.listener.tls_inspector",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}})
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

fn non_null(values: Vec<Value>) -> Vec<Value> {
    values.into_iter().filter(|v| !v.is_null()).collect()
}

/// M2's access logs: Istio's text format on stdout, and the JSON log the stats agent reads.
fn access_logs(proxy: &ProxyInput, reporter: Reporter) -> Vec<Value> {
    non_null(vec![
        telemetry::istio_text_access_log(),
        telemetry::stats_access_log(&proxy.stats_log, reporter, &proxy.meta),
    ])
}

fn non_empty_array(v: Value) -> Option<Value> {
    if v.as_array().is_some_and(|a| !a.is_empty()) {
        Some(v)
    } else {
        None
    }
}

fn tcp_proxy(stat_prefix: &str, cluster: &str, proxy: &ProxyInput, reporter: Reporter) -> Value {
    json!({"name": "envoy.filters.network.tcp_proxy",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": stat_prefix, "cluster": cluster,
                            "access_log": access_logs(proxy, reporter)}})
}

/// The `server` header of Istio's inbound and gateway listeners (istio/istio
/// pilot/pkg/networking/core/accesslog.go `EnvoyServerName`, 1.28–1.30).
pub(crate) const ISTIO_SERVER_NAME: &str = "istio-envoy";

/// The HCM's `tracing` as Istio writes it without a Telemetry resource: mesh config's
/// `enableTracing` is true by default (istio/istio pkg/config/mesh/mesh.go) and
/// `configureTracingFromTelemetry` then sets client and overall sampling to 100 % and random
/// sampling to `PILOT_TRACE_SAMPLING`, which the demo profile sets to 100
/// (pilot/pkg/networking/core/tracing.go `configureSampling`,
/// manifests/charts/istio-control/istio-discovery/files/profile-demo.yaml `traceSampling: 100`;
/// istio 1.28–1.30). No provider: the sandbox runs no Zipkin, so Envoy's null tracer is used.
///
/// It matters for what a client sees: only an HCM with tracing applies the route's
/// `decorator`; on an inbound (INBOUND listener, "Ingress") HCM Envoy then sets
/// `x-envoy-decorator-operation: <operation>` on the response, and an outbound (OUTBOUND,
/// "Egress") HCM removes that header from responses before they reach the app — so a client
/// without a sidecar sees `x-envoy-decorator-operation: service-a.istioinaction.svc.cluster.local:80/*`
/// and a meshed client does not (envoyproxy/envoy source/common/http/conn_manager_impl.cc
/// `ActiveStream::encodeHeaders` and `traceRequest`; the direction from the listener's
/// `traffic_direction`, source/extensions/filters/network/http_connection_manager/config.cc;
/// Envoy 1.28–1.36).
fn tracing() -> Value {
    json!({
        "client_sampling": {"value": 100.0},
        "random_sampling": {"value": 100.0},
        "overall_sampling": {"value": 100.0},
    })
}

/// An HTTP connection manager.
fn hcm(
    stat_prefix: &str,
    route_config: Value,
    filters: Vec<Value>,
    access_log: Vec<Value>,
    inbound: bool,
    gateway: bool,
) -> Value {
    let mut http_filters = filters;
    http_filters.push(router());
    let mut cfg = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "route_config": route_config,
        "http_filters": http_filters,
        "access_log": access_log,
        "use_remote_address": gateway,
        "normalize_path": true,
        "merge_slashes": false,
        "stream_idle_timeout": "0s",
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "tracing": tracing(),
    });
    // Istio names the server `istio-envoy` on inbound and gateway listeners and leaves Envoy's
    // default (`envoy`) on sidecar outbound ones; Envoy overwrites the upstream's `server`
    // header with it (OVERWRITE, Envoy's default and Istio's). istio/istio
    // pilot/pkg/networking/util/proxy_headers.go `GetProxyHeadersFromProxyConfig` (1.28–1.30),
    // used by pilot/pkg/networking/core/listener.go and gateway.go.
    if inbound || gateway {
        cfg["server_name"] = json!(ISTIO_SERVER_NAME);
    }
    if inbound {
        cfg["forward_client_cert_details"] = json!("APPEND_FORWARD");
        cfg["set_current_client_cert_details"] = json!({"subject": true, "dns": true, "uri": true});
    }
    json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg})
}

/// The route configuration of an outbound HTTP listener, with this proxy's peer metadata.
fn outbound_route_config(name: &str, virtual_hosts: Vec<Value>, proxy: &ProxyInput) -> Value {
    let mut rc = json!({"name": name, "virtual_hosts": virtual_hosts, "validate_clusters": false});
    if let Some(h) = non_empty_array(telemetry::peer_metadata_request_headers(&proxy.meta)) {
        rc["request_headers_to_add"] = h;
    }
    let names = telemetry::peer_metadata_header_names();
    if !names.is_empty() {
        rc["response_headers_to_remove"] = json!(names);
    }
    rc
}

/// The VirtualServices bound to the mesh (no `gateways`, or `mesh` among them).
fn mesh_virtual_services(mesh: &MeshInput) -> impl Iterator<Item = &Value> {
    mesh.virtual_services
        .iter()
        .filter(|vs| match vs["spec"]["gateways"].as_array() {
            None => true,
            Some(g) if g.is_empty() => true,
            Some(g) => g.iter().any(|g| g == "mesh"),
        })
}

/// Whether a VirtualService's hosts cover `fqdn`.
fn vs_covers(vs: &Value, fqdn: &str) -> bool {
    let ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
    vs["spec"]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|h| hosts::matches(&hosts::resolve(h, ns), fqdn))
}

/// A sidecar's outbound listeners: `virtualOutbound`, one HTTP listener per HTTP port, one
/// TCP listener per TCP Service port.
pub(crate) fn sidecar_outbound(
    mesh: &MeshInput,
    proxy: &ProxyInput,
    warnings: &mut Vec<Warning>,
) -> Vec<Value> {
    let ip = proxy.meta.ip.to_string();
    let mut listeners = vec![json!({
        "name": "virtualOutbound",
        "address": addr(&ip, OUTBOUND_PORT),
        "use_original_dst": true,
        "traffic_direction": "OUTBOUND",
        "listener_filters": [proxy_protocol_filter()],
        "filter_chains": [{"name": "virtualOutbound-catchall-tcp",
                           "filters": [tcp_proxy("PassthroughCluster", "PassthroughCluster", proxy, Reporter::Source)]}],
    })];
    let mut http_ports: BTreeMap<u16, Vec<Value>> = BTreeMap::new();
    let mesh_vs: Vec<&Value> = mesh_virtual_services(mesh).collect();
    for svc in &mesh.services {
        let fqdn = svc.fqdn();
        for sp in &svc.ports {
            let cluster = outbound_name(sp.port, "", &fqdn);
            match sp.protocol {
                Protocol::Http => {
                    let ctx = RouteContext {
                        mesh,
                        port: sp.port,
                        gateway: None,
                        proxy_labels: &proxy.labels,
                        proxy_namespace: &proxy.meta.namespace,
                        mirror_without_shadow_suffix: crate::mesh::istio_minor() >= (1, 28),
                    };
                    let mut routes = Vec::new();
                    for vs in mesh_vs.iter().filter(|vs| vs_covers(vs, &fqdn)) {
                        routes.extend(virtual_service_routes(vs, &ctx, warnings));
                    }
                    if routes.is_empty() {
                        routes.push(default_route(&cluster, &format!("{fqdn}:{}/*", sp.port)));
                    }
                    http_ports.entry(sp.port).or_default().push(json!({
                        "name": format!("{fqdn}:{}", sp.port),
                        "domains": hosts::service_domains(
                            &svc.name,
                            &svc.namespace,
                            svc.cluster_ip,
                            sp.port,
                            &proxy.meta.namespace,
                        ),
                        "routes": routes,
                        "include_request_attempt_count": true,
                    }));
                }
                Protocol::Tcp => {
                    let Some(cip) = svc.cluster_ip else { continue };
                    listeners.push(json!({
                        "name": format!("{cip}_{}", sp.port),
                        "address": addr(&cip.to_string(), sp.port),
                        "bind_to_port": false,
                        "traffic_direction": "OUTBOUND",
                        "filter_chains": [{"filters": [tcp_proxy(&cluster, &cluster, proxy, Reporter::Source)]}],
                    }));
                }
            }
        }
    }
    for (port, mut vhosts) in http_ports {
        vhosts.push(json!({
            "name": "allow_any",
            "domains": ["*"],
            "routes": [{"name": "allow_any", "match": {"prefix": "/"},
                        "route": {"cluster": "PassthroughCluster", "timeout": "0s"}}],
        }));
        let name = port.to_string();
        listeners.push(json!({
            "name": format!("0.0.0.0_{port}"),
            "address": addr("0.0.0.0", port),
            "bind_to_port": false,
            "traffic_direction": "OUTBOUND",
            "filter_chains": [{"filters": [hcm(
                &format!("outbound_0.0.0.0_{port}"),
                outbound_route_config(&name, vhosts, proxy),
                vec![telemetry::peer_metadata_filter(Reporter::Source)],
                access_logs(proxy, Reporter::Source),
                false,
                false,
            )]}],
        }));
    }
    for vs in &mesh_vs {
        let ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
        for h in vs["spec"]["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let resolved = hosts::resolve(h, ns);
            if !mesh
                .services
                .iter()
                .any(|s| hosts::matches(&resolved, &s.fqdn()))
            {
                warnings.push(Warning::about(
                    vs,
                    format!("host {h:?} ({resolved}) matches no Service; sidecars ignore it (the sandbox has no ServiceEntry support)"),
                ));
            }
        }
    }
    listeners
}

/// The inbound ports of a pod: the target ports of the Services that select it, with their
/// protocol (HTTP when any Service says so).
pub(crate) fn inbound_ports(mesh: &MeshInput, me: &PodInfo) -> BTreeMap<u16, (Protocol, String)> {
    let mut ports: BTreeMap<u16, (Protocol, String)> = BTreeMap::new();
    for svc in mesh.services.iter().filter(|s| s.selects(me)) {
        for sp in &svc.ports {
            let Some(target) = me.target_port(&sp.target) else {
                continue;
            };
            let operation = format!("{}:{}/*", svc.fqdn(), sp.port);
            let entry = ports.entry(target).or_insert((sp.protocol, operation));
            if sp.protocol == Protocol::Http {
                entry.0 = Protocol::Http;
            }
        }
    }
    ports
}

fn inbound_http_chain_filters(
    mesh: &MeshInput,
    proxy: &ProxyInput,
    port: u16,
    operation: &str,
    warnings: &mut Vec<Warning>,
) -> Vec<Value> {
    let authz =
        authz::inbound_http_filters(&mesh.authorization_policies, &proxy.meta, &proxy.labels);
    for w in authz.warnings {
        // M2's warnings name the policy in their text; attach them to the policy they name.
        let policy = mesh.authorization_policies.iter().find(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| w.contains(n))
        });
        warnings.push(match policy {
            Some(p) => Warning::about(p, w),
            None => Warning {
                kind: "AuthorizationPolicy".into(),
                namespace: proxy.meta.namespace.clone(),
                name: String::new(),
                message: w,
            },
        });
    }
    let name = inbound_name(port);
    let mut rc = json!({
        "name": name,
        "validate_clusters": false,
        "virtual_hosts": [{
            "name": format!("inbound|http|{port}"),
            "domains": ["*"],
            "routes": [{"name": "default", "match": {"prefix": "/"},
                        "route": {"cluster": name, "timeout": "0s",
                                  "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}},
                        "decorator": {"operation": operation}}],
        }],
    });
    if let Some(h) = non_empty_array(telemetry::peer_metadata_response_headers(&proxy.meta)) {
        rc["response_headers_to_add"] = h;
    }
    let names = telemetry::peer_metadata_header_names();
    if !names.is_empty() {
        rc["request_headers_to_remove"] = json!(names);
    }
    let mut filters = vec![telemetry::peer_metadata_filter(Reporter::Destination)];
    filters.extend(authz.filters);
    vec![hcm(
        &format!("inbound_0.0.0.0_{port}"),
        rc,
        filters,
        access_logs(proxy, Reporter::Destination),
        true,
        false,
    )]
}

/// The chains of one port (or, with `port: None`, of every other port: passthrough) for a
/// PeerAuthentication mode: mTLS for Istio clients, plaintext for the rest, or both.
fn chains_for(
    mode: MtlsMode,
    port: Option<u16>,
    filters: Vec<Value>,
    proxy: &ProxyInput,
    http: bool,
) -> Vec<Value> {
    let label = port.map_or("passthrough".to_string(), |p| p.to_string());
    let base_match = |transport: &str| {
        let mut m = json!({"transport_protocol": transport});
        if let Some(p) = port {
            m["destination_port"] = json!(p);
        }
        if transport == "tls" {
            m["application_protocols"] = json!(ISTIO_ALPN);
        }
        m
    };
    let mtls = json!({
        "name": format!("inbound|{label}|mtls"),
        "filter_chain_match": base_match("tls"),
        "filters": filters.clone(),
        "transport_socket": downstream_mtls(&proxy.certs, http),
    });
    let plain = json!({
        "name": format!("inbound|{label}|plaintext"),
        "filter_chain_match": base_match("raw_buffer"),
        "filters": filters,
    });
    match mode {
        MtlsMode::Strict => vec![mtls],
        MtlsMode::Permissive => vec![mtls, plain],
        MtlsMode::Disable => vec![plain],
    }
}

/// A sidecar's `virtualInbound` listener and its inbound clusters.
pub(crate) fn sidecar_inbound(
    mesh: &MeshInput,
    proxy: &ProxyInput,
    warnings: &mut Vec<Warning>,
) -> (Value, Vec<Value>) {
    let me = mesh
        .pods
        .iter()
        .find(|p| p.namespace == proxy.meta.namespace && p.name == proxy.meta.pod_name);
    let ports = me.map(|me| inbound_ports(mesh, me)).unwrap_or_default();
    let mut chains = Vec::new();
    let mut clusters = Vec::new();
    for (port, (protocol, operation)) in &ports {
        let mode = mode_for(
            &mesh.peer_authentications,
            &proxy.meta.namespace,
            &proxy.labels,
            Some(*port),
            warnings,
        );
        let filters = match protocol {
            Protocol::Http => inbound_http_chain_filters(mesh, proxy, *port, operation, warnings),
            Protocol::Tcp => vec![tcp_proxy(
                &inbound_name(*port),
                &inbound_name(*port),
                proxy,
                Reporter::Destination,
            )],
        };
        chains.extend(chains_for(
            mode,
            Some(*port),
            filters,
            proxy,
            *protocol == Protocol::Http,
        ));
        clusters.push(inbound_cluster(*port));
    }
    let mode = mode_for(
        &mesh.peer_authentications,
        &proxy.meta.namespace,
        &proxy.labels,
        None,
        warnings,
    );
    let passthrough = vec![tcp_proxy(
        "InboundPassthroughCluster",
        "InboundPassthroughCluster",
        proxy,
        Reporter::Destination,
    )];
    chains.extend(chains_for(mode, None, passthrough, proxy, false));
    let listener = json!({
        "name": "virtualInbound",
        "address": addr(&proxy.meta.ip.to_string(), INBOUND_PORT),
        "traffic_direction": "INBOUND",
        "listener_filters": [proxy_protocol_filter(), tls_inspector()],
        "listener_filters_timeout": "5s",
        "continue_on_listener_filters_timeout": true,
        "filter_chains": chains,
    });
    (listener, clusters)
}

/// A gateway virtual host's domain and its routes.
type DomainRoutes = (String, Vec<Value>);

/// A gateway's listeners: `gateway-entry` and one listener per port of the Gateways that
/// select it, with the routes of the VirtualServices bound to those Gateways.
pub(crate) fn gateway_listeners(
    mesh: &MeshInput,
    proxy: &ProxyInput,
    warnings: &mut Vec<Warning>,
) -> Vec<Value> {
    let ip = proxy.meta.ip.to_string();
    let mut listeners = vec![json!({
        "name": "gateway-entry",
        "address": addr(&ip, INBOUND_PORT),
        "use_original_dst": true,
        "traffic_direction": "INBOUND",
        "listener_filters": [proxy_protocol_filter()],
        "filter_chains": [{"name": "no-server-on-this-port",
                           "filters": [tcp_proxy("BlackHoleCluster", "BlackHoleCluster", proxy, Reporter::Source)]}],
    })];
    let me = mesh
        .pods
        .iter()
        .find(|p| p.namespace == proxy.meta.namespace && p.name == proxy.meta.pod_name);
    // listener port → (server port, virtual hosts in order)
    let mut servers: BTreeMap<u16, (u16, Vec<DomainRoutes>)> = BTreeMap::new();
    for gw in &mesh.gateways {
        let selector = crate::mesh::model::selector_of(&gw["spec"]["selector"]);
        if selector.is_empty() || !crate::mesh::model::selects(&selector, &proxy.labels) {
            continue;
        }
        let gw_ns = gw["metadata"]["namespace"].as_str().unwrap_or_default();
        let gw_ref = format!(
            "{gw_ns}/{}",
            gw["metadata"]["name"].as_str().unwrap_or_default()
        );
        for server in gw["spec"]["servers"].as_array().into_iter().flatten() {
            let Some(number) = server["port"]["number"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
            else {
                warnings.push(Warning::about(
                    gw,
                    "a server without port.number is ignored",
                ));
                continue;
            };
            let protocol = server["port"]["protocol"]
                .as_str()
                .unwrap_or("HTTP")
                .to_ascii_uppercase();
            if !matches!(protocol.as_str(), "HTTP" | "HTTP2" | "GRPC") {
                warnings.push(Warning::about(
                    gw,
                    format!("server port {number} protocol {protocol} is not supported by the sandbox (HTTP only); ignored"),
                ));
                continue;
            }
            if !server["tls"].is_null() {
                warnings.push(Warning::about(
                    gw,
                    format!("server port {number}: tls is not supported by the sandbox; ignored"),
                ));
            }
            // The Service port `number` of a Service selecting this gateway → the pod port.
            let target = me
                .and_then(|me| {
                    mesh.services
                        .iter()
                        .filter(|s| s.selects(me))
                        .find_map(|s| {
                            s.ports
                                .iter()
                                .find(|p| p.port == number)
                                .and_then(|p| me.target_port(&p.target))
                        })
                })
                .unwrap_or(number);
            let entry = servers.entry(target).or_insert((number, Vec::new()));
            let server_hosts: Vec<String> = server["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            let ctx = RouteContext {
                mesh,
                port: number,
                gateway: Some(&gw_ref),
                proxy_labels: &proxy.labels,
                proxy_namespace: &proxy.meta.namespace,
                mirror_without_shadow_suffix: crate::mesh::istio_minor() >= (1, 28),
            };
            for vs in &mesh.virtual_services {
                let vs_ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
                let bound = vs["spec"]["gateways"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|g| gateway_ref_matches(g, vs_ns, &gw_ref));
                if !bound {
                    continue;
                }
                let mut domains = Vec::new();
                for h in vs["spec"]["hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let h = hosts::resolve(h, vs_ns);
                    for sh in &server_hosts {
                        let (sh_ns, sh_host) = match sh.split_once('/') {
                            Some((ns, host)) => (ns, host),
                            None => ("*", sh.as_str()),
                        };
                        let ns_ok =
                            sh_ns == "*" || sh_ns == vs_ns || (sh_ns == "." && vs_ns == gw_ns);
                        if !ns_ok {
                            continue;
                        }
                        let d = if sh_host == "*" || hosts::matches(sh_host, &h) {
                            h.clone()
                        } else if h == "*" || hosts::matches(&h, sh_host) {
                            sh_host.to_string()
                        } else {
                            continue;
                        };
                        if !domains.contains(&d) {
                            domains.push(d);
                        }
                    }
                }
                if domains.is_empty() {
                    continue;
                }
                let routes = virtual_service_routes(vs, &ctx, warnings);
                for d in domains {
                    match entry.1.iter_mut().find(|(dom, _)| *dom == d) {
                        Some((_, rs)) => rs.extend(routes.clone()),
                        None => entry.1.push((d, routes.clone())),
                    }
                }
            }
        }
    }
    for (target, (number, vhosts)) in servers {
        let vhosts: Vec<Value> = vhosts
            .into_iter()
            .map(|(d, routes)| {
                let domains = if d == "*" {
                    json!(["*"])
                } else {
                    json!([d.clone(), format!("{d}:{number}")])
                };
                json!({"name": format!("{d}:{number}"), "domains": domains, "routes": routes,
                       "include_request_attempt_count": true})
            })
            .collect();
        let authz =
            authz::inbound_http_filters(&mesh.authorization_policies, &proxy.meta, &proxy.labels);
        for w in authz.warnings {
            warnings.push(Warning {
                kind: "AuthorizationPolicy".into(),
                namespace: proxy.meta.namespace.clone(),
                name: String::new(),
                message: w,
            });
        }
        listeners.push(json!({
            "name": format!("0.0.0.0_{target}"),
            "address": addr("0.0.0.0", target),
            "bind_to_port": false,
            "traffic_direction": "OUTBOUND",
            "filter_chains": [{"filters": [hcm(
                &format!("outbound_0.0.0.0_{target}"),
                outbound_route_config(&format!("http.{target}"), vhosts, proxy),
                std::iter::once(telemetry::peer_metadata_filter(Reporter::Source))
                    .chain(authz.filters)
                    .collect(),
                access_logs(proxy, Reporter::Source),
                false,
                true,
            )]}],
        }));
    }
    listeners
}
