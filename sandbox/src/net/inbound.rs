//! The inbound recording point. An app never binds the pod's address itself: it gets an
//! internal listener, and the network binds podIP:port, records every byte both ways in the
//! pod's capture, and forwards to the pod's [`InboundPath`] — by default the app's internal
//! listener; in a meshed pod the sidecar's inbound listener. The sidecar then reaches the app at
//! podIP:port from 127.0.0.6 ([`super::SIDECAR_TO_APP_SOURCE`]), as Istio's inbound clusters do;
//! the recording point hands such connections straight to the app, unrecorded (on a real pod
//! they never leave `lo`).
//!
//! When nothing is switched and the app runs in this process, the recording point hands the
//! client's socket itself to the app, wrapped so that every byte read or written is recorded:
//! the capture is the same, the app sees the client as its peer, and a request costs one TCP
//! connection per hop instead of two.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::capture::{CaptureTap, Direction, RecordKind};
use super::pipe::connect_from;

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
