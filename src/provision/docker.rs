//! Is a Docker daemon there? kind and k3s (testcontainers) need one; `auto` picks the sandbox
//! without. The check speaks the daemon's `/_ping` over its socket (DOCKER_HOST or the default
//! sockets) with a short limit, so a missing daemon costs at most that limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the check waits for a daemon to answer.
pub const PING_LIMIT: Duration = Duration::from_secs(3);

/// Where a Docker daemon may listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
    /// A DOCKER_HOST this check cannot speak (ssh://, npipe://, …).
    Unsupported(String),
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
            DockerEndpoint::Unsupported(raw) => f.write_str(raw),
        }
    }
}

/// The endpoints to try: DOCKER_HOST alone when set; otherwise the default socket and Docker
/// Desktop's per-user socket.
pub fn endpoints(docker_host: Option<&str>, home: Option<&Path>) -> Vec<DockerEndpoint> {
    match docker_host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(host) => vec![parse_docker_host(host)],
        None => {
            let mut list = vec![DockerEndpoint::Unix(PathBuf::from("/var/run/docker.sock"))];
            if let Some(home) = home {
                list.push(DockerEndpoint::Unix(home.join(".docker/run/docker.sock")));
            }
            list
        }
    }
}

/// Parses a DOCKER_HOST value.
pub fn parse_docker_host(host: &str) -> DockerEndpoint {
    if let Some(path) = host.strip_prefix("unix://") {
        DockerEndpoint::Unix(PathBuf::from(path))
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        DockerEndpoint::Tcp(addr.trim_end_matches('/').to_string())
    } else {
        DockerEndpoint::Unsupported(host.to_string())
    }
}

/// Pings the daemon from the process environment. `Err` says which endpoints were tried and
/// why each failed.
pub async fn docker_available() -> Result<DockerEndpoint, String> {
    let host = std::env::var("DOCKER_HOST").ok();
    ping_any(
        &endpoints(host.as_deref(), dirs::home_dir().as_deref()),
        PING_LIMIT,
    )
    .await
}

/// Pings each endpoint in turn; the first that answers wins.
pub async fn ping_any(list: &[DockerEndpoint], limit: Duration) -> Result<DockerEndpoint, String> {
    let mut failures = Vec::new();
    for endpoint in list {
        match ping(endpoint, limit).await {
            Ok(()) => return Ok(endpoint.clone()),
            Err(reason) => failures.push(format!("{endpoint}: {reason}")),
        }
    }
    Err(format!(
        "no Docker daemon answered ({})",
        failures.join("; ")
    ))
}

/// One `/_ping`, bounded by `limit`.
pub async fn ping(endpoint: &DockerEndpoint, limit: Duration) -> Result<(), String> {
    let work = async {
        match endpoint {
            DockerEndpoint::Unix(path) => {
                #[cfg(unix)]
                {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| format!("cannot connect: {e}"))?;
                    exchange(stream).await
                }
                #[cfg(not(unix))]
                {
                    let _ = path;
                    Err("Unix sockets are not supported on this OS".to_string())
                }
            }
            DockerEndpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                exchange(stream).await
            }
            DockerEndpoint::Unsupported(raw) => Err(format!(
                "cannot check a daemon at {raw:?} (only unix:// and tcp:// DOCKER_HOST values)"
            )),
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<(), String> {
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    // The status line is all we need; stop reading once it is complete.
    while !answer.contains(&b'\n') && answer.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    if status_line.starts_with("HTTP/") && status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("unexpected answer {status_line:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_parsing() {
        assert_eq!(
            parse_docker_host("unix:///run/user/1000/docker.sock"),
            DockerEndpoint::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            parse_docker_host("tcp://127.0.0.1:2375"),
            DockerEndpoint::Tcp("127.0.0.1:2375".into())
        );
        assert!(matches!(
            parse_docker_host("ssh://me@host"),
            DockerEndpoint::Unsupported(_)
        ));
        assert_eq!(
            endpoints(Some("tcp://h:1"), None),
            vec![DockerEndpoint::Tcp("h:1".into())]
        );
        assert_eq!(
            endpoints(None, Some(Path::new("/home/u"))),
            vec![
                DockerEndpoint::Unix("/var/run/docker.sock".into()),
                DockerEndpoint::Unix("/home/u/.docker/run/docker.sock".into())
            ]
        );
        assert_eq!(endpoints(Some(""), None).len(), 1);
    }

    #[tokio::test]
    async fn a_docker_host_pointing_at_nothing_fails_fast_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("unix://{}/docker.sock", dir.path().display());
        // A TCP port that was just free: bind, note, drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = format!("tcp://127.0.0.1:{port}");
        for host in [missing.as_str(), closed.as_str(), "ssh://nobody@nowhere"] {
            let started = std::time::Instant::now();
            let err = ping_any(&endpoints(Some(host), None), Duration::from_secs(2))
                .await
                .unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{host} took {:?}",
                started.elapsed()
            );
            assert!(
                err.contains("no Docker daemon answered")
                    && err.contains(host.trim_end_matches('/')),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_silent_listener_is_bounded_by_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let err = ping(
            &DockerEndpoint::Tcp(addr.to_string()),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(err.contains("no answer within 300ms"), "{err}");
        hold.abort();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_daemon_answering_ping_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                .await;
        });
        let list = vec![
            DockerEndpoint::Unix(dir.path().join("absent.sock")),
            DockerEndpoint::Unix(path.clone()),
        ];
        assert_eq!(
            ping_any(&list, Duration::from_secs(5)).await.unwrap(),
            DockerEndpoint::Unix(path)
        );
    }
}
