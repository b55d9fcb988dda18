//! Pod `log` (a byte stream from the runtime) and `exec` over WebSocket with the Kubernetes
//! channel protocols v4/v5: 0 stdin, 1 stdout, 2 stderr, 3 the closing `Status`, 255 close
//! (v5 only: the client closed a stream).

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::ApiState;
use super::body::{Body, stream_response};
use super::query::Query;
use super::router::Target;
use crate::cri::{ExecRequest, LogRequest};
use crate::error::ApiError;

/// The subprotocols the sandbox speaks, preferred first.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The pod a subresource request is about, or 404.
pub(crate) fn pod(state: &ApiState, target: &Target) -> Result<Value, ApiError> {
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    state
        .cluster
        .store
        .get(&target.rt.group_resource(), ns, name)
        .ok_or_else(|| ApiError::not_found(format!("pods {name:?} not found in namespace {ns:?}")))
}

/// The container a request names, or the pod's default one (annotation, else the first).
pub(crate) fn container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let all: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| pod["spec"][l].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if all.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name} (containers: {})",
            all.join(", ")
        ))),
        None => pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
            .as_str()
            .or_else(|| pod["spec"]["containers"][0]["name"].as_str())
            .map(String::from)
            .ok_or_else(|| ApiError::bad_request(format!("pod {name} has no containers"))),
    }
}

pub(crate) fn logs(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let pod = pod(state, target)?;
    let container = container(&pod, query.get("container"))?;
    let tail_lines = match query.get("tailLines") {
        Some(t) => Some(t.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("tailLines {t:?} is not a non-negative number"))
        })?),
        None => None,
    };
    let request = LogRequest {
        container,
        follow: query.flag("follow"),
        tail_lines,
        timestamps: query.flag("timestamps"),
        previous: query.flag("previous"),
    };
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let mut stream = state
        .cluster
        .runtime
        .logs(ns, name, request)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (tx, response) = stream_response("text/plain");
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        loop {
            let chunk = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                c = stream.next() => c,
            };
            match chunk {
                Some(c) => {
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
                None => return,
            }
        }
    });
    Ok(response)
}

/// The upgraded connection of a request answered by [`upgrade_response`].
pub(crate) type UpgradedSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Once `req`'s upgrade completes, run `session` on its WebSocket until it ends or the API
/// server shuts down (exec and port-forward sessions end with the sandbox).
pub(crate) fn serve_websocket<F, Fut>(
    state: &ApiState,
    req: Request<Incoming>,
    what: &'static str,
    session: F,
) where
    F: FnOnce(UpgradedSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("{what} upgrade failed: {e}");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = session(ws) => {}
        }
    });
}

/// Answer a WebSocket upgrade: 101 with the chosen subprotocol; the upgraded connection comes
/// through `hyper::upgrade::on`.
pub(crate) fn upgrade_response(
    req: &Request<Incoming>,
    protocols: &[&'static str],
) -> Result<(Response<Body>, &'static str), ApiError> {
    let headers = req.headers();
    let is_ws = headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_ws {
        return Err(ApiError::bad_request(
            "this endpoint needs a WebSocket upgrade (SPDY is not supported by the happy-sandbox)",
        ));
    }
    let key = headers
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
    let offered: Vec<String> = headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let chosen = protocols
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .copied()
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "none of the offered WebSocket subprotocols {offered:?} is supported; the sandbox speaks {}",
                protocols.join(", ")
            ))
        })?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(super::body::empty());
    *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&accept) {
        h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        hyper::header::SEC_WEBSOCKET_PROTOCOL,
        hyper::header::HeaderValue::from_static(chosen),
    );
    Ok((r, chosen))
}

fn exit_status(code: i32) -> Value {
    if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

async fn pump(
    mut r: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    channel: u8,
    out: mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

pub(crate) async fn exec(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let pod = pod(state, target)?;
    let container = container(&pod, query.get("container"))?;
    let command: Vec<String> = query.all("command").into_iter().map(String::from).collect();
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "exec needs at least one command parameter",
        ));
    }
    let (response, _protocol) = upgrade_response(&req, PROTOCOLS)?;
    let request = ExecRequest {
        container,
        command,
        stdin: query.flag("stdin"),
        tty: query.flag("tty"),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let runtime = state.cluster.runtime.clone();
    serve_websocket(state, req, "exec", move |ws| {
        run_exec(ws, runtime, ns, name, request)
    });
    Ok(response)
}

async fn run_exec<S>(
    ws: WebSocketStream<S>,
    runtime: Arc<dyn crate::cri::Runtime>,
    ns: String,
    name: String,
    request: ExecRequest,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let session = match runtime.exec(&ns, &name, request).await {
        Ok(s) => s,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": e.to_string(), "reason": "InternalError"});
            let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let stdout = tokio::spawn(pump(session.stdout, 1, out_tx.clone()));
    let stderr = tokio::spawn(pump(session.stderr, 2, out_tx.clone()));
    drop(out_tx);
    let mut stdin = session.stdin;
    let reader = async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if !b.is_empty() => match b[0] {
                    0 => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&b[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    // v5 close signal: [255, channel]; closing stdin ends input.
                    255 if b.get(1) == Some(&0) => {
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let writer = async {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return false;
            }
        }
        true
    };
    let exit = session.exit;
    let (ok, code) = tokio::select! {
        _ = reader => (false, 0),
        r = async { let ok = writer.await; (ok, exit.await.code) } => r,
    };
    let _ = stdout.await;
    let _ = stderr.await;
    if ok {
        let _ = sink
            .send(frame(3, exit_status(code).to_string().as_bytes()))
            .await;
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    }
}

/// A normal (1000) close: clients such as kubectl treat a close without a code as an error.
pub(crate) fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}
