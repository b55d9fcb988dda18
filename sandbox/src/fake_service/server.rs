//! fake-service's HTTP behaviour: `/` (error injection, upstream calls in order through the
//! pod's egress, JSON answer), `/health`, `/ready`, the UI under `/ui/` (routed in
//! [`super::mux`]); and its hclog lines — per the
//! workshop's fork, never a line mentioning errors.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::config::Config;
use super::format::{go_duration, hclog_error, hclog_info, response_time};
use super::inject::{Decision, Injector};
use super::mux::{self, Route};
use super::response::Response;
use super::ui::INDEX_HTML;
use crate::net::PodNet;
use crate::program::logs::LogBuffer;

/// One running fake-service: its settings, counter, pod network and log.
pub(crate) struct App {
    pub config: Config,
    pub injector: Injector,
    pub net: Arc<PodNet>,
    pub log: Arc<LogBuffer>,
}

/// The handler's failure: the connection is dropped without an answer (what Go's net/http does
/// when a handler panics).
#[derive(Debug, thiserror::Error)]
#[error("handler aborted the connection")]
pub(crate) struct Aborted;

type Reply = http::Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

impl App {
    pub(crate) fn new(config: Config, net: Arc<PodNet>, log: Arc<LogBuffer>) -> Self {
        let injector = Injector::new(
            config.error_rate,
            config.error_code,
            &config.error_type,
            config.error_delay,
        );
        Self {
            config,
            injector,
            net,
            log,
        }
    }

    pub(crate) fn info(&self, message: &str, fields: &[(&str, &str)]) {
        self.log
            .write(&hclog_info(SystemTime::now(), message, fields));
    }

    /// What upstream fake-service logs when a request fails (nicholasjackson/fake-service
    /// v0.26.2 logging/logger.go:113-128, `HandleHTTPRequest`'s `finished`: `if err != nil`
    /// → `l.log.Error("Error handling request", …, "error", err)`; the error is set by
    /// handlers/request_http.go:104-109 for an injected error, `errors.ErrorInjection` =
    /// "Service error automatically injected" (errors/errors.go:17), and :141-146 for a failed
    /// upstream call, client/http.go:65's "Error processing upstream request: …"). The
    /// workshop's fork `rinormaloku/happy-service` leaves it out: nothing is written then.
    fn request_failed(&self, error: &str) {
        if self.config.log_errors {
            self.log.write(&hclog_error(
                SystemTime::now(),
                "Error handling request",
                &[("error", error)],
            ));
        }
    }

    /// Route one request, as fake-service's Go `ServeMux` does (see [`super::mux`]).
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Reply, Aborted> {
        match mux::route(&self.config.ui_path, req.uri().path(), req.uri().query()) {
            Route::Health => {
                self.info("Handling health request", &[]);
                Ok(reply(StatusCode::OK, TEXT, "OK"))
            }
            Route::Ready => {
                self.info("Handling ready request", &[]);
                Ok(reply(StatusCode::OK, TEXT, "OK"))
            }
            Route::Redirect {
                location,
                html_body,
            } => {
                let mut r = if html_body {
                    reply(
                        StatusCode::MOVED_PERMANENTLY,
                        HTML,
                        mux::redirect_body(&location),
                    )
                } else {
                    let mut r = http::Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
                    r
                };
                if let Ok(value) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, value);
                }
                Ok(r)
            }
            Route::UiIndex => Ok(reply(StatusCode::OK, HTML, INDEX_HTML)),
            Route::UiNotFound => {
                let mut r = reply(StatusCode::NOT_FOUND, TEXT, "404 page not found\n");
                r.headers_mut().insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                Ok(r)
            }
            Route::Root => self.serve_root(req).await,
        }
    }

    async fn serve_root(&self, req: Request<Incoming>) -> Result<Reply, Aborted> {
        let start = SystemTime::now();
        let started = Instant::now();
        self.info(
            "Handle inbound request",
            &[("request", &format_request(&req, None))],
        );
        let mut resp = Response {
            name: self.config.name.clone(),
            owner: self.config.owner.clone(),
            uri: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".to_string()),
            kind: "HTTP".to_string(),
            ip_addresses: vec![self.net.ip().to_string()],
            ..Default::default()
        };

        match self.injector.next() {
            Decision::Abort => return Err(Aborted),
            Decision::Fail {
                code,
                delay,
                message,
            } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                resp.code = i32::from(code);
                resp.error = message.to_string();
                self.request_failed(message);
                self.finished(started);
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(reply(status, TEXT, resp.to_json()));
            }
            Decision::Pass => {}
        }

        let parent = ParentRequest {
            path: req.uri().path().to_string(),
            headers: req.headers().clone(),
        };
        // UPSTREAM_WORKERS bounds how many calls run at once; 1 (the default) calls in order.
        let workers = tokio::sync::Semaphore::new(self.config.upstream_workers);
        let mut pending = Vec::with_capacity(self.config.upstream_uris.len());
        for uri in &self.config.upstream_uris {
            let (workers, parent) = (&workers, &parent);
            pending.push(async move {
                let _permit = workers.acquire().await;
                self.call_upstream(uri, parent).await
            });
        }
        let calls: Vec<(Response, bool)> = futures::future::join_all(pending).await;
        let mut failed = false;
        let mut first_error = None;
        for (call, ok) in calls {
            failed |= !ok;
            if !ok && first_error.is_none() {
                first_error = Some(call.error.clone());
            }
            resp.upstream_calls.insert(call.uri.clone(), call);
        }
        if let Some(error) = &first_error {
            self.request_failed(error);
        }
        resp.code = if failed { 500 } else { 200 };
        let end = SystemTime::now();
        resp.start_time = response_time(start);
        resp.end_time = response_time(end);
        resp.duration = go_duration(started.elapsed());
        resp.body = Some(Response::body_from_message(&self.config.message));
        self.finished(started);
        let status = if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        Ok(reply(status, TEXT, resp.to_json()))
    }

    fn finished(&self, started: Instant) {
        self.info(
            "Finished handling request",
            &[("duration", &go_duration(started.elapsed()))],
        );
    }

    /// Call one upstream as fake-service's HTTP client does (path and headers of the inbound
    /// request appended); the entry for `upstream_calls` and whether it succeeded.
    async fn call_upstream(&self, uri: &str, parent: &ParentRequest) -> (Response, bool) {
        let target = format!("{uri}{}", parent.path);
        let result = tokio::time::timeout(
            self.config.upstream_timeout,
            self.fetch(&target, parent),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "Get \"{target}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        });
        match result {
            Err(detail) => (
                Response {
                    uri: uri.to_string(),
                    code: -1,
                    error: format!("Error communicating with upstream service: {detail}"),
                    ..Default::default()
                },
                false,
            ),
            Ok((status, body)) => {
                // A body that is not fake-service JSON (a proxy's own answer) leaves a bare entry.
                let mut entry: Response = serde_json::from_slice(&body).unwrap_or_default();
                entry.uri = uri.to_string();
                entry.code = i32::from(status);
                let ok = status == 200;
                if !ok {
                    entry.error = format!(
                        "Error processing upstream request: {target}, expected code 200, got {status}"
                    );
                }
                (entry, ok)
            }
        }
    }

    async fn fetch(&self, target: &str, parent: &ParentRequest) -> Result<(u16, Bytes), String> {
        let url: http::Uri = target
            .parse()
            .map_err(|e| format!("parse \"{target}\": {e}"))?;
        if url.scheme_str() != Some("http") {
            return Err(format!(
                "Get \"{target}\": unsupported protocol scheme \"{}\"",
                url.scheme_str().unwrap_or_default()
            ));
        }
        let host = url.host().unwrap_or_default().to_string();
        let port = url.port_u16().unwrap_or(80);
        let authority = url
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());

        let mut builder = Request::get(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(header::HOST, authority.as_str());
        for (name, value) in &parent.headers {
            if is_hop_by_hop(name) || name == header::HOST {
                continue;
            }
            builder = builder.header(name, value);
        }
        if !parent.headers.contains_key(header::USER_AGENT) {
            builder = builder.header(header::USER_AGENT, "Go-http-client/1.1");
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("Get \"{target}\": {e}"))?;
        self.info(
            "Calling upstream service",
            &[
                ("uri", target),
                ("type", "HTTP"),
                ("request", &format_request(&request, Some(target))),
            ],
        );

        let stream = self
            .net
            .egress()
            .connect(&host, port)
            .await
            .map_err(|e| format!("Get \"{target}\": {}", go_dial_text(&e)))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("Get \"{target}\": {}", go_read_text(&e)))?;
        let driver = tokio::spawn(async move {
            // The connection's own failure shows up in the response future below.
            let _ = conn.await;
        });
        let outcome = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("Get \"{target}\": {}", go_read_text(&e)))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("Get \"{target}\": {}", go_read_text(&e)))?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        driver.abort();
        outcome
    }
}

/// What upstream calls inherit from the inbound request.
struct ParentRequest {
    path: String,
    headers: HeaderMap,
}

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

/// fake-service's `formatRequest`: request line, Host, then the headers, lower-cased.
fn format_request<B>(req: &Request<B>, absolute: Option<&str>) -> String {
    let target = absolute.map(str::to_string).unwrap_or_else(|| {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string())
    });
    let version = match req.version() {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let mut lines = vec![
        format!("{} {target} {version}", req.method()),
        format!("Host: {host}"),
    ];
    for (name, value) in req.headers() {
        if name == header::HOST {
            continue;
        }
        lines.push(format!(
            "{}: {}",
            name,
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    lines.join("\n")
}

fn go_dial_text(e: &crate::net::egress::EgressError) -> String {
    use crate::net::egress::EgressError;
    match e {
        EgressError::UnknownHost { host } => format!("dial tcp: lookup {host}: no such host"),
        EgressError::Connect { addr, source, .. } => {
            format!("dial tcp {addr}: connect: {}", go_errno_text(source))
        }
    }
}

fn go_errno_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
        _ => e.to_string(),
    }
}

fn go_read_text(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        return "EOF".to_string();
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return format!("read: {}", go_errno_text(io));
        }
        source = s.source();
    }
    e.to_string()
}

/// Serve one accepted connection; keep-alives are off, as fake-service's default
/// (`HTTP_SERVER_KEEP_ALIVES=false`).
pub(crate) async fn serve_connection(app: Arc<App>, stream: crate::net::inbound::AppStream) {
    let _ = stream.tcp().set_nodelay(true);
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { app.handle(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    // A client going away mid-request is routine, not something to log.
    let _ = conn.await;
}
