//! HTTP/1.1 GET over any byte stream — in the suite, a kube-rs port-forward to a pod — and
//! the resolution of a Service port to the pod port behind it.

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncWrite};

/// A response as a reader would see it with curl.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body, as UTF-8 (invalid sequences replaced).
    pub body: String,
}

impl HttpResponse {
    /// The `content-type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Served as HTML (content type `text/html`, or a body that is an HTML document).
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
    let request = http::Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid request for path {path:?}: {e}"))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body of a {status} response failed: {e}"))?
            .to_bytes();
        Ok(HttpResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
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
