//! What the translation reads: Services, pods and Istio's configuration objects, parsed once
//! per regeneration from their JSON, plus what one proxy needs to know about itself.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::Value;

use crate::mesh::ca::CertPaths;
use crate::mesh::model::{WorkloadMeta, labels_of, selector_of, selects};

/// The application protocol of a Service port, as Istio derives it from the port's name or
/// `appProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

impl Protocol {
    /// Istio's protocol selection: `http`, `http2`, `grpc`, `grpc-web` (name prefix before the
    /// first `-`, or `appProtocol`) are HTTP; anything else is treated as TCP here (Istio would
    /// sniff unnamed ports; the workshop names all of its ports).
    pub fn of_port(name: &str, app_protocol: Option<&str>) -> Self {
        let p = app_protocol
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| {
                name.split('-')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            });
        match p.as_str() {
            "http" | "http2" | "grpc" | "grpc-web" | "h2c" | "kubernetes.io/h2c" => Protocol::Http,
            _ => Protocol::Tcp,
        }
    }
}

/// `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Number(u16),
    Name(String),
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target: Target,
    pub protocol: Protocol,
}

/// A Kubernetes Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    pub selector: BTreeMap<String, String>,
}

impl ServiceInfo {
    /// `name.namespace.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        super::hosts::fqdn(&self.name, &self.namespace)
    }

    pub fn from_json(v: &Value) -> Option<Self> {
        let meta = &v["metadata"];
        let spec = &v["spec"];
        let ports = spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p["port"].as_u64()?).ok()?;
                let name = p["name"].as_str().unwrap_or_default().to_string();
                let target = match &p["targetPort"] {
                    Value::Number(n) => Target::Number(u16::try_from(n.as_u64()?).ok()?),
                    Value::String(s) => match s.parse::<u16>() {
                        Ok(n) => Target::Number(n),
                        Err(_) => Target::Name(s.clone()),
                    },
                    _ => Target::Number(port),
                };
                Some(ServicePort {
                    protocol: Protocol::of_port(&name, p["appProtocol"].as_str()),
                    name,
                    port,
                    target,
                })
            })
            .collect();
        Some(Self {
            namespace: meta["namespace"].as_str()?.to_string(),
            name: meta["name"].as_str()?.to_string(),
            cluster_ip: spec["clusterIP"].as_str().and_then(|s| s.parse().ok()),
            ports,
            selector: selector_of(&spec["selector"]),
        })
    }

    /// Whether the Service selects `pod`.
    pub fn selects(&self, pod: &PodInfo) -> bool {
        !self.selector.is_empty()
            && self.namespace == pod.namespace
            && selects(&self.selector, &pod.labels)
    }
}

/// A pod that has an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ready: bool,
    /// Injected with a sidecar (label `security.istio.io/tlsMode=istio`): auto mTLS sends TLS.
    pub sidecar: bool,
    pub named_ports: Vec<(String, u16)>,
    pub container_ports: Vec<u16>,
}

impl PodInfo {
    /// A stored pod with an address that is not being deleted.
    pub fn from_json(v: &Value) -> Option<Self> {
        let meta = &v["metadata"];
        if !meta["deletionTimestamp"].is_null() {
            return None;
        }
        let ip: Ipv4Addr = v["status"]["podIP"].as_str()?.parse().ok()?;
        let labels = labels_of(v);
        let ready = v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let mut named_ports = Vec::new();
        let mut container_ports = Vec::new();
        for c in v["spec"]["containers"].as_array().into_iter().flatten() {
            for p in c["ports"].as_array().into_iter().flatten() {
                let Some(n) = p["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                else {
                    continue;
                };
                container_ports.push(n);
                if let Some(name) = p["name"].as_str() {
                    named_ports.push((name.to_string(), n));
                }
            }
        }
        Some(Self {
            namespace: meta["namespace"].as_str()?.to_string(),
            name: meta["name"].as_str()?.to_string(),
            sidecar: labels.get("security.istio.io/tlsMode").map(String::as_str) == Some("istio"),
            labels,
            ip,
            service_account: v["spec"]["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string(),
            ready,
            named_ports,
            container_ports,
        })
    }

    /// The pod port a Service port's target means on this pod.
    pub fn target_port(&self, target: &Target) -> Option<u16> {
        match target {
            Target::Number(n) => Some(*n),
            Target::Name(name) => self
                .named_ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p),
        }
    }

    /// `spiffe://cluster.local/ns/NS/sa/SA`.
    pub fn spiffe(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            crate::mesh::TRUST_DOMAIN,
            self.namespace,
            self.service_account
        )
    }
}

/// Everything the translation reads about the cluster, for all proxies at once.
#[derive(Clone, Debug, Default)]
pub struct MeshInput {
    pub services: Vec<ServiceInfo>,
    pub pods: Vec<PodInfo>,
    pub gateways: Vec<Value>,
    pub virtual_services: Vec<Value>,
    pub destination_rules: Vec<Value>,
    pub service_entries: Vec<Value>,
    pub peer_authentications: Vec<Value>,
    pub authorization_policies: Vec<Value>,
    /// `telemetry.istio.io` Telemetries, oldest first (set after [`MeshInput::from_objects`]).
    pub telemetries: Vec<Value>,
}

/// Oldest first, as Istio orders configuration (creation time, then namespace/name).
pub(crate) fn by_age(mut objs: Vec<Value>) -> Vec<Value> {
    objs.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                o["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    objs
}

impl MeshInput {
    /// Parse the stored objects (each list as the store lists them).
    #[allow(clippy::too_many_arguments)]
    pub fn from_objects(
        services: &[Value],
        pods: &[Value],
        gateways: Vec<Value>,
        virtual_services: Vec<Value>,
        destination_rules: Vec<Value>,
        service_entries: Vec<Value>,
        peer_authentications: Vec<Value>,
        authorization_policies: Vec<Value>,
    ) -> Self {
        let mut services: Vec<ServiceInfo> =
            services.iter().filter_map(ServiceInfo::from_json).collect();
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut pods: Vec<PodInfo> = pods.iter().filter_map(PodInfo::from_json).collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Self {
            services,
            pods,
            gateways: by_age(gateways),
            virtual_services: by_age(virtual_services),
            destination_rules: by_age(destination_rules),
            service_entries: by_age(service_entries),
            peer_authentications: by_age(peer_authentications),
            authorization_policies: by_age(authorization_policies),
            telemetries: Vec::new(),
        }
    }

    /// The Service with this FQDN.
    pub fn service_by_fqdn(&self, fqdn: &str) -> Option<&ServiceInfo> {
        self.services.iter().find(|s| s.fqdn() == fqdn)
    }

    /// The pods a Service selects.
    pub fn endpoints_of<'a>(&'a self, svc: &'a ServiceInfo) -> impl Iterator<Item = &'a PodInfo> {
        self.pods.iter().filter(move |p| svc.selects(p))
    }
}

/// Sidecar or gateway: what Envoy is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Sidecar,
    Router,
}

/// One proxy, as its configuration needs it.
#[derive(Clone, Debug)]
pub struct ProxyInput {
    pub kind: ProxyKind,
    pub meta: WorkloadMeta,
    pub labels: BTreeMap<String, String>,
    /// The pod's ports (container ports), for inbound and gateway listeners.
    pub container_ports: Vec<u16>,
    pub certs: CertPaths,
    /// The JSON access log the stats agent reads.
    pub stats_log: PathBuf,
}

impl ProxyInput {
    /// Istio's node id: `sidecar~IP~POD.NS~NS.svc.cluster.local` (`router~…` for gateways).
    pub fn node_id(&self) -> String {
        let kind = match self.kind {
            ProxyKind::Sidecar => "sidecar",
            ProxyKind::Router => "router",
        };
        format!(
            "{kind}~{}~{}.{}~{}.svc.cluster.local",
            self.meta.ip, self.meta.pod_name, self.meta.namespace, self.meta.namespace
        )
    }
}

/// An object the translation could not follow completely, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

impl Warning {
    pub fn about(obj: &Value, message: impl Into<String>) -> Self {
        Self {
            kind: obj["kind"].as_str().unwrap_or_default().to_string(),
            namespace: obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            name: obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}: {}",
            self.kind, self.namespace, self.name, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn protocols_follow_istios_port_naming() {
        assert_eq!(Protocol::of_port("http", None), Protocol::Http);
        assert_eq!(Protocol::of_port("http2", None), Protocol::Http);
        assert_eq!(Protocol::of_port("http-web", None), Protocol::Http);
        assert_eq!(Protocol::of_port("grpc-xds", None), Protocol::Http);
        assert_eq!(Protocol::of_port("tcp", None), Protocol::Tcp);
        assert_eq!(Protocol::of_port("https", None), Protocol::Tcp);
        assert_eq!(Protocol::of_port("x", Some("http")), Protocol::Http);
    }

    #[test]
    fn pods_without_address_or_being_deleted_are_skipped() {
        assert!(
            PodInfo::from_json(&json!({"metadata": {"name": "p", "namespace": "n"}})).is_none()
        );
        let gone = json!({"metadata": {"name": "p", "namespace": "n", "deletionTimestamp": "x"},
                          "status": {"podIP": "127.1.0.1"}});
        assert!(PodInfo::from_json(&gone).is_none());
    }
}
