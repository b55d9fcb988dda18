//! Pod `portforward`, in the three forms clients speak:
//!
//! - kubectl 1.31+ (KEP-4006, on by default; `KUBECTL_PORT_FORWARD_WEBSOCKETS=false` turns it
//!   off): a WebSocket `GET` offering subprotocol `SPDY/3.1+portforward.k8s.io`, whose binary
//!   messages carry a SPDY/3.1 session as a byte stream (client-go v0.32
//!   `tools/portforward/tunneling_dialer.go`, `tunneling_connection.go`; apiserver v0.32
//!   `pkg/util/proxy/streamtunnel.go`; the prefix in apimachinery
//!   `pkg/util/portforward/constants.go`).
//! - kubectl's fallback when that upgrade fails (`portforward.NewFallbackDialer` on
//!   `httpstream.IsUpgradeFailure`, kubectl v0.32 `pkg/cmd/portforward/portforward.go`), and
//!   every kubectl before 1.31: `POST` with `Upgrade: SPDY/3.1` and
//!   `X-Stream-Protocol-Version: portforward.k8s.io`, answered 101 with the chosen version
//!   (apimachinery v0.32 `pkg/util/httpstream/httpstream.go` `Handshake`,
//!   `spdy/upgrade.go`).
//! - kube-rs (`Api::portforward`): a WebSocket with `ports=`; port i uses data channel 2i and
//!   error channel 2i+1; the first frame the server sends on each channel carries the port
//!   number (2 bytes, little endian).
//!
//! The two SPDY forms are kubectl's only: their sessions are served by the kubectl protocols a
//! sandbox was started with (`kubectl.rs`, `spdy/upgrade.rs`), and refused without them.
//!
//! The runtime connects to the pod's own port on the pod's loopback, past the sidecar
//! (`crate::net::PodNet::connect_port`), as the CRI does: containerd dials `localhost:PORT`
//! inside the pod's network namespace ("failed to connect to localhost:8080 inside namespace"
//! in its errors), and Istio's capture leaves that alone — inbound redirection hangs off
//! `PREROUTING` (packets arriving on an interface) and `ISTIO_OUTPUT` returns loopback traffic
//! of other users (`-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN`,
//! `-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN`; istio `tools/istio-iptables/pkg/capture/
//! testdata/inbound-ports-wildcard.golden`). So port-forward works under STRICT mTLS.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::UPGRADE;
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::ApiState;
use super::body::Body;
use super::exec::{normal_close, pod, serve_websocket, upgrade_response};
use super::kubectl;
use super::query::Query;
use super::router::Target;
use super::spdy::{SPDY_31, TUNNELING_PREFIX, TUNNELING_V1};
use crate::cri::Runtime;
use crate::error::ApiError;

/// The kube-rs channel subprotocols.
const PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "portforward.k8s.io",
];

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

/// Which of the three forms a request asks for.
enum Form {
    Tunnel,
    Channels,
    Spdy,
}

fn form_of(req: &Request<Incoming>) -> Result<Form, ApiError> {
    let upgrade = req
        .headers()
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    if upgrade.contains("websocket") {
        let tunnel = req
            .headers()
            .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().starts_with(TUNNELING_PREFIX));
        return Ok(if tunnel { Form::Tunnel } else { Form::Channels });
    }
    if upgrade.contains(&SPDY_31.to_ascii_lowercase()) {
        return Ok(Form::Spdy);
    }
    Err(ApiError::bad_request(format!(
        "port-forward needs a connection upgrade: WebSocket (subprotocol {TUNNELING_V1}, or \
         v4.channel.k8s.io with the ports parameter) or {SPDY_31}"
    )))
}

pub(crate) async fn portforward(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let pod = pod(state, target)?;
    match form_of(&req)? {
        Form::Channels => channels(state, req, target, query),
        Form::Tunnel => kubectl::port_forward(state, req, target, &pod, true),
        Form::Spdy => kubectl::port_forward(state, req, target, &pod, false),
    }
}

/// The kube-rs form: the ports come in the query; channels per port.
fn channels(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let mut ports = Vec::new();
    for p in query.all("ports").iter().flat_map(|p| p.split(',')) {
        let port: u16 = p.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            ApiError::bad_request(format!("ports: {p:?} is not a valid port number"))
        })?;
        ports.push(port);
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(format!(
            "port-forward needs the ports parameter (or, as kubectl 1.31+ sends, the \
             {TUNNELING_V1} WebSocket subprotocol)"
        )));
    }
    if ports.len() > 127 {
        return Err(ApiError::bad_request(
            "at most 127 ports can be forwarded at once",
        ));
    }
    let (response, _) = upgrade_response(&req, PROTOCOLS)?;
    let runtime = state.cluster.runtime.clone();
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    serve_websocket(state, req, "port-forward", move |ws| {
        run(ws, runtime, ns, name, ports)
    });
    Ok(response)
}

async fn run<S>(
    ws: WebSocketStream<S>,
    runtime: Arc<dyn Runtime>,
    ns: String,
    name: String,
    ports: Vec<u16>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut to_pod: Vec<Option<mpsc::Sender<Vec<u8>>>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let data_ch = (2 * i) as u8;
        let err_ch = data_ch + 1;
        for ch in [data_ch, err_ch] {
            if sink.send(frame(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
        match runtime.port_forward(&ns, &name, port).await {
            Ok(conn) => {
                let (mut rd, mut wr) = tokio::io::split(conn);
                let (tx, mut rx) = mpsc::channel::<Vec<u8>>(32);
                to_pod.push(Some(tx));
                let out = out_tx.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if out.send(frame(data_ch, &buf[..n])).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }));
                tasks.push(tokio::spawn(async move {
                    while let Some(data) = rx.recv().await {
                        if wr.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                    let _ = wr.shutdown().await;
                }));
            }
            Err(e) => {
                to_pod.push(None);
                let msg = format!("error forwarding port {port} to pod {ns}/{name}: {e}");
                let _ = sink.send(frame(err_ch, msg.as_bytes())).await;
            }
        }
    }
    drop(out_tx);
    let reader = async {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if b.len() > 1 => {
                    let ch = b[0] as usize;
                    if ch.is_multiple_of(2)
                        && let Some(Some(tx)) = to_pod.get(ch / 2)
                        && tx.send(b[1..].to_vec()).await.is_err()
                    {
                        to_pod[ch / 2] = None;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let writer = async {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        // Every pod-side connection closed: end the WebSocket so the client sees EOF.
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    for t in tasks {
        t.abort();
    }
}
