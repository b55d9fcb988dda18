//! The inbound recording point. An app never binds the pod's address itself: it gets an
//! internal listener, and the network binds podIP:port, records every byte both ways in the
//! pod's capture, and forwards to the pod's [`InboundPath`] — by default the app's internal
//! listener; in a meshed pod the sidecar's inbound listener. The sidecar then reaches the app at
//! podIP:port from 127.0.0.6 ([`SIDECAR_TO_APP_SOURCE`]), as Istio's inbound clusters do;
//! the recording point hands such connections straight to the app, unrecorded (on a real pod
//! they never leave `lo`).
//!
//! When nothing is switched and the app runs in this process, the recording point hands the
//! client's socket itself to the app, wrapped so that every byte read or written is recorded:
//! the capture is the same, the app sees the client as its peer, and a request costs one TCP
//! connection per hop instead of two.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::capture::{self, Capture, CaptureTap, Direction, RecordKind};
use super::pipe::{connect_from, reset, splice};

/// The source address of a sidecar's connections to its own app (Istio's inbound passthrough
/// address). In a pod they stay on `lo`: the recording point hands them to the app without
/// recording them and without sending them through the sidecar again.
pub const SIDECAR_TO_APP_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// The pod's switched inbound path; `None` means straight to the app.
pub(crate) type SharedInbound = Arc<RwLock<Option<Arc<dyn InboundPath>>>>;

/// The listener on podIP:port that records and forwards.
pub(crate) struct RecordingPoint {
    pub(crate) port: u16,
    pub(crate) internal: SocketAddr,
    /// Set when the app runs in this process: its accepted-connection queue.
    pub(crate) handoff: Option<mpsc::Sender<(TcpStream, CaptureTap)>>,
    pub(crate) capture: Arc<Capture>,
    pub(crate) inbound: SharedInbound,
    pub(crate) tracker: TaskTracker,
}

impl RecordingPoint {
    pub(crate) async fn serve(self, listener: TcpListener, cancel: CancellationToken) {
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

/// Where a connection that arrived on the pod's `port` goes inside the pod.
pub trait InboundPath: Send + Sync + 'static {
    /// Open the pod-side connection for `peer`, which connected to the pod's `port`; `app` is the
    /// internal address of whatever listens on that port, if anything does.
    fn connect(
        &self,
        peer: SocketAddrV4,
        port: u16,
        app: Option<SocketAddr>,
    ) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// Straight to the app, keeping the client's address as the app's peer.
pub struct DirectToApp;

impl InboundPath for DirectToApp {
    fn connect(
        &self,
        peer: SocketAddrV4,
        port: u16,
        app: Option<SocketAddr>,
    ) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move {
            match app {
                Some(SocketAddr::V4(app)) => connect_from(*peer.ip(), app).await,
                _ => Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("nothing listens on port {port}"),
                )),
            }
        })
    }
}

/// A connection as an in-process app sees it: either handed over by the recording point (the
/// client's own socket, recorded as it is read and written — no extra hop), or accepted on the
/// app's internal listener (from a sidecar, or anything else that dials the internal address).
pub enum AppStream {
    Recorded { stream: TcpStream, tap: CaptureTap },
    Internal(TcpStream),
}

impl AppStream {
    /// The underlying socket (for socket options such as SO_LINGER).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            AppStream::Recorded { stream, .. } | AppStream::Internal(stream) => stream,
        }
    }
}

impl AsyncRead for AppStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AppStream::Internal(s) => Pin::new(s).poll_read(cx, buf),
            AppStream::Recorded { stream, tap } => {
                let before = buf.filled().len();
                let r = Pin::new(stream).poll_read(cx, buf);
                match &r {
                    Poll::Ready(Ok(())) if buf.filled().len() > before => {
                        tap.record(Direction::In, &buf.filled()[before..]);
                    }
                    // End of stream (with room to read): the client's FIN.
                    Poll::Ready(Ok(())) if buf.remaining() > 0 => {
                        tap.end(Direction::In, RecordKind::Fin);
                    }
                    Poll::Ready(Err(_)) => tap.end(Direction::In, RecordKind::Reset),
                    _ => {}
                }
                r
            }
        }
    }
}

impl AsyncWrite for AppStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AppStream::Internal(s) => Pin::new(s).poll_write(cx, data),
            AppStream::Recorded { stream, tap } => {
                let r = Pin::new(stream).poll_write(cx, data);
                if let Poll::Ready(Ok(n)) = &r {
                    tap.record(Direction::Out, &data[..*n]);
                }
                r
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AppStream::Internal(s) | AppStream::Recorded { stream: s, .. } => {
                Pin::new(s).poll_flush(cx)
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AppStream::Internal(s) => Pin::new(s).poll_shutdown(cx),
            AppStream::Recorded { stream, tap } => {
                let r = Pin::new(stream).poll_shutdown(cx);
                if let Poll::Ready(Ok(())) = &r {
                    tap.end(Direction::Out, RecordKind::Fin);
                }
                r
            }
        }
    }
}

impl Drop for AppStream {
    /// Closing the socket ends the app's half: a reset when the app set SO_LINGER to 0, a FIN
    /// otherwise (socket(7)); recorded unless it ended before.
    fn drop(&mut self) {
        if let AppStream::Recorded { stream, tap } = self {
            let kind = match socket2::SockRef::from(&*stream).linger() {
                Ok(Some(d)) if d.is_zero() => RecordKind::Reset,
                _ => RecordKind::Fin,
            };
            tap.end(Direction::Out, kind);
        }
    }
}

/// What an in-process app listens on: connections handed over by the recording point, and
/// its internal listener (whose address [`super::PodNet::app_address`] gives to a sidecar).
pub struct AppListener {
    internal: TcpListener,
    handoff: mpsc::Receiver<(TcpStream, CaptureTap)>,
}

impl AppListener {
    pub(crate) fn new(
        internal: TcpListener,
        handoff: mpsc::Receiver<(TcpStream, CaptureTap)>,
    ) -> Self {
        Self { internal, handoff }
    }

    /// The next connection and its peer.
    pub async fn accept(&mut self) -> io::Result<(AppStream, SocketAddr)> {
        tokio::select! {
            handed = self.handoff.recv() => match handed {
                Some((stream, tap)) => {
                    let peer = SocketAddr::V4(tap.peer);
                    Ok((AppStream::Recorded { stream, tap }, peer))
                }
                None => Err(io::Error::new(io::ErrorKind::NotConnected, "the pod's port was closed")),
            },
            accepted = self.internal.accept() => {
                let (stream, peer) = accepted?;
                Ok((AppStream::Internal(stream), peer))
            }
        }
    }
}
