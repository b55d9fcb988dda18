//! The per-pod egress: every outbound connection of a pod (its app's upstream calls, exec'd
//! curl) goes through here. Names resolve in the pod's [`DnsView`], and the connection is made
//! by the pod's [`OutboundPath`]: by default [`DirectPath`] (kube-proxy's job: a ClusterIP is
//! DNAT'ed to a ready endpoint, source = the pod's address); the mesh swaps in a path into the
//! pod's sidecar, as Istio's iptables redirect does. Processes outside this one (curl) reach the
//! egress through a small SOCKS5 server.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pipe::{connect_from, splice};
use super::services::{DnsView, ServiceTable};

/// Where an outbound connection is going, as the pod asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundTarget {
    /// The name (or literal) the pod used.
    pub host: String,
    /// What the name resolved to in the pod's DNS view, with the port.
    pub addr: SocketAddrV4,
}

/// How a pod's outbound connections leave it. One per pod, swappable at run time.
pub trait OutboundPath: Send + Sync + 'static {
    /// Open a connection for the pod at `source` to `target`.
    fn connect(
        &self,
        source: Ipv4Addr,
        target: OutboundTarget,
    ) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// The unmeshed path: ClusterIPs go straight to a ready endpoint (refused when there is none,
/// like kube-proxy's REJECT), anything else is connected to as is; the pod's address is the
/// source either way.
pub struct DirectPath {
    services: Arc<ServiceTable>,
}

impl DirectPath {
    pub fn new(services: Arc<ServiceTable>) -> Self {
        Self { services }
    }
}

impl OutboundPath for DirectPath {
    fn connect(
        &self,
        source: Ipv4Addr,
        target: OutboundTarget,
    ) -> BoxFuture<'static, io::Result<TcpStream>> {
        let dest = if self.services.is_cluster_ip(*target.addr.ip()) {
            self.services
                .pick(*target.addr.ip(), target.addr.port())
                .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string()))
        } else {
            Ok(target.addr)
        };
        Box::pin(async move { connect_from(source, dest?).await })
    }
}

/// Why the egress could not connect.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("lookup {host}: no such host")]
    UnknownHost { host: String },
    #[error("dial tcp {addr}: {source}")]
    Connect {
        host: String,
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
}

/// A pod's egress: its DNS view and its current outbound path.
pub struct Egress {
    pod_ip: Ipv4Addr,
    dns: DnsView,
    path: RwLock<Arc<dyn OutboundPath>>,
}

impl Egress {
    pub fn new(pod_ip: Ipv4Addr, dns: DnsView, path: Arc<dyn OutboundPath>) -> Self {
        Self {
            pod_ip,
            dns,
            path: RwLock::new(path),
        }
    }

    /// The pod's DNS view.
    pub fn dns(&self) -> &DnsView {
        &self.dns
    }

    /// Replace the outbound path (e.g. into the pod's sidecar); new connections use it.
    pub fn set_path(&self, path: Arc<dyn OutboundPath>) {
        *self.path.write().unwrap_or_else(PoisonError::into_inner) = path;
    }

    /// Resolve `host` in the pod's view and connect to it through the outbound path.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, EgressError> {
        let ip = self
            .dns
            .resolve(host)
            .ok_or_else(|| EgressError::UnknownHost {
                host: host.to_string(),
            })?;
        let addr = SocketAddrV4::new(ip, port);
        // A pod talking to its own address stays on its loopback: never through a sidecar
        // (Istio's iptables rules return such traffic), e.g. `curl localhost:15020` in
        // istio-proxy.
        if ip == self.pod_ip {
            return connect_from(self.pod_ip, addr)
                .await
                .map_err(|source| EgressError::Connect {
                    host: host.to_string(),
                    addr,
                    source,
                });
        }
        let path = self
            .path
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let target = OutboundTarget {
            host: host.to_string(),
            addr,
        };
        path.connect(self.pod_ip, target)
            .await
            .map_err(|source| EgressError::Connect {
                host: host.to_string(),
                addr,
                source,
            })
    }
}

/// The last connection failure a SOCKS server saw, so an exec session can report it the way
/// curl would have without a proxy (curl turns every SOCKS refusal into exit 97).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressFailure {
    UnknownHost { host: String },
    Refused { host: String, port: u16 },
    Other { host: String, port: u16 },
}

/// Shared record of SOCKS failures for one listener.
#[derive(Default)]
pub struct FailureLog {
    last: Mutex<Option<EgressFailure>>,
}

impl FailureLog {
    pub fn set(&self, failure: EgressFailure) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
    }

    pub fn last(&self) -> Option<EgressFailure> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Serve SOCKS5 (no auth, CONNECT only) on `listener` for `egress` until `cancel`.
pub async fn serve_socks(
    listener: TcpListener,
    egress: Arc<Egress>,
    failures: Option<Arc<FailureLog>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else { continue };
        let egress = egress.clone();
        let failures = failures.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = socks_session(client, &egress, failures.as_deref()) => {
                    if let Err(e) = r {
                        tracing::debug!("SOCKS session ended early: {e}");
                    }
                }
            }
        });
    }
}

// RFC 1928 reply codes.
const REP_OK: u8 = 0x00;
const REP_FAILURE: u8 = 0x01;
const REP_HOST_UNREACHABLE: u8 = 0x04;
const REP_REFUSED: u8 = 0x05;
const REP_CMD_UNSUPPORTED: u8 = 0x07;
const REP_ATYP_UNSUPPORTED: u8 = 0x08;

async fn reply(client: &mut TcpStream, code: u8, bound: SocketAddrV4) -> io::Result<()> {
    let mut msg = vec![0x05, code, 0x00, 0x01];
    msg.extend_from_slice(&bound.ip().octets());
    msg.extend_from_slice(&bound.port().to_be_bytes());
    client.write_all(&msg).await
}

async fn socks_session(
    mut client: TcpStream,
    egress: &Egress,
    failures: Option<&FailureLog>,
) -> io::Result<()> {
    let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != 0x05 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a SOCKS5 client",
        ));
    }
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0x00) {
        client.write_all(&[0x05, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[0x05, 0x00]).await?;

    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    if req[1] != 0x01 {
        return reply(&mut client, REP_CMD_UNSUPPORTED, unspecified).await;
    }
    let host = match req[3] {
        0x01 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            Ipv4Addr::from(ip).to_string()
        }
        0x03 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return reply(&mut client, REP_ATYP_UNSUPPORTED, unspecified).await,
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);

    match egress.connect(&host, port).await {
        Ok(upstream) => {
            let bound = match upstream.local_addr()? {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => unspecified,
            };
            reply(&mut client, REP_OK, bound).await?;
            splice(client, upstream, None).await;
            Ok(())
        }
        Err(EgressError::UnknownHost { host }) => {
            if let Some(f) = failures {
                f.set(EgressFailure::UnknownHost { host });
            }
            reply(&mut client, REP_HOST_UNREACHABLE, unspecified).await
        }
        Err(EgressError::Connect { host, source, .. }) => {
            let refused = source.kind() == io::ErrorKind::ConnectionRefused;
            if let Some(f) = failures {
                f.set(if refused {
                    EgressFailure::Refused { host, port }
                } else {
                    EgressFailure::Other { host, port }
                });
            }
            let code = if refused { REP_REFUSED } else { REP_FAILURE };
            reply(&mut client, code, unspecified).await
        }
    }
}
