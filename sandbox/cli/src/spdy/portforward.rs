//! kubectl's port-forward session (`super::session`), in either of its forms once the API
//! server has upgraded the connection (happy-sandbox `api/spdy/upgrade.rs`).
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

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use happy_sandbox::PortForwardPod;
use happy_sandbox::cri::Duplex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::{HeaderBlock, header};
use super::session::{self, Incoming as SpdyStream, StreamWriter};

/// How long the second stream of a connection may take: the kubelet's (and containerd's)
/// streaming server default, apimachinery v0.32 `pkg/util/remotecommand/constants.go`
/// `DefaultStreamCreationTimeout` via kubernetes `pkg/kubelet/cri/streaming/server.go`
/// `DefaultConfig`.
const STREAM_CREATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serve one SPDY session on `io` to `pod`: pair streams by `requestID` and forward each pair.
pub(crate) async fn serve(io: Pin<Box<dyn Duplex>>, pod: PortForwardPod) {
    Forwarder { pod }.serve(io).await
}

/// What a port-forward to one pod needs.
struct Forwarder {
    pod: PortForwardPod,
}

/// A forwarded connection's two streams, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<SpdyStream>,
    data: Option<SpdyStream>,
}

impl Forwarder {
    /// Serve one SPDY session: pair streams by `requestID` and forward each pair.
    async fn serve(self, io: Pin<Box<dyn Duplex>>) {
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
                                this.pod.namespaced_name()
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
            tracing::debug!("port-forward to pod {}: {e}", this.pod.namespaced_name());
        }
    }

    /// Forward one connection; an error goes on the error stream (kubelet `portForward`:
    /// "error forwarding port %d to pod %s, uid %v: %v"), then both streams are closed.
    async fn forward(self: Arc<Self>, error: SpdyStream, data: SpdyStream) {
        let port: u16 = header(&data.headers, "port")
            .and_then(|p| p.parse().ok())
            .unwrap_or_default();
        let result = match self.pod.connect(port).await {
            Ok(conn) => copy(conn, data.data, &data.out).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {e}",
                self.pod.name(),
                self.pod.uid()
            );
            error.out.send(msg.as_bytes()).await;
        }
        error.out.finish().await;
        data.out.finish().await;
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
    conn: Pin<Box<dyn Duplex>>,
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
