//! One port-forward to one pod's port that carries many HTTP/1.1 requests, one after another, on
//! the one connection it forwards (keep-alive), as a browser or curl behind `kubectl
//! port-forward` does: the target is resolved once, the port-forward is opened once, and each
//! request costs no API round trip of its own.
//!
//! kube-rs 5's `Portforwarder` (kube-client/src/api/portforward.rs) gives one stream per port,
//! at most once (`take_stream`): the Kubernetes port-forward protocol carries one data and one
//! error channel per forwarded port, i.e. one TCP connection in the pod. Several connections
//! would need several port-forwards; one reused connection needs one.
//!
//! A connection the server closed is replaced by a new port-forward before the next request.
//! A request that a reused connection lost before any part of a response arrived (the server
//! closed it as idle just as the request went out) is sent once more on a new one: RFC 9112
//! §9.3.1 lets a client retransmit an idempotent request (GET) after such a close; a request
//! that fails on a fresh connection is an error, as before.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::Portforwarder;
use tokio::sync::Mutex;

use super::http::{HttpResponse, SendError, send_over};
use crate::error::{Error, Result};

/// A pod's port behind a (lazily opened, reused) port-forward. Clones share the connection.
#[derive(Clone)]
pub struct Forward {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api<Pod>,
    namespace: String,
    pod: String,
    port: u16,
    /// The Host header every request carries.
    host: String,
    /// Bounds each request, a port-forward it has to open included.
    limit: Duration,
    connection: Mutex<Option<Connection>>,
}

/// An open port-forward and the HTTP/1.1 connection over its stream.
struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    forwarder: Portforwarder,
    driver: tokio::task::JoinHandle<()>,
    /// Resolves with the error the API server reports for the port (e.g. "connection refused"
    /// inside the pod), which says more than hyper's "connection closed".
    error: Option<BoxFuture<'static, Option<String>>>,
    /// Whether a response came back on it (so a close before the next one may be an idle close).
    answered: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Nothing is left running after a batch, a failure or a timeout.
        self.driver.abort();
        self.forwarder.abort();
    }
}

impl Connection {
    /// The port's error from the API server, if it already arrived.
    fn forward_error(&mut self) -> Option<String> {
        self.error.take().and_then(|f| f.now_or_never()).flatten()
    }
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Forward({}/{}:{})",
            self.inner.namespace, self.inner.pod, self.inner.port
        )
    }
}

impl Forward {
    pub(super) fn new(
        api: Api<Pod>,
        namespace: &str,
        pod: &str,
        port: u16,
        host: Option<&str>,
        limit: Duration,
    ) -> Self {
        Forward {
            inner: Arc::new(Inner {
                api,
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                port,
                host: host.map_or_else(|| format!("localhost:{port}"), str::to_string),
                limit,
                connection: Mutex::new(None),
            }),
        }
    }

    /// The pod the requests go to.
    pub fn pod(&self) -> &str {
        &self.inner.pod
    }

    /// `GET path`, bounded by the `request` timeout (opening the port-forward included).
    /// Requests through clones of one `Forward` take turns on its one connection.
    pub async fn get(&self, path: &str) -> Result<HttpResponse> {
        let inner = &self.inner;
        let target = format!("{}/{}:{}{path}", inner.namespace, inner.pod, inner.port);
        match tokio::time::timeout(inner.limit, self.exchange(&target, path)).await {
            Ok(result) => result,
            // The connection was taken out of its slot for the exchange and is dropped (and
            // its port-forward aborted) with the abandoned future.
            Err(_) => Err(Error::Timeout {
                what: format!("HTTP GET {target}"),
                limit: inner.limit,
                detail: None,
            }),
        }
    }

    async fn exchange(&self, target: &str, path: &str) -> Result<HttpResponse> {
        let mut slot = self.inner.connection.lock().await;
        // Taken out while in use: a request abandoned half-way must not leave its connection
        // for the next one.
        let mut connection = match slot.take() {
            Some(c) if !c.sender.is_closed() => c,
            _ => self.open(target).await?,
        };
        let mut outcome = send_over(&mut connection.sender, &self.inner.host, path).await;
        if matches!(outcome, Err(SendError::Unanswered(_))) && connection.answered {
            // The server closed the idle connection as the request went out (RFC 9112
            // §9.3.1): once more, on a new port-forward.
            connection = self.open(target).await?;
            outcome = send_over(&mut connection.sender, &self.inner.host, path).await;
        }
        match outcome {
            Ok(response) => {
                // `Connection: close` (fake-service sends it: its keep-alives are off by
                // default) ends the connection after this response; the next request opens a
                // new port-forward at once instead of finding out by a failed send.
                if !closes(&response) {
                    connection.answered = true;
                    *slot = Some(connection);
                }
                Ok(response)
            }
            Err(e) => {
                let message = match connection.forward_error() {
                    Some(fe) => format!("{e}; port-forward: {fe}"),
                    None => e.to_string(),
                };
                Err(Error::Http {
                    target: target.to_string(),
                    message,
                })
            }
        }
    }

    async fn open(&self, target: &str) -> Result<Connection> {
        let inner = &self.inner;
        let refused = |message: String| Error::PortForward {
            target: target.to_string(),
            message,
        };
        let mut forwarder = inner
            .api
            .portforward(&inner.pod, &[inner.port])
            .await
            .map_err(|e| refused(e.to_string()))?;
        let stream = forwarder
            .take_stream(inner.port)
            .ok_or_else(|| refused("the port-forward gave no stream".into()))?;
        let error = forwarder.take_error(inner.port).map(FutureExt::boxed);
        let (sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => {
                    forwarder.abort();
                    return Err(Error::Http {
                        target: target.to_string(),
                        message: format!("HTTP handshake failed: {e}"),
                    });
                }
            };
        // The connection must be driven while requests are in flight; it ends with the stream.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            forwarder,
            driver,
            error,
            answered: false,
        })
    }
}

/// Whether the response ends its connection (`Connection: close`, RFC 9112 §9.6).
fn closes(response: &HttpResponse) -> bool {
    response
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_close_is_read_from_any_token() {
        let mut response = HttpResponse::default();
        assert!(!closes(&response));
        response
            .headers
            .insert(http::header::CONNECTION, "keep-alive".parse().unwrap());
        assert!(!closes(&response));
        response
            .headers
            .insert(http::header::CONNECTION, "Upgrade, Close".parse().unwrap());
        assert!(closes(&response));
    }
}
