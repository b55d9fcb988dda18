//! kubectl's two port-forward forms, both a SPDY/3.1 session (`super::session`): tunnelled in
//! WebSocket binary messages (kubectl 1.31+) or over a plain `Upgrade: SPDY/3.1` (its fallback,
//! and every kubectl before 1.31); `../portforward.rs` tells the forms apart and says where
//! each comes from.
//!
//! In the SPDY forms each local connection opens two streams with headers `streamType`
//! (`error` or `data`), `port` and `requestID` (k8s.io/api v0.32 `core/v1/types.go`;
//! client-go `tools/portforward/portforward.go` `handleConnection`; Go's `http.Header`
//! canonicalises them and spdystream lower-cases them on the wire), paired as the kubelet
//! pairs them (kubernetes `pkg/kubelet/cri/streaming/portforward/httpstream.go`): an error
//! while forwarding is written on the error stream ("error forwarding port %d to pod %s,
//! uid %v: %v"), then both streams are closed. Since client-go v0.23 (kubernetes PR 103526)
//! kubectl then closes the whole session and exits 1 with "error: lost connection to pod".
//! That is also how a forward to a deleted pod ends: the session outlives the pod, and the
//! next connection fails (kubernetes issue 67059; on kind, containerd answers
//! `failed to find sandbox "…" in store: not found`).
//!

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::frame::{HeaderBlock, header};
use super::session::{self, Incoming as SpdyStream, StreamWriter};
use super::{SPDY_31, TUNNELING_V1};
use crate::api::ApiState;
use crate::api::body::{self, Body};
use crate::api::exec::{normal_close, serve_websocket, upgrade_response};
use crate::api::router::Target;
use crate::cri::Runtime;
use crate::error::ApiError;

/// The port-forward protocol version (apimachinery `pkg/util/portforward/constants.go`
/// `PortForwardV1Name`), also the `X-Stream-Protocol-Version` a SPDY upgrade negotiates.
const PORT_FORWARD_V1: &str = "portforward.k8s.io";
/// How long the second stream of a connection may take: the kubelet's (and containerd's)
/// streaming server default, apimachinery v0.32 `pkg/util/remotecommand/constants.go`
/// `DefaultStreamCreationTimeout` via kubernetes `pkg/kubelet/cri/streaming/server.go`
/// `DefaultConfig`.
const STREAM_CREATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// apimachinery `httpstream.HeaderProtocolVersion` / `HeaderAcceptedProtocolVersions`.
const PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
const ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";

/// Answer a port-forward to `pod` in kubectl's tunnelled (`tunnelled`) or plain SPDY form,
/// and serve the session once the upgrade completes.
pub(crate) fn serve(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: &Target,
    pod: &Value,
    tunnelled: bool,
) -> Result<Response<Body>, ApiError> {
    let forwarder = Forwarder {
        runtime: state.cluster.runtime.clone(),
        cluster: state.cluster.clone(),
        gr: target.rt.group_resource(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ns: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
    };
    if tunnelled {
        let (response, _) = upgrade_response(&req, &[TUNNELING_V1])?;
        serve_websocket(state, req, "port-forward", move |ws| async move {
            let (ours, theirs) = tokio::io::duplex(256 * 1024);
            tokio::select! {
                _ = pump_websocket(ws, theirs) => {}
                _ = forwarder.serve(ours) => {}
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
            _ = forwarder.serve(TokioIo::new(upgraded)) => {}
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

/// What a port-forward to one pod needs.
struct Forwarder {
    runtime: Arc<dyn Runtime>,
    cluster: Arc<crate::controllers::Cluster>,
    gr: crate::store::GroupResource,
    ns: String,
    name: String,
    uid: String,
}

/// A forwarded connection's two streams, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<SpdyStream>,
    data: Option<SpdyStream>,
}

impl Forwarder {
    /// Serve one SPDY session: pair streams by `requestID` and forward each pair.
    async fn serve<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel(16);
        let session = session::serve(io, validate, tx);
        let this = Arc::new(self);
        let pairing = async {
            let mut pending: HashMap<String, Pair> = HashMap::new();
            // Forwards and stream-creation timers; finished ones are reaped as they end so a
            // long session with many connections does not pile them up.
            let mut tasks = tokio::task::JoinSet::new();
            let (expired_tx, mut expired) = mpsc::unbounded_channel::<String>();
            loop {
                let stream = tokio::select! {
                    s = rx.recv() => match s {
                        Some(s) => s,
                        None => break,
                    },
                    Some(id) = expired.recv() => {
                        // kubelet `monitorStreamPair`: the message goes on the error stream
                        // (if it came) and the incomplete pair is dropped.
                        if let Some(Pair { error: Some(e), .. }) = pending.remove(&id) {
                            let msg = format!(
                                "(conn=port-forward {}, request={id}) timed out waiting for streams",
                                this.pod_name()
                            );
                            e.out.send(msg.as_bytes()).await;
                        }
                        continue;
                    }
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                };
                let id = request_id(&stream);
                if !pending.contains_key(&id) {
                    let expired_tx = expired_tx.clone();
                    let id = id.clone();
                    tasks.spawn(async move {
                        tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                        let _ = expired_tx.send(id);
                    });
                }
                let pair = pending.entry(id.clone()).or_default();
                let kind = header(&stream.headers, "streamType").unwrap_or_default();
                let slot = if kind == "error" {
                    &mut pair.error
                } else {
                    &mut pair.data
                };
                if slot.is_some() {
                    let msg = format!(
                        "error processing stream for request {id}: {kind} stream already assigned"
                    );
                    if let Some(e) = &pair.error {
                        e.out.send(msg.as_bytes()).await;
                    }
                    continue;
                }
                *slot = Some(stream);
                if pair.error.is_some() && pair.data.is_some() {
                    let Pair { error, data } = pending.remove(&id).unwrap_or_default();
                    if let (Some(error), Some(data)) = (error, data) {
                        tasks.spawn(this.clone().forward(error, data));
                    }
                }
            }
            // The session ended: dropping the set aborts what is still forwarding.
            drop(tasks);
        };
        let (result, ()) = tokio::join!(session, pairing);
        if let Err(e) = result {
            tracing::debug!("port-forward to pod {}: {e}", this.pod_name());
        }
    }

    /// Forward one connection; an error goes on the error stream (kubelet `portForward`:
    /// "error forwarding port %d to pod %s, uid %v: %v"), then both streams are closed.
    async fn forward(self: Arc<Self>, error: SpdyStream, data: SpdyStream) {
        let port: u16 = header(&data.headers, "port")
            .and_then(|p| p.parse().ok())
            .unwrap_or_default();
        let result = match self.same_pod() {
            Err(e) => Err(e),
            Ok(()) => match self.runtime.port_forward(&self.ns, &self.name, port).await {
                Ok(conn) => copy(conn, data.data, &data.out).await,
                Err(e) => Err(e.to_string()),
            },
        };
        if let Err(e) = result {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {e}",
                self.name, self.uid
            );
            error.out.send(msg.as_bytes()).await;
        }
        error.out.finish().await;
        data.out.finish().await;
    }

    fn pod_name(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    /// A forward is bound to the pod it was opened for (its UID, as the kubelet binds it to
    /// the pod's sandbox): a pod deleted, or recreated under the same name, is not reached.
    fn same_pod(&self) -> Result<(), String> {
        let now = self.cluster.store.get(&self.gr, &self.ns, &self.name);
        match now.as_ref().and_then(|p| p["metadata"]["uid"].as_str()) {
            Some(uid) if uid == self.uid => Ok(()),
            _ => Err(format!(
                "pod {}/{} with uid {} no longer exists",
                self.ns, self.name, self.uid
            )),
        }
    }
}

/// The kubelet's checks on a new stream (`httpStreamReceived`): a valid `port` and a
/// `streamType` of `error` or `data`.
fn validate(headers: &HeaderBlock) -> Result<(), String> {
    let port = header(headers, "port").ok_or("\"port\" header is required")?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("unable to parse {port:?} as a port")),
    }
    match header(headers, "streamType") {
        Some("error" | "data") => Ok(()),
        Some(t) => Err(format!("invalid stream type {t:?}")),
        None => Err("\"streamType\" header is required".into()),
    }
}

/// The stream's `requestID`, or for clients without one the kubelet's guess from the stream
/// id (error stream id, data stream id - 2).
fn request_id(stream: &SpdyStream) -> String {
    match header(&stream.headers, "requestID") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match header(&stream.headers, "streamType") {
            Some("data") => stream.id.saturating_sub(2).to_string(),
            _ => stream.id.to_string(),
        },
    }
}

/// Copy both ways until the pod's side ends (or the client reset the stream). The client's FIN
/// only half-closes the pod connection, so a response still in flight gets through.
async fn copy(
    conn: std::pin::Pin<Box<dyn crate::cri::Duplex>>,
    mut from_client: mpsc::Receiver<Bytes>,
    to_client: &StreamWriter,
) -> Result<(), String> {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let up = async move {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if !to_client.send(&buf[..n]).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::pin!(up, down);
    let mut up_done = false;
    loop {
        tokio::select! {
            r = &mut down => return r,
            _ = &mut up, if !up_done => up_done = true,
        }
    }
}
