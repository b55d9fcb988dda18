//! HTTP/1.1 GET over any byte stream — in the suite, a kube-rs port-forward to a pod — the
//! redirects a browser follows, and the resolution of a Service port to the pod port behind it.

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncWrite};

/// A response as a reader would see it with curl (or, with [`follow_redirects`], with a
/// browser: then `redirects` holds the hops that led to it).
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body, as UTF-8 (invalid sequences replaced).
    pub body: String,
    /// The redirects followed before this response, first hop first; empty when none were.
    pub redirects: Vec<Redirect>,
}

/// One redirect a browser followed: `GET path` answered `status` with `Location: location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The path requested.
    pub path: String,
    /// The redirect status (301, 302, 303, 307 or 308).
    pub status: u16,
    /// The `Location` header as sent.
    pub location: String,
}

impl HttpResponse {
    /// The `content-type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Served as HTML (content type `text/html`, or a body that is an HTML document).
    #[cfg(test)] // only the tests use it
    pub fn is_html(&self) -> bool {
        self.content_type()
            .is_some_and(|c| c.starts_with("text/html"))
            || self
                .body
                .trim_start()
                .get(..15)
                .is_some_and(|s| s.eq_ignore_ascii_case("<!doctype html>"))
            || self
                .body
                .trim_start()
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("<html"))
    }
}

/// The user agent of the suite's requests (so they are recognisable in access logs).
pub const USER_AGENT_VALUE: &str = "happy-istio";

/// Sends one `GET path` with `Host: host` over `stream` and reads the whole response.
/// The caller bounds the time.
pub async fn http_get_over<S>(
    stream: S,
    host: &str,
    path: &str,
) -> std::result::Result<HttpResponse, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection must be driven while the request is in flight; it ends with the stream.
    let driver = tokio::spawn(connection);
    let result = send_over(&mut sender, host, path)
        .await
        .map_err(|e| e.to_string());
    driver.abort();
    result
}

/// Why [`send_over`] has no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The connection closed before any part of a response arrived.
    Unanswered(String),
    /// Anything else: a malformed request, a broken response or body.
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unanswered(m) | SendError::Failed(m) => f.write_str(m),
        }
    }
}

/// Sends one `GET path` with `Host: host` on an HTTP/1.1 connection and reads the whole
/// response, leaving the connection open for the next request (keep-alive) unless the server
/// closes it. The caller drives the connection and bounds the time.
pub(crate) async fn send_over(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> std::result::Result<HttpResponse, SendError> {
    let request = http::Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .body(Empty::<Bytes>::new())
        .map_err(|e| SendError::Failed(format!("invalid request for path {path:?}: {e}")))?;
    // A connection that closed between requests shows here, before anything is sent.
    sender
        .ready()
        .await
        .map_err(|e| SendError::Unanswered(format!("request failed: {e}")))?;
    let response = sender.send_request(request).await.map_err(|e| {
        let message = format!("request failed: {e}");
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            SendError::Unanswered(message)
        } else {
            SendError::Failed(message)
        }
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| {
            SendError::Failed(format!(
                "reading the body of a {status} response failed: {e}"
            ))
        })?
        .to_bytes();
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        redirects: Vec::new(),
    })
}

// --- redirects, as a browser follows them -------------------------------------------------

/// The most redirects a browser follows for one page load: the Fetch standard's limit ("If
/// request's redirect count is 20, return a network error", WHATWG Fetch, HTTP-redirect fetch;
/// Chromium and Firefox use 20 too). fake-service's UI needs one (`/ui` → `/ui/`).
pub const MAX_REDIRECTS: usize = 20;

/// The statuses a browser follows with a `Location` (RFC 9110 §15.4; 300 and 304 are not
/// followed). The suite only sends GET, which every one of them keeps.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a browser on `origin` (e.g. `http://localhost:8080`) goes from `path` for
/// `Location: location`: the reference resolved against the page's URL (RFC 3986 §5, so
/// `./`, `../x`, `/ui/`, `?q` and absolute URLs all work), as a path and query. A Location on
/// another origin cannot be followed through the same route (port-forward) and is an error.
pub fn resolve_location(origin: &str, path: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(origin)
        .and_then(|o| o.join(path))
        .map_err(|e| format!("cannot form the page URL from {origin:?} and {path:?}: {e}"))?;
    let next = base
        .join(location.trim())
        .map_err(|e| format!("unusable Location {location:?} (from {path}): {e}"))?;
    if next.origin() != base.origin() {
        return Err(format!(
            "Location {location:?} (from {path}) leaves {origin}; a browser would follow it there, \
             the suite follows only on the route it was given"
        ));
    }
    Ok(match next.query() {
        Some(q) => format!("{}?{q}", next.path()),
        None => next.path().to_string(),
    })
}

/// Why [`follow_redirects`] has no page.
#[derive(Debug)]
pub enum RedirectError<E> {
    /// A request failed: its error, and the redirects followed before it (none for the first).
    Request { error: E, after: Vec<Redirect> },
    /// The redirects themselves: too many, or a Location the route cannot reach.
    Redirects(String),
}

impl<E: std::fmt::Display> std::fmt::Display for RedirectError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectError::Request { error, after } if after.is_empty() => write!(f, "{error}"),
            RedirectError::Request { error, after } => {
                write!(f, "{error} (after {})", describe_hops(after))
            }
            RedirectError::Redirects(message) => f.write_str(message),
        }
    }
}

/// Load `path` as a browser on `origin` does: send it, and while the answer is a redirect,
/// send its resolved `Location` (through the same `send`, i.e. the same route), at most
/// [`MAX_REDIRECTS`] times. The final response carries the hops in `redirects`.
pub async fn follow_redirects<F, Fut, E>(
    origin: &str,
    path: &str,
    mut send: F,
) -> std::result::Result<HttpResponse, RedirectError<E>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<HttpResponse, E>>,
{
    let mut hops: Vec<Redirect> = Vec::new();
    let mut current = path.to_string();
    loop {
        let mut response = match send(current.clone()).await {
            Ok(r) => r,
            Err(error) => return Err(RedirectError::Request { error, after: hops }),
        };
        if !is_redirect(response.status) {
            response.redirects = hops;
            return Ok(response);
        }
        let location = response
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(location) = location else {
            // A browser shows a redirect without Location as the response itself.
            response.redirects = hops;
            return Ok(response);
        };
        let next =
            resolve_location(origin, &current, &location).map_err(RedirectError::Redirects)?;
        hops.push(Redirect {
            path: current,
            status: response.status,
            location,
        });
        if hops.len() > MAX_REDIRECTS {
            return Err(RedirectError::Redirects(format!(
                "more than {MAX_REDIRECTS} redirects (a browser gives up): {}",
                describe_hops(&hops)
            )));
        }
        current = next;
    }
}

fn describe_hops(hops: &[Redirect]) -> String {
    hops.iter()
        .map(|h| format!("GET {} → {} Location: {}", h.path, h.status, h.location))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The way to a response for messages: `GET /ui → 301 Location: /ui/ → 200 text/html`, or
/// just `200 text/html` when no redirect was followed.
pub fn describe_chain(response: &HttpResponse) -> String {
    let last = format!(
        "{}{}",
        response.status,
        response
            .content_type()
            .map(|c| format!(" {c}"))
            .unwrap_or_default()
    );
    if response.redirects.is_empty() {
        last
    } else {
        format!("{} → {last}", describe_hops(&response.redirects))
    }
}

/// The container port behind a Service port on `pod`: `targetPort` as a number, or a named
/// container port looked up in the pod's containers; no `targetPort` means the same number.
pub fn resolve_target_port(
    service_port: &ServicePort,
    pod: &Pod,
) -> std::result::Result<u16, String> {
    let number = |n: i32| u16::try_from(n).map_err(|_| format!("port {n} is out of range"));
    match &service_port.target_port {
        None => number(service_port.port),
        Some(IntOrString::Int(n)) => number(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return number(n);
            }
            let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
            let port = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| {
                    format!(
                        "pod {} has no container port named {name:?}",
                        pod.metadata.name.as_deref().unwrap_or("?")
                    )
                })?;
            number(port.container_port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Reads one request head from the server side of a duplex and returns it.
    async fn read_head(server: &mut DuplexStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = server.read(&mut byte).await.unwrap();
            assert_eq!(n, 1, "client closed before the end of the head");
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    #[tokio::test]
    async fn get_with_content_length() {
        let (client, mut server) = tokio::io::duplex(4096);
        let server_task = tokio::spawn(async move {
            let head = read_head(&mut server).await;
            let body = "{\n  \"name\": \"service-a\",\n  \"code\": 200\n}\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            server.write_all(response.as_bytes()).await.unwrap();
            head
        });
        let response = http_get_over(client, "localhost:8080", "/").await.unwrap();
        let head = server_task.await.unwrap();
        assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("host: localhost:8080\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("user-agent: happy-istio\r\n"),
            "{head}"
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type(), Some("text/plain; charset=utf-8"));
        assert!(response.body.contains("\"name\": \"service-a\""));
        assert!(!response.is_html());
    }

    #[tokio::test]
    async fn one_connection_carries_several_requests() {
        let (client, mut server) = tokio::io::duplex(4096);
        let server_task = tokio::spawn(async move {
            let mut paths = Vec::new();
            for body in ["one", "two"] {
                let head = read_head(&mut server).await;
                paths.push(head.lines().next().unwrap_or_default().to_string());
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                server.write_all(response.as_bytes()).await.unwrap();
            }
            paths
        });
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let first = send_over(&mut sender, "h", "/a").await.unwrap();
        let second = send_over(&mut sender, "h", "/b").await.unwrap();
        assert_eq!((first.body.as_str(), second.body.as_str()), ("one", "two"));
        assert_eq!(
            server_task.await.unwrap(),
            ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]
        );
        // The server is gone: the next request is unanswered, not a wrong answer.
        let err = send_over(&mut sender, "h", "/c").await.unwrap_err();
        assert!(matches!(err, SendError::Unanswered(_)), "{err}");
        driver.abort();
    }

    #[tokio::test]
    async fn chunked_html_and_error_status() {
        let (client, mut server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let head = read_head(&mut server).await;
            assert!(head.starts_with("GET /ui HTTP/1.1\r\n"), "{head}");
            server
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n<html>\r\n7\r\n</html>\r\n0\r\n\r\n")
                .await
                .unwrap();
        });
        let response = http_get_over(client, "service-a", "/ui").await.unwrap();
        assert_eq!(response.status, 500);
        assert_eq!(response.body, "<html></html>");
        assert!(response.is_html());
    }

    #[tokio::test]
    async fn a_reset_is_an_error() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            read_head(&mut server).await;
            drop(server);
        });
        let err = http_get_over(client, "h", "/").await.unwrap_err();
        assert!(err.contains("request failed"), "{err}");
    }

    #[tokio::test]
    async fn a_truncated_body_is_an_error() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            read_head(&mut server).await;
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
                .await
                .unwrap();
            drop(server);
        });
        let err = http_get_over(client, "h", "/").await.unwrap_err();
        assert!(err.contains("reading the body of a 200 response"), "{err}");
    }

    fn answer(status: u16, location: Option<&str>, content_type: &str, body: &str) -> HttpResponse {
        let mut headers = http::HeaderMap::new();
        if let Some(l) = location {
            headers.insert(http::header::LOCATION, l.parse().unwrap());
        }
        headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        HttpResponse {
            status,
            headers,
            body: body.into(),
            redirects: Vec::new(),
        }
    }

    #[test]
    fn locations_resolve_as_in_a_browser() {
        let o = "http://localhost:8080";
        assert_eq!(resolve_location(o, "/ui", "/ui/").unwrap(), "/ui/");
        assert_eq!(resolve_location(o, "/ui/index.html", "./").unwrap(), "/ui/");
        assert_eq!(resolve_location(o, "/a/b/c", "../d").unwrap(), "/a/d");
        assert_eq!(resolve_location(o, "/ui", "ui/").unwrap(), "/ui/");
        assert_eq!(resolve_location(o, "/ui", "?x=1").unwrap(), "/ui?x=1");
        assert_eq!(
            resolve_location(o, "/ui", "http://localhost:8080/ui/").unwrap(),
            "/ui/"
        );
        let err = resolve_location(o, "/ui", "https://example.com/ui/").unwrap_err();
        assert!(err.contains("leaves http://localhost:8080"), "{err}");
    }

    /// fake-service through Go's net/http: `/ui` → 301 `/ui/` (ServeMux), `/ui/index.html` →
    /// 301 `./` (FileServer), `/ui/` → the page.
    fn fake_service(path: &str) -> HttpResponse {
        match path {
            "/ui" => answer(
                301,
                Some("/ui/"),
                "text/html; charset=utf-8",
                "<a href=\"/ui/\">Moved Permanently</a>.\n\n",
            ),
            "/ui/index.html" => answer(301, Some("./"), "", ""),
            "/ui/" => answer(
                200,
                None,
                "text/html; charset=utf-8",
                "<!doctype html><html lang=\"en\"></html>",
            ),
            "/loop" => answer(302, Some("/loop"), "", ""),
            _ => answer(
                404,
                None,
                "text/plain; charset=utf-8",
                "404 page not found\n",
            ),
        }
    }

    #[tokio::test]
    async fn a_browser_follows_to_the_page_and_keeps_the_hops() {
        let sent = std::sync::Mutex::new(Vec::new());
        let send = |p: String| {
            sent.lock().unwrap().push(p.clone());
            async move { Ok::<_, String>(fake_service(&p)) }
        };
        let page = follow_redirects("http://localhost:8080", "/ui", send)
            .await
            .unwrap();
        assert_eq!(page.status, 200);
        assert_eq!(*sent.lock().unwrap(), ["/ui", "/ui/"]);
        assert_eq!(
            page.redirects,
            [Redirect {
                path: "/ui".into(),
                status: 301,
                location: "/ui/".into()
            }]
        );
        assert_eq!(
            describe_chain(&page),
            "GET /ui → 301 Location: /ui/ → 200 text/html; charset=utf-8"
        );
        let page = follow_redirects("http://localhost:8080", "/ui/index.html", |p| async move {
            Ok::<_, String>(fake_service(&p))
        })
        .await
        .unwrap();
        assert_eq!((page.status, page.redirects.len()), (200, 1));
        let direct = follow_redirects("http://localhost:8080", "/ui/", |p| async move {
            Ok::<_, String>(fake_service(&p))
        })
        .await
        .unwrap();
        assert!(direct.redirects.is_empty());
        assert_eq!(describe_chain(&direct), "200 text/html; charset=utf-8");
    }

    #[tokio::test]
    async fn a_loop_or_a_failing_hop_is_an_error() {
        let err = follow_redirects("http://localhost:8080", "/loop", |p| async move {
            Ok::<_, String>(fake_service(&p))
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("more than 20 redirects"), "{err}");
        let err = follow_redirects("http://localhost:8080", "/ui", |p| async move {
            if p == "/ui" {
                Ok(fake_service(&p))
            } else {
                Err("request failed: reset".to_string())
            }
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("after GET /ui → 301 Location: /ui/"), "{err}");
    }

    fn gateway_pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-ingressgateway-1"},
            "spec": {"containers": [{"name": "istio-proxy", "ports": [
                {"name": "http-envoy-prom", "containerPort": 15090},
                {"name": "http2", "containerPort": 8080}
            ]}]}
        }))
        .unwrap()
    }

    fn port(json: serde_json::Value) -> ServicePort {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn target_ports() {
        let pod = gateway_pod();
        assert_eq!(
            resolve_target_port(
                &port(serde_json::json!({"port": 80, "targetPort": 8080})),
                &pod
            ),
            Ok(8080)
        );
        assert_eq!(
            resolve_target_port(&port(serde_json::json!({"port": 80})), &pod),
            Ok(80)
        );
        assert_eq!(
            resolve_target_port(
                &port(serde_json::json!({"port": 80, "targetPort": "http2"})),
                &pod
            ),
            Ok(8080)
        );
        let err = resolve_target_port(
            &port(serde_json::json!({"port": 80, "targetPort": "http"})),
            &pod,
        )
        .unwrap_err();
        assert!(
            err.contains("istio-ingressgateway-1") && err.contains("\"http\""),
            "{err}"
        );
        assert!(
            resolve_target_port(
                &port(serde_json::json!({"port": 80, "targetPort": 70000})),
                &pod
            )
            .is_err()
        );
    }
}
