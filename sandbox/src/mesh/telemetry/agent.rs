//! The stand-in for istio-agent's :15020 server: `GET /stats/prometheus` (Istio's request
//! counters, then Envoy's own statistics — the "merged" metrics a reader curls) and
//! `GET /healthz/ready` (Envoy's readiness).
//!
//! The counters follow the JSON access log by reading what was appended since the last scrape,
//! on each scrape: no timer, no file watcher. Envoy buffers file access logs (up to
//! `--file-flush-interval-msec`, 1 s as pilot-agent starts it, 10 s by Envoy's default), so
//! each scrape first asks Envoy's admin to `POST /reopen_logs`, which flushes them: a counter
//! is current at every scrape, as Istio's stats filter's are.

use std::io::{self, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::WorkloadMeta;
use super::stats::RequestCounters;

/// How long a call to Envoy's admin may take before the agent answers without it.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent keeps between scrapes: where it is in the log, and the counts so far.
struct LogFollower {
    path: PathBuf,
    offset: u64,
    /// The start of a line Envoy has not finished writing yet.
    partial: Vec<u8>,
    counters: RequestCounters,
}

impl LogFollower {
    /// Read what was appended since the last call and count its complete lines. A missing file
    /// is an empty log (Envoy creates it with its first request); a shorter file than before was
    /// truncated or replaced, and is read from the start.
    async fn catch_up(&mut self, this: &WorkloadMeta) -> io::Result<()> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("stats access log {}: {e}", self.path.display()),
                ));
            }
        };
        let len = file.metadata().await?.len();
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).await?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).await?;
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        if let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') {
            let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
            self.counters
                .add_lines(&String::from_utf8_lossy(&complete), this);
        }
        Ok(())
    }
}

struct Agent {
    envoy_admin: SocketAddr,
    this: WorkloadMeta,
    log: Mutex<LogFollower>,
}

/// Serves GET /stats/prometheus (istio_requests_total with Istio's labels, from the JSON access
/// log at `log_path`, plus Envoy's own /stats/prometheus fetched from `envoy_admin`) and
/// /healthz/ready (200 when Envoy's admin /ready answers LIVE) on `listen` (podIP:15020).
/// Stops when `cancel` fires.
pub async fn run_agent(
    listen: SocketAddr,
    log_path: PathBuf,
    envoy_admin: SocketAddr,
    this: WorkloadMeta,
    cancel: CancellationToken,
) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "istio-agent of pod {}/{} cannot listen on {listen}: {e}",
                this.namespace, this.pod_name
            ),
        )
    })?;
    let agent = Arc::new(Agent {
        envoy_admin,
        this,
        log: Mutex::new(LogFollower {
            path: log_path,
            offset: 0,
            partial: Vec::new(),
            counters: RequestCounters::default(),
        }),
    });
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let agent = agent.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let agent = agent.clone();
                async move { Ok::<_, std::convert::Infallible>(agent.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = conn => {}
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

impl Agent {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match req.uri().path() {
            "/stats/prometheus" => self.metrics().await,
            "/healthz/ready" => self.ready().await,
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    }

    async fn ready(&self) -> Response<Full<Bytes>> {
        match admin_call(self.envoy_admin, Method::GET, "/ready").await {
            Ok((200, body)) if body.trim() == "LIVE" => text(StatusCode::OK, ""),
            Ok((status, body)) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Envoy not ready: admin /ready answered {status} {}\n",
                    body.trim()
                ),
            ),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Envoy not ready: {e}\n"),
            ),
        }
    }

    async fn metrics(&self) -> Response<Full<Bytes>> {
        // Flush Envoy's buffered access logs; without an answer the counts are just older.
        if let Err(e) = admin_call(self.envoy_admin, Method::POST, "/reopen_logs").await {
            tracing::debug!("istio-agent: flushing Envoy's access logs: {e}");
        }
        let mut body = {
            let mut log = self.log.lock().await;
            if let Err(e) = log.catch_up(&self.this).await {
                return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
            }
            log.counters.render()
        };
        match admin_call(self.envoy_admin, Method::GET, "/stats/prometheus").await {
            Ok((200, envoy)) => body.push_str(&envoy),
            Ok((status, _)) => tracing::debug!(
                "istio-agent: Envoy admin {} /stats/prometheus answered {status}",
                self.envoy_admin
            ),
            Err(e) => tracing::debug!("istio-agent: Envoy's own statistics: {e}"),
        }
        text(StatusCode::OK, body)
    }
}

/// One plain HTTP/1.1 request to `addr`; the status and body, bounded by [`ADMIN_TIMEOUT`].
pub(crate) async fn admin_call(
    addr: SocketAddr,
    method: Method,
    path: &str,
) -> io::Result<(u16, String)> {
    let attempt = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(io::Error::other)?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(io::Error::other)?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(io::Error::other)?
                .to_bytes();
            Ok::<_, io::Error>((status, String::from_utf8_lossy(&body).into_owned()))
        }
        .await;
        driver.abort();
        result
    };
    tokio::time::timeout(ADMIN_TIMEOUT, attempt)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{method} http://{addr}{path} took longer than {ADMIN_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("{method} http://{addr}{path}: {e}")))
}
