//! The Service table: what DNS answers for service names and how a ClusterIP connection picks
//! its endpoint. Picking follows kube-proxy: round robin over READY endpoints only, `targetPort`
//! resolved per endpoint (a number, or the endpoint's named container port).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::cri::{ServiceView, TargetPort};

struct Entry {
    view: ServiceView,
    next: AtomicUsize,
}

/// Why a ClusterIP connection has nowhere to go (each maps to a refused connection, as
/// kube-proxy's REJECT rules do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[expect(
    clippy::enum_variant_names,
    reason = "each says what is missing: no Service, no port, no ready endpoint"
)]
pub enum PickError {
    #[error("no Service has ClusterIP {0}")]
    NoService(Ipv4Addr),
    #[error("Service {service} has no port {port}")]
    NoPort { service: String, port: u16 },
    #[error("Service {service} has no ready endpoint for port {port}")]
    NoReadyEndpoint { service: String, port: u16 },
}

/// All Services, by name and by ClusterIP.
#[derive(Default)]
pub struct ServiceTable {
    by_name: RwLock<HashMap<(String, String), Arc<Entry>>>,
    by_ip: RwLock<HashMap<Ipv4Addr, Arc<Entry>>>,
}

impl ServiceTable {
    /// Create or replace a Service; returns the previous view, if any.
    pub fn upsert(&self, view: ServiceView) -> Option<ServiceView> {
        let key = (view.namespace.clone(), view.name.clone());
        let ip = view.cluster_ip;
        let mut by_name = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        let mut by_ip = self.by_ip.write().unwrap_or_else(PoisonError::into_inner);
        // Keep the round-robin position across endpoint updates so a rollout does not restart
        // every client on the first endpoint.
        let next = by_name
            .get(&key)
            .map(|e| e.next.load(Ordering::Relaxed))
            .unwrap_or(0);
        let entry = Arc::new(Entry {
            view,
            next: AtomicUsize::new(next),
        });
        let previous = by_name.insert(key, entry.clone());
        if let Some(prev) = &previous
            && prev.view.cluster_ip != ip
        {
            by_ip.remove(&prev.view.cluster_ip);
        }
        by_ip.insert(ip, entry);
        previous.map(|e| e.view.clone())
    }

    /// Remove a Service; returns its last view.
    pub fn remove(&self, namespace: &str, name: &str) -> Option<ServiceView> {
        let mut by_name = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        let mut by_ip = self.by_ip.write().unwrap_or_else(PoisonError::into_inner);
        let entry = by_name.remove(&(namespace.to_string(), name.to_string()))?;
        by_ip.remove(&entry.view.cluster_ip);
        Some(entry.view.clone())
    }

    /// The ClusterIP of `name` in `namespace`.
    pub fn cluster_ip(&self, namespace: &str, name: &str) -> Option<Ipv4Addr> {
        let by_name = self.by_name.read().unwrap_or_else(PoisonError::into_inner);
        by_name
            .get(&(namespace.to_string(), name.to_string()))
            .map(|e| e.view.cluster_ip)
    }

    /// Whether `ip` is some Service's ClusterIP.
    pub fn is_cluster_ip(&self, ip: Ipv4Addr) -> bool {
        let by_ip = self.by_ip.read().unwrap_or_else(PoisonError::into_inner);
        by_ip.contains_key(&ip)
    }

    /// The endpoint address the next connection to `cluster_ip:port` goes to.
    pub fn pick(&self, cluster_ip: Ipv4Addr, port: u16) -> Result<SocketAddrV4, PickError> {
        let entry = {
            let by_ip = self.by_ip.read().unwrap_or_else(PoisonError::into_inner);
            by_ip
                .get(&cluster_ip)
                .cloned()
                .ok_or(PickError::NoService(cluster_ip))?
        };
        let view = &entry.view;
        let service = format!("{}/{}", view.namespace, view.name);
        let sp = view
            .ports
            .iter()
            .find(|p| p.port == port)
            .ok_or_else(|| PickError::NoPort {
                service: service.clone(),
                port,
            })?;
        let candidates: Vec<SocketAddrV4> = view
            .endpoints
            .iter()
            .filter(|e| e.ready)
            .filter_map(|e| {
                let target = match &sp.target_port {
                    TargetPort::Number(n) => Some(*n),
                    TargetPort::Name(name) => e
                        .named_ports
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, p)| *p),
                }?;
                Some(SocketAddrV4::new(e.ip, target))
            })
            .collect();
        if candidates.is_empty() {
            return Err(PickError::NoReadyEndpoint { service, port });
        }
        let i = entry.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
        Ok(candidates[i])
    }
}

/// A pod's view of DNS, as CoreDNS and the pod's resolv.conf search path give it in Kubernetes.
#[derive(Clone)]
pub struct DnsView {
    namespace: String,
    pod_ip: Ipv4Addr,
    services: Arc<ServiceTable>,
}

impl DnsView {
    pub fn new(namespace: &str, pod_ip: Ipv4Addr, services: Arc<ServiceTable>) -> Self {
        Self {
            namespace: namespace.to_string(),
            pod_ip,
            services,
        }
    }

    /// The address `name` resolves to inside the pod, or `None` (NXDOMAIN).
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        resolve_in(name, &self.namespace, self.pod_ip, |ns, svc| {
            self.services.cluster_ip(ns, svc)
        })
    }
}

/// The resolution rules, separate from the table so they can be tested alone: `svc`, `svc.ns`,
/// `svc.ns.svc`, `svc.ns.svc.cluster.local` → the ClusterIP; `localhost` and loopback literals
/// (127.0.x.y, e.g. 127.0.0.1) → the pod's own address (a pod's loopback is its own address
/// here, so `curl localhost:15020` in istio-proxy reaches the pod's agent); other IPv4 literals
/// pass through (the sandbox's pod and ClusterIP ranges are 127.1/16 and 127.2/16).
pub(crate) fn resolve_in(
    name: &str,
    namespace: &str,
    pod_ip: Ipv4Addr,
    lookup: impl Fn(&str, &str) -> Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        let [a, b, ..] = ip.octets();
        return Some(if a == 127 && b == 0 { pod_ip } else { ip });
    }
    if name == "localhost" || name == "localhost.localdomain" {
        return Some(pod_ip);
    }
    let labels: Vec<&str> = name.split('.').collect();
    match labels.as_slice() {
        [svc] => lookup(namespace, svc),
        [svc, ns] | [svc, ns, "svc"] | [svc, ns, "svc", "cluster", "local"] => lookup(ns, svc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{EndpointView, ServicePortView};

    fn lookup(ns: &str, svc: &str) -> Option<Ipv4Addr> {
        match (ns, svc) {
            ("istioinaction", "service-b") => Some(Ipv4Addr::new(127, 2, 0, 2)),
            ("default", "kubernetes") => Some(Ipv4Addr::new(127, 2, 0, 1)),
            _ => None,
        }
    }

    const POD: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 7);

    #[test]
    fn dns_view_resolves_every_service_name_form() {
        let b = Some(Ipv4Addr::new(127, 2, 0, 2));
        for name in [
            "service-b",
            "service-b.istioinaction",
            "service-b.istioinaction.svc",
            "service-b.istioinaction.svc.cluster.local",
            "service-b.istioinaction.svc.cluster.local.",
            "SERVICE-B.istioinaction",
        ] {
            assert_eq!(resolve_in(name, "istioinaction", POD, lookup), b, "{name}");
        }
    }

    #[test]
    fn dns_view_short_names_use_the_pods_namespace() {
        assert_eq!(resolve_in("service-b", "default", POD, lookup), None);
        assert_eq!(
            resolve_in("kubernetes", "default", POD, lookup),
            Some(Ipv4Addr::new(127, 2, 0, 1))
        );
    }

    #[test]
    fn dns_view_localhost_is_the_pod_and_literals_pass() {
        assert_eq!(resolve_in("localhost", "x", POD, lookup), Some(POD));
        assert_eq!(resolve_in("127.0.0.1", "x", POD, lookup), Some(POD));
        assert_eq!(resolve_in("localhost.", "x", POD, lookup), Some(POD));
        assert_eq!(
            resolve_in("127.1.0.9", "x", POD, lookup),
            Some(Ipv4Addr::new(127, 1, 0, 9))
        );
        assert_eq!(resolve_in("service-x", "istioinaction", POD, lookup), None);
        assert_eq!(
            resolve_in("example.com", "istioinaction", POD, lookup),
            None
        );
        assert_eq!(resolve_in("a.b.c.d", "istioinaction", POD, lookup), None);
    }

    fn view(endpoints: Vec<EndpointView>, target: TargetPort) -> ServiceView {
        ServiceView {
            namespace: "ns".into(),
            name: "svc".into(),
            cluster_ip: Ipv4Addr::new(127, 2, 0, 5),
            ports: vec![ServicePortView {
                name: Some("http".into()),
                port: 80,
                target_port: target,
            }],
            endpoints,
        }
    }

    fn ep(last: u8, ready: bool) -> EndpointView {
        EndpointView {
            pod_name: format!("p{last}"),
            ip: Ipv4Addr::new(127, 1, 0, last),
            ready,
            named_ports: vec![("http".into(), 8080)],
        }
    }

    #[test]
    fn pick_round_robins_over_ready_endpoints_only() {
        let t = ServiceTable::default();
        t.upsert(view(
            vec![ep(1, true), ep(2, false), ep(3, true)],
            TargetPort::Name("http".into()),
        ));
        let ip = Ipv4Addr::new(127, 2, 0, 5);
        let picks: Vec<_> = (0..4).map(|_| t.pick(ip, 80).unwrap()).collect();
        assert_eq!(picks[0], "127.1.0.1:8080".parse().unwrap());
        assert_eq!(picks[1], "127.1.0.3:8080".parse().unwrap());
        assert_eq!(picks[2], picks[0]);
        assert_eq!(picks[3], picks[1]);
    }

    #[test]
    fn pick_fails_without_ready_endpoint_or_port() {
        let t = ServiceTable::default();
        t.upsert(view(vec![ep(1, false)], TargetPort::Number(9090)));
        let ip = Ipv4Addr::new(127, 2, 0, 5);
        assert!(matches!(
            t.pick(ip, 80),
            Err(PickError::NoReadyEndpoint { .. })
        ));
        assert!(matches!(t.pick(ip, 81), Err(PickError::NoPort { .. })));
        assert!(matches!(
            t.pick(Ipv4Addr::new(127, 2, 0, 6), 80),
            Err(PickError::NoService(_))
        ));
        t.remove("ns", "svc");
        assert!(!t.is_cluster_ip(ip));
    }
}
