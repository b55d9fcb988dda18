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

pub(crate) mod addr;
pub mod capture;
pub mod egress;
pub mod inbound;
pub(crate) mod pcap;
pub(crate) mod pipe;
pub(crate) mod services;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cri::ServiceView;
use addr::AddressPool;
use capture::{Capture, CaptureRecord, CaptureTap, DEFAULT_CAPTURE_BYTES};
use egress::{DirectPath, Egress, FailureLog, OutboundPath};
use inbound::{AppListener, DirectToApp, InboundPath};
use pipe::{reset, splice};
use services::{DnsView, ServiceTable};

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

/// The source address of a sidecar's connections to its own app (Istio's inbound passthrough
/// address). In a pod they stay on `lo`: the recording point hands them to the app without
/// recording them and without sending them through the sidecar again.
pub const SIDECAR_TO_APP_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// How many handed-over connections may wait for the app to accept them.
const HANDOFF_BACKLOG: usize = 1024;

fn bind_listener(addr: SocketAddr) -> Result<TcpListener, NetError> {
    let bind = || -> io::Result<TcpListener> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        TcpListener::from_std(std_listener)
    };
    bind().map_err(|source| NetError::Bind { addr, source })
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
            .remove(&pod.ip);
        self.pod_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(pod.ip);
    }

    /// The pod network state of the pod at `ip`.
    pub fn pod(&self, ip: Ipv4Addr) -> Option<Arc<PodNet>> {
        self.pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ip)
            .cloned()
    }

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

/// The pod's switched inbound path; `None` means straight to the app.
type SharedInbound = Arc<RwLock<Option<Arc<dyn InboundPath>>>>;

/// The listener on podIP:port that records and forwards.
struct RecordingPoint {
    port: u16,
    internal: SocketAddr,
    /// Set when the app runs in this process: its accepted-connection queue.
    handoff: Option<mpsc::Sender<(TcpStream, CaptureTap)>>,
    capture: Arc<Capture>,
    inbound: SharedInbound,
    tracker: TaskTracker,
}

impl RecordingPoint {
    async fn serve(self, listener: TcpListener, cancel: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((client, SocketAddr::V4(peer))) = accepted else {
                continue;
            };
            if *peer.ip() == SIDECAR_TO_APP_SOURCE {
                let (internal, cancel) = (self.internal, cancel.clone());
                self.tracker.spawn(async move {
                    match DirectToApp
                        .connect(peer, internal.port(), Some(internal))
                        .await
                    {
                        Err(_) => reset(client),
                        Ok(upstream) => {
                            tokio::select! {
                                _ = cancel.cancelled() => {}
                                _ = splice(client, upstream, None) => {}
                            }
                        }
                    }
                });
                continue;
            }
            let path = self
                .inbound
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let tap = CaptureTap::opened(self.capture.clone(), peer, self.port);
            let (port, internal, cancel) = (self.port, self.internal, cancel.clone());
            let (path, handoff) = match (path, &self.handoff) {
                (Some(path), _) => (path, None),
                (None, Some(handoff)) => (
                    Arc::new(DirectToApp) as Arc<dyn InboundPath>,
                    Some(handoff.clone()),
                ),
                (None, None) => (Arc::new(DirectToApp) as Arc<dyn InboundPath>, None),
            };
            if let Some(handoff) = handoff {
                // Waiting here when the app is slow to accept is the listen backlog filling up.
                if handoff.send((client, tap)).await.is_err() {
                    return;
                }
                continue;
            }
            self.tracker.spawn(async move {
                match path.connect(peer, port, Some(internal)).await {
                    Err(_) => {
                        tap.end(capture::Direction::Out, capture::RecordKind::Reset);
                        reset(client)
                    }
                    Ok(upstream) => {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = splice(client, upstream, Some(tap)) => {}
                        }
                    }
                }
            });
        }
    }
}

struct PortEntry {
    /// Where the app listens inside the pod.
    internal: SocketAddr,
    /// An in-process app listens there (not a process such as Envoy behind `expose`).
    app: bool,
    cancel: CancellationToken,
}

/// One pod's network: address, egress, capture, and the ports it exposes.
pub struct PodNet {
    ip: Ipv4Addr,
    namespace: String,
    name: String,
    egress: Arc<Egress>,
    services: Arc<ServiceTable>,
    socks_addr: SocketAddr,
    capture: Arc<Capture>,
    inbound: SharedInbound,
    ports: Mutex<BTreeMap<u16, PortEntry>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl PodNet {
    fn start(
        ip: Ipv4Addr,
        namespace: &str,
        name: &str,
        services: Arc<ServiceTable>,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, NetError> {
        let dns = DnsView::new(namespace, ip, services.clone());
        let egress = Arc::new(Egress::new(
            ip,
            dns,
            Arc::new(DirectPath::new(services.clone())),
        ));
        // The SOCKS server lives on 127.0.0.1 so the pod's own port space stays clean; the
        // listener itself tells which pod a connection belongs to.
        let listener = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let socks_addr = listener.local_addr().map_err(|source| NetError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let tracker = TaskTracker::new();
        tracker.spawn(egress::serve_socks(
            listener,
            egress.clone(),
            None,
            cancel.clone(),
            tracker.clone(),
        ));
        Ok(Arc::new(Self {
            ip,
            namespace: namespace.to_string(),
            name: name.to_string(),
            egress,
            services,
            socks_addr,
            capture: Arc::new(Capture::new(DEFAULT_CAPTURE_BYTES)),
            inbound: Arc::new(RwLock::new(None)),
            ports: Mutex::new(BTreeMap::new()),
            cancel,
            tracker,
        }))
    }

    /// The pod's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's egress (DNS view + outbound path).
    pub fn egress(&self) -> &Arc<Egress> {
        &self.egress
    }

    /// The pod's SOCKS5 egress server.
    pub fn socks_addr(&self) -> SocketAddr {
        self.socks_addr
    }

    /// Swap the pod's outbound path (the mesh sends it into the sidecar).
    pub fn set_outbound_path(&self, path: Arc<dyn OutboundPath>) {
        self.egress.set_path(path);
    }

    /// Swap where inbound connections go after the recording point (`None`: to the app).
    pub fn set_inbound_path(&self, path: Option<Arc<dyn InboundPath>>) {
        *self.inbound.write().unwrap_or_else(PoisonError::into_inner) = path;
    }

    /// The pod's capture.
    pub fn capture(&self) -> &Arc<Capture> {
        &self.capture
    }

    /// A copy of everything captured on the pod so far.
    pub fn capture_snapshot(&self) -> Vec<CaptureRecord> {
        self.capture.snapshot()
    }

    /// The internal address of whatever listens on the pod's `port`.
    pub fn app_address(&self, port: u16) -> Option<SocketAddr> {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&port)
            .map(|p| p.internal)
    }

    /// The pod's ports that have a listener.
    pub fn open_ports(&self) -> Vec<u16> {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Listen on the pod's `port` the way an app would: podIP:`port` is bound by the recording
    /// point, which hands connections to the returned listener (or, once a sidecar takes the
    /// inbound path, forwards them to the listener's internal address).
    pub fn listen(&self, port: u16) -> Result<AppListener, NetError> {
        let internal = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = internal.local_addr().map_err(|source| NetError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let (tx, rx) = mpsc::channel(HANDOFF_BACKLOG);
        self.open(port, addr, Some(tx))?;
        Ok(AppListener::new(internal, rx))
    }

    /// Bind podIP:`port` and forward it (through the inbound path) to `internal`, for listeners
    /// made elsewhere (e.g. an Envoy process).
    pub fn expose(&self, port: u16, internal: SocketAddr) -> Result<(), NetError> {
        self.open(port, internal, None)
    }

    fn open(
        &self,
        port: u16,
        internal: SocketAddr,
        handoff: Option<mpsc::Sender<(TcpStream, CaptureTap)>>,
    ) -> Result<(), NetError> {
        let public = SocketAddr::V4(SocketAddrV4::new(self.ip, port));
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.contains_key(&port) {
            return Err(NetError::Bind {
                addr: public,
                source: io::Error::new(io::ErrorKind::AddrInUse, "address already in use"),
            });
        }
        let listener = bind_listener(public)?;
        let cancel = self.cancel.child_token();
        ports.insert(
            port,
            PortEntry {
                internal,
                app: handoff.is_some(),
                cancel: cancel.clone(),
            },
        );
        let point = RecordingPoint {
            port,
            internal,
            handoff,
            capture: self.capture.clone(),
            inbound: self.inbound.clone(),
            tracker: self.tracker.clone(),
        };
        self.tracker.spawn(point.serve(listener, cancel));
        Ok(())
    }

    /// Stop listening on `port` (the app closed it).
    pub fn close_port(&self, port: u16) {
        if let Some(entry) = self
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&port)
        {
            entry.cancel.cancel();
        }
    }

    /// A SOCKS5 server for one exec session: same egress as the pod's, with its own failure
    /// log; it stops with `cancel` (or the pod).
    pub fn session_socks(
        &self,
        cancel: CancellationToken,
    ) -> Result<(SocketAddr, Arc<FailureLog>), NetError> {
        self.serve_session_socks(self.egress.clone(), cancel)
    }

    fn serve_session_socks(
        &self,
        egress: Arc<Egress>,
        cancel: CancellationToken,
    ) -> Result<(SocketAddr, Arc<FailureLog>), NetError> {
        let listener = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr().map_err(|source| NetError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let failures = Arc::new(FailureLog::default());
        let pod_cancel = self.cancel.clone();
        let tracker = self.tracker.clone();
        let log = failures.clone();
        self.tracker.spawn(async move {
            let both = CancellationToken::new();
            let guard = both.clone();
            tokio::select! {
                _ = egress::serve_socks(listener, egress, Some(log), both.clone(), tracker) => {}
                _ = cancel.cancelled() => guard.cancel(),
                _ = pod_cancel.cancelled() => guard.cancel(),
            }
        });
        Ok((addr, failures))
    }

    /// A SOCKS5 server like [`PodNet::session_socks`] whose connections leave the pod
    /// directly, never through a sidecar: for commands exec'd in the `istio-proxy` container
    /// (Istio's redirection excludes the proxy's own user).
    pub fn session_socks_bypassing_sidecar(
        &self,
        cancel: CancellationToken,
    ) -> Result<(SocketAddr, Arc<FailureLog>), NetError> {
        let direct = Arc::new(Egress::new(
            self.ip,
            self.egress.dns().clone(),
            Arc::new(DirectPath::new(self.services.clone())),
        ));
        self.serve_session_socks(direct, cancel)
    }

    /// Connect to the pod's `port` through the recording point, as port-forward does. In a
    /// meshed pod, port-forward reaches an app port the way it does in Kubernetes: on the
    /// pod's loopback, straight to the app, past the sidecar (so it works under STRICT mTLS).
    pub async fn connect_port(&self, port: u16) -> io::Result<Option<TcpStream>> {
        let entry = self
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&port)
            .map(|e| (e.internal, e.app));
        let Some((internal, app)) = entry else {
            return Ok(None);
        };
        let meshed = self
            .inbound
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if app
            && meshed
            && let SocketAddr::V4(internal) = internal
        {
            return Ok(Some(
                pipe::connect_from(Ipv4Addr::LOCALHOST, internal).await?,
            ));
        }
        let stream =
            pipe::connect_from(Ipv4Addr::LOCALHOST, SocketAddrV4::new(self.ip, port)).await?;
        Ok(Some(stream))
    }

    /// A child of the pod's cancellation, for tasks that must end with the pod.
    pub fn child_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// The pod's task tracker, for tasks that must have ended before the pod is gone.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    async fn shutdown(&self) {
        self.cancel.cancel();
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
