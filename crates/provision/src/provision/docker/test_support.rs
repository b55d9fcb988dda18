//! Fake Docker daemons for the tests of the engine check and of preflight.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A socket answering every request with a 200 like a Docker daemon, until the test ends.
pub(crate) fn fake_daemon(path: &std::path::Path) -> tokio::task::JoinHandle<()> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            answer(socket, "200 OK").await;
        }
    })
}

/// Reads one request, answers it with `status`, returns its request line.
pub(crate) async fn answer(mut io: impl AsyncRead + AsyncWrite + Unpin, status: &str) -> String {
    let mut buf = [0u8; 1024];
    let n = io.read(&mut buf).await.unwrap_or(0);
    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nOK");
    let _ = io.write_all(reply.as_bytes()).await;
    let request = String::from_utf8_lossy(&buf[..n]);
    request.lines().next().unwrap_or_default().to_string()
}
