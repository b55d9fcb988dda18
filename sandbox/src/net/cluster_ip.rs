//! Services' ClusterIPs on the node: allocated from the ClusterIP pool ([`super::addr`]), held
//! while the Service exists, released with it, and listened on: a listener per Service port on
//! ClusterIP:port forwards each connection to a ready endpoint picked as kube-proxy picks
//! ([`super::services`]), keeping the client's address as the source. Those listeners serve clients outside any pod (the host's processes); a pod's own
//! connections never come here, its egress picks the endpoint itself
//! ([`super::egress::DirectPath`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, PoisonError};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pipe::{self, bind_listener, reset, splice};
use super::services::ServiceTable;
use super::{NetError, Network};
use crate::cri::ServiceView;

impl Network {
    pub fn allocate_cluster_ip(&self) -> Result<Ipv4Addr, NetError> {
        self.cluster_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allocate()
    }

    /// Create or replace a Service: DNS, endpoint picking and a listener per port on the
    /// ClusterIP (for clients that do not come through an egress, e.g. the host).
    pub fn update_service(&self, view: ServiceView) {
        let _guard = self.runtime.enter();
        self.cluster_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(view.cluster_ip);
        let wanted: Vec<SocketAddrV4> = view
            .ports
            .iter()
            .map(|p| SocketAddrV4::new(view.cluster_ip, p.port))
            .collect();
        let (view_ns, view_name) = (view.namespace.clone(), view.name.clone());
        let previous = self.services.upsert(view);
        let mut listeners = self
            .service_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(prev) = previous {
            for p in &prev.ports {
                let a = SocketAddrV4::new(prev.cluster_ip, p.port);
                if !wanted.contains(&a)
                    && let Some(token) = listeners.remove(&a)
                {
                    token.cancel();
                }
            }
        }
        for addr in wanted {
            if listeners.contains_key(&addr) {
                continue;
            }
            match bind_listener(SocketAddr::V4(addr)) {
                Ok(listener) => {
                    let token = self.cancel.child_token();
                    listeners.insert(addr, token.clone());
                    let services = self.services.clone();
                    let tracker = self.tracker.clone();
                    self.tracker
                        .spawn(serve_cluster_ip(listener, addr, services, token, tracker));
                }
                // Pods still reach the Service (their egress picks endpoints itself); only
                // clients outside any pod lose the ClusterIP, e.g. port 80 on a host that
                // keeps ports below 1024 for root.
                Err(e) => tracing::warn!(
                    "Service {}/{}: {e}; pods still reach it, processes on the host cannot",
                    view_ns,
                    view_name
                ),
            }
        }
    }

    /// Remove a Service and release its ClusterIP.
    pub fn remove_service(&self, namespace: &str, name: &str) {
        let Some(view) = self.services.remove(namespace, name) else {
            return;
        };
        let mut listeners = self
            .service_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for p in &view.ports {
            if let Some(token) = listeners.remove(&SocketAddrV4::new(view.cluster_ip, p.port)) {
                token.cancel();
            }
        }
        self.cluster_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(view.cluster_ip);
    }
}

async fn serve_cluster_ip(
    listener: TcpListener,
    addr: SocketAddrV4,
    services: Arc<ServiceTable>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, SocketAddr::V4(peer))) = accepted else {
            continue;
        };
        let services = services.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let upstream = match services.pick(*addr.ip(), addr.port()) {
                Ok(ep) => pipe::connect_from(*peer.ip(), ep).await.ok(),
                Err(_) => None,
            };
            match upstream {
                None => reset(client),
                Some(upstream) => {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = splice(client, upstream, None) => {}
                    }
                }
            }
        });
    }
}
