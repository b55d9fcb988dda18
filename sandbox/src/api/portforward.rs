//! Pod `portforward` over WebSocket as kube-rs speaks it: `ports=` lists the ports; port i uses
//! data channel 2i and error channel 2i+1; the first frame the server sends on each channel
//! carries the port number (2 bytes, little endian).

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::ApiState;
use super::body::Body;
use super::crud::Query;
use super::exec::{pod, serve_websocket, upgrade_response};
use super::router::Target;
use super::status::ApiError;

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

pub async fn portforward(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    pod(state, target)?;
    let mut ports = Vec::new();
    for p in query.all("ports").iter().flat_map(|p| p.split(',')) {
        let port: u16 = p.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            ApiError::bad_request(format!("ports: {p:?} is not a valid port number"))
        })?;
        ports.push(port);
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "port-forward needs the ports parameter",
        ));
    }
    if ports.len() > 127 {
        return Err(ApiError::bad_request(
            "at most 127 ports can be forwarded at once",
        ));
    }
    let (response, _) = upgrade_response(&req, PROTOCOLS)?;
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let runtime = state.cluster.runtime.clone();
    serve_websocket(state, req, "port-forward", move |ws| {
        run(ws, runtime, ns, name, ports)
    });
    Ok(response)
}

async fn run<S>(
    ws: WebSocketStream<S>,
    runtime: Arc<dyn crate::cri::Runtime>,
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

/// A normal (1000) close: clients such as kubectl treat a close without a code as an error.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}
