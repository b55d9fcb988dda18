//! The upgrade of kubectl's two port-forward forms, each a SPDY/3.1 session: tunnelled in
//! WebSocket binary messages (kubectl 1.31+) or over a plain `Upgrade: SPDY/3.1` (its fallback,
//! and every kubectl before 1.31); `../portforward.rs` tells the forms apart and says where
//! each comes from. Once upgraded, the session itself is the kubectl protocols' to serve
//! (`../kubectl.rs`; `happy-sandbox-cli`'s `spdy` module); this side negotiates, and carries the
//! tunnelled form's WebSocket messages as a byte stream.

use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::{SPDY_31, TUNNELING_V1};
use crate::api::ApiState;
use crate::api::body::{self, Body};
use crate::api::exec::{normal_close, serve_websocket, upgrade_response};
use crate::cri::Duplex;
use crate::error::ApiError;

/// The port-forward protocol version (apimachinery `pkg/util/portforward/constants.go`
/// `PortForwardV1Name`), also the `X-Stream-Protocol-Version` a SPDY upgrade negotiates.
const PORT_FORWARD_V1: &str = "portforward.k8s.io";
/// apimachinery `httpstream.HeaderProtocolVersion` / `HeaderAcceptedProtocolVersions`.
const PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
const ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";

/// Answer a port-forward in kubectl's tunnelled (`tunnelled`) or plain SPDY form, and once the
/// upgrade completes hand the connection to `session`, which serves the SPDY session on it.
pub(crate) fn serve(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    session: impl FnOnce(Pin<Box<dyn Duplex>>) -> BoxFuture<'static, ()> + Send + 'static,
    tunnelled: bool,
) -> Result<Response<Body>, ApiError> {
    if tunnelled {
        let (response, _) = upgrade_response(&req, &[TUNNELING_V1])?;
        serve_websocket(state, req, "port-forward", move |ws| async move {
            let (ours, theirs) = tokio::io::duplex(256 * 1024);
            tokio::select! {
                _ = pump_websocket(ws, theirs) => {}
                _ = session(Box::pin(ours)) => {}
            }
        });
        return Ok(response);
    }
    let response = spdy_upgrade_response(&req)?;
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("port-forward SPDY upgrade failed: {e}");
                return;
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = session(Box::pin(TokioIo::new(upgraded))) => {}
        }
    });
    Ok(response)
}

/// Negotiate as `httpstream.Handshake` does, then answer 101 as `spdy.responseUpgrader` does.
fn spdy_upgrade_response(req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let offered: Vec<String> = req
        .headers()
        .get_all(PROTOCOL_VERSION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade: {PROTOCOL_VERSION} is required"
        )));
    }
    if !offered.iter().any(|p| p == PORT_FORWARD_V1) {
        let r = ApiError::forbidden(format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, \
             server accepts [{PORT_FORWARD_V1}]"
        ));
        let mut r = body::error_response(&r);
        r.headers_mut().insert(
            ACCEPTED_PROTOCOL_VERSIONS,
            HeaderValue::from_static(PORT_FORWARD_V1),
        );
        return Ok(r);
    }
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static(SPDY_31));
    h.insert(PROTOCOL_VERSION, HeaderValue::from_static(PORT_FORWARD_V1));
    Ok(r)
}

/// Carry a byte stream in WebSocket binary messages both ways, as client-go's
/// `TunnelingConnection` does (one message a write; reads run across message boundaries).
async fn pump_websocket<S>(ws: WebSocketStream<S>, pipe: tokio::io::DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(pipe);
    let inbound = async {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if to_session.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_session.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        // The session is over: a normal close reads as EOF to client-go.
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    };
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}
