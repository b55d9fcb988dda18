//! The sandbox's Kubernetes API server: HTTPS on loopback with a bearer token, discovery,
//! CRUD with watch and the patch flavours, and pod logs / exec / port-forward; and, when started
//! with the kubectl protocols, what only kubectl asks for (`kubectl.rs` says what and why).

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod crud;
pub(crate) mod discovery;
pub(crate) mod exec;
pub(crate) mod kubectl;
pub(crate) mod patch;
pub(crate) mod portforward;
pub(crate) mod query;
pub(crate) mod router;
pub(crate) mod spdy;
pub(crate) mod tls;
pub(crate) mod validation;
pub(crate) mod watch;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::controllers::Cluster;
use crate::error::ApiError;
use body::{Body, json_response};
use router::Route;

/// What every request handler needs.
pub(crate) struct ApiState {
    pub cluster: Arc<Cluster>,
    pub token: String,
    /// `127.0.0.1:PORT`, for the `/api` document.
    pub server_address: String,
    /// Cancelled at shutdown: ends watches, log follows and streams.
    pub shutdown: CancellationToken,
    /// Every connection and stream task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// What answers the requests only kubectl makes (`kubectl.rs`); refused without.
    pub kubectl: kubectl::Protocols,
}

/// Accept TLS connections until `state.shutdown` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ApiState>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        // Loopback only: the listener is bound to 127.0.0.1, this guards against mistakes.
        if !peer.ip().is_loopback() {
            continue;
        }
        let acceptor = acceptor.clone();
        let state = state.clone();
        let token = state.shutdown.clone();
        state.tasks.clone().spawn(async move {
            let tls = tokio::select! {
                _ = token.cancelled() => return,
                tls = acceptor.accept(tcp) => match tls {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        return;
                    }
                },
            };
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .with_upgrades();
            tokio::select! {
                _ = token.cancelled() => {}
                r = conn => if let Err(e) = r {
                    tracing::debug!("connection from {peer} ended: {e}");
                },
            }
        });
    }
}

async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let result = dispatch(&state, req).await;
    let response = match result {
        Ok(r) => {
            tracing::debug!("{method} {path} -> {}", r.status());
            r
        }
        Err(e) => {
            tracing::debug!("{method} {path} -> {e}");
            body::error_response(&e)
        }
    };
    access_log::record(&method, &path, query.as_deref(), response.status().as_u16());
    response
}

/// The test-only access log: with `HAPPY_SANDBOX_API_LOG=FILE`, every API request is appended to
/// FILE as one line, `<unix ms> <method> <path>[?query] <status>` (the status when the
/// response starts; a watch or an upgrade is one line). It exists so `ci/bench` can count the
/// API round trips a run makes; nothing else reads it.
pub(crate) mod access_log {
    use std::io::Write as _;
    use std::sync::{Mutex, OnceLock, PoisonError};

    /// The variable naming the file.
    pub(crate) const API_LOG_VAR: &str = "HAPPY_SANDBOX_API_LOG";

    fn file() -> Option<&'static Mutex<std::fs::File>> {
        static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
        FILE.get_or_init(|| {
            let path = std::env::var_os(API_LOG_VAR).filter(|p| !p.is_empty())?;
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(f) => Some(Mutex::new(f)),
                Err(e) => {
                    tracing::warn!(
                        "{API_LOG_VAR}={}: cannot open it: {e}",
                        path.to_string_lossy()
                    );
                    None
                }
            }
        })
        .as_ref()
    }

    /// Append one request's line, if the log is on.
    pub(crate) fn record(method: &hyper::Method, path: &str, query: Option<&str>, status: u16) {
        let Some(file) = file() else { return };
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
        // One write per line, so concurrent requests never interleave inside a line.
        let _ = f.write_all(format!("{ms} {method} {target} {status}\n").as_bytes());
    }
}

async fn dispatch(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    auth::check(&req, &state.token)?;
    let registry = &state.cluster.registry;
    let route = router::route(registry, req.uri().path())?;
    if !matches!(route, Route::Resource(_)) && req.method() != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {}",
            req.method(),
            req.uri().path()
        )));
    }
    match route {
        Route::Version => Ok(json_response(200, &discovery::version())),
        Route::Health => Ok(body::text_response(200, "ok")),
        Route::CoreVersions => Ok(json_response(
            200,
            &discovery::core_versions(&state.server_address),
        )),
        Route::Groups => Ok(json_response(200, &discovery::groups(registry))),
        Route::Group(g) => Ok(json_response(200, &discovery::group(registry, &g))),
        Route::Resources { group, version } => Ok(json_response(
            200,
            &discovery::resources(registry, &group, &version),
        )),
        Route::OpenApi => Ok(json_response(
            200,
            &kubectl::openapi(state, registry, req.uri().path())?,
        )),
        Route::Resource(target) => crud::handle(state, req, target).await,
    }
}
