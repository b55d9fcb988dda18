//! The bootstrap every proxy's Envoy starts with: its node identity, the admin interface on
//! podIP:15000, the health listener on podIP:15021 (`/healthz/ready`, what the readiness and
//! startup probes ask), and LDS and CDS from files in the proxy's directory. The files are
//! replaced by atomic rename, which Envoy's `watched_directory` notices, so configuration
//! changes apply without restarting Envoy.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::input::ProxyInput;

/// Envoy's admin port (not 15020: that is the agent's, where metrics are served).
pub const ADMIN_PORT: u16 = 15000;
/// The health port of every proxy.
pub const HEALTH_PORT: u16 = 15021;
/// The agent's port (metrics and `/healthz/ready`).
pub const AGENT_PORT: u16 = 15020;

/// The files of a proxy's directory.
#[derive(Clone, Debug)]
pub struct ProxyFiles {
    pub dir: PathBuf,
    pub bootstrap: PathBuf,
    pub lds: PathBuf,
    pub cds: PathBuf,
}

impl ProxyFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            bootstrap: dir.join("envoy-rev.json"),
            lds: dir.join("lds.json"),
            cds: dir.join("cds.json"),
        }
    }
}

fn path_source(file: &Path, dir: &Path) -> Value {
    json!({
        "path_config_source": {"path": file.display().to_string(),
                               "watched_directory": {"path": dir.display().to_string()}},
        "resource_api_version": "V3",
    })
}

/// The bootstrap for `proxy` with its files in `files`.
pub fn bootstrap(proxy: &ProxyInput, files: &ProxyFiles) -> Value {
    let ip = proxy.meta.ip.to_string();
    let health_routes = json!({
        "name": "health",
        "virtual_hosts": [{"name": "health", "domains": ["*"], "routes": [
            {"match": {"path": "/healthz/ready"},
             "route": {"cluster": "envoy-admin", "prefix_rewrite": "/ready", "timeout": "3s"}},
            {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
        ]}],
    });
    json!({
        "node": {
            "id": proxy.node_id(),
            "cluster": format!("{}.{}", proxy.meta.workload, proxy.meta.namespace),
            "metadata": {
                "NAMESPACE": proxy.meta.namespace,
                "NAME": proxy.meta.pod_name,
                "WORKLOAD_NAME": proxy.meta.workload,
                "SERVICE_ACCOUNT": proxy.meta.service_account,
                "INSTANCE_IPS": ip,
                "LABELS": proxy.labels,
                "ISTIO_VERSION": crate::mesh::ISTIO_VERSION,
                "MESH_ID": crate::mesh::TRUST_DOMAIN,
                "CLUSTER_ID": "Kubernetes",
            },
        },
        // As Istio's bootstrap: a connection limit so Envoy does not warn that there is none.
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 2147483647u32,
            },
        }]},
        "admin": {"address": {"socket_address": {"address": ip, "port_value": ADMIN_PORT}}},
        "dynamic_resources": {
            "lds_config": path_source(&files.lds, &files.dir),
            "cds_config": path_source(&files.cds, &files.dir),
        },
        "static_resources": {
            "listeners": [{
                "name": "health",
                "address": {"socket_address": {"address": ip, "port_value": HEALTH_PORT}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "health",
                        "route_config": health_routes,
                        "http_filters": [{"name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "envoy-admin",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "envoy-admin", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": ADMIN_PORT}}}}]}]},
            }],
        },
    })
}
