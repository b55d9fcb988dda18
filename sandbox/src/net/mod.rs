//! The sandbox's pod network: loopback addresses per pod, Service DNS and ClusterIP forwarding
//! (kube-proxy), a per-pod egress through which all of a pod's outbound traffic leaves, and a
//! recording point in front of every port a pod listens on. Everything is plain TCP on `lo`, so
//! real processes (curl, Envoy) can take part.
//!
//! ```text
//!  pod A (127.1.0.1)                                              pod B (127.1.0.2)
//!  app ──► Egress ──► OutboundPath ─────────────────────────► RecordingPoint ──► InboundPath ──► app
//!  curl ─► SOCKS5 ─┘   (default DirectPath:                    127.1.0.2:8080      (default: hand
//!  (127.0.0.1:random)   DNS view, ClusterIP → ready endpoint,   capture ring        the socket to
//!                       source address 127.1.0.1)                                   the in-process app)
//!  host ──► ClusterIP listener 127.2.0.x:port ──► ready endpoint (source = the client's address)
//! ```
//!
//! The mesh swaps a pod's [`egress::OutboundPath`] and [`inbound::InboundPath`] (into and out of
//! its sidecar) with [`PodNet::set_outbound_path`] and [`PodNet::set_inbound_path`]; the app
//! stays reachable at [`PodNet::app_address`]. In a meshed pod, port-forward reaches app ports
//! directly (as on a real pod's loopback), and the sidecar's own connections to its app
//! (source 127.0.0.6) pass the recording point unrecorded.
//!
//! This file is the network's face: [`Network`] (the node's network: address pools, Services,
//! pods) and [`PodNet`] (one pod's), and [`NetError`]. The parts, each in its module:
//! - `addr`: the loopback address pools (pod addresses, ClusterIPs) and the host check;
//! - `pod`: one pod's network (what CNI sets up): address, egress, ports, sessions;
//! - `inbound`: the recording point in front of a pod's ports and the paths behind it;
//! - `egress`: a pod's outbound connections (names resolved in its DNS view), the SOCKS5 server;
//! - `services`: the Service table: DNS answers and kube-proxy's endpoint picking;
//! - `cluster_ip`: Services' ClusterIPs, and their listeners for clients outside any pod;
//! - `capture`, `pcap`: what the recording point records, and as packets for `tcpdump`;
//! - `pipe`: the TCP plumbing: listeners, connections from a source address, byte pumps.

pub(crate) mod addr;
pub mod capture;
mod cluster_ip;
pub mod egress;
pub mod inbound;
pub(crate) mod pcap;
pub(crate) mod pipe;
mod pod;
pub(crate) mod services;

pub use pod::PodNet;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use addr::AddressPool;
use services::ServiceTable;

/// Network failures, each naming the address or port at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "this host does not let the sandbox use loopback address {addr} ({source}); the sandbox \
         needs all of 127.0.0.0/8 routed to the loopback interface, as Linux does by default"
    )]
    LoopbackUnavailable {
        addr: Ipv4Addr,
        #[source]
        source: io::Error,
    },
    #[error("no free address left in the sandbox's {pool} range")]
    PoolExhausted { pool: &'static str },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("no tokio runtime is running: {0}")]
    NoRuntime(String),
}

/// The whole network: address pools, Services, pods' network state.
pub struct Network {
    pod_ips: Mutex<AddressPool>,
    cluster_ips: Mutex<AddressPool>,
    services: Arc<ServiceTable>,
    service_listeners: Mutex<HashMap<SocketAddrV4, CancellationToken>>,
    pods: RwLock<HashMap<Ipv4Addr, Arc<PodNet>>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
}

impl Network {
    /// Check the host and set up an empty network; must be called inside a tokio runtime.
    pub fn new() -> Result<Arc<Self>, NetError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| NetError::NoRuntime(e.to_string()))?;
        addr::check_host_loopback()?;
        Ok(Arc::new(Self {
            pod_ips: Mutex::new(AddressPool::new("pod address (127.1.0.0/16)", 1)),
            cluster_ips: Mutex::new(AddressPool::new("ClusterIP (127.2.0.0/16)", 2)),
            services: Arc::new(ServiceTable::default()),
            service_listeners: Mutex::new(HashMap::new()),
            pods: RwLock::new(HashMap::new()),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            runtime,
        }))
    }

    /// The Service table (for DNS views and ClusterIP picks).
    pub fn services(&self) -> &Arc<ServiceTable> {
        &self.services
    }

    /// Give a new pod in `namespace` its address, egress (with SOCKS server) and capture.
    pub fn create_pod(&self, namespace: &str, name: &str) -> Result<Arc<PodNet>, NetError> {
        let _guard = self.runtime.enter();
        let ip = self
            .pod_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allocate()?;
        let built = PodNet::start(
            ip,
            namespace,
            name,
            self.services.clone(),
            self.cancel.child_token(),
        );
        match built {
            Ok(pod) => {
                self.pods
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(ip, pod.clone());
                Ok(pod)
            }
            Err(e) => {
                self.pod_ips
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .release(ip);
                Err(e)
            }
        }
    }

    /// Close every listener and connection of `pod`, then release its address.
    pub async fn remove_pod(&self, pod: &PodNet) {
        pod.shutdown().await;
        self.pods
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&pod.ip());
        self.pod_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(pod.ip());
    }

    /// The pod network state of the pod at `ip`.
    pub fn pod(&self, ip: Ipv4Addr) -> Option<Arc<PodNet>> {
        self.pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ip)
            .cloned()
    }

    /// Stop everything: all pods' listeners and connections, all Service listeners.
    pub async fn shutdown(&self) {
        let pods: Vec<Arc<PodNet>> = self
            .pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for pod in pods {
            self.remove_pod(&pod).await;
        }
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
