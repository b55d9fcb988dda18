//! One pod's network: the sandbox's stand-in for what a CNI plugin gives a pod on a real node
//! (an address of its own) and for what lives in the pod's network namespace: its egress with
//! the SOCKS5 server processes reach it by, its capture, and the ports it listens on, each
//! behind a recording point ([`super::inbound`]). The mesh swaps the pod's outbound and inbound paths here; exec sessions
//! get their own SOCKS5 servers on the pod's egress; port-forward connects through here.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::NetError;
use super::capture::{Capture, CaptureRecord, CaptureTap, DEFAULT_CAPTURE_BYTES};
use super::egress::{self, DirectPath, Egress, FailureLog, OutboundPath};
use super::inbound::{AppListener, InboundPath, RecordingPoint, SharedInbound};
use super::pipe::{self, bind_listener};
use super::services::{DnsView, ServiceTable};

/// How many handed-over connections may wait for the app to accept them.
const HANDOFF_BACKLOG: usize = 1024;

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
    pub(crate) fn start(
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

    pub(crate) async fn shutdown(&self) {
        self.cancel.cancel();
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
