//! A tiny HTTP/1.1 server on 127.0.0.1 for download tests: fixed routes, a hit counter, and
//! replies that fail (status) or stall (announced length never sent).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
pub(crate) enum Reply {
    Ok(Vec<u8>),
    Status(u16, &'static str),
    /// Announces `len` bytes, sends `sent` of them, then keeps the connection open.
    Stall {
        len: usize,
        sent: Vec<u8>,
    },
}

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) hits: Arc<AtomicUsize>,
}

pub(crate) async fn serve(routes: HashMap<&'static str, Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let reply = routes
                    .get(path.as_str())
                    .cloned()
                    .unwrap_or(Reply::Status(404, "Not Found"));
                match reply {
                    Reply::Ok(body) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                    }
                    Reply::Status(code, reason) => {
                        let head = format!(
                            "HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                    }
                    Reply::Stall { len, sent } => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&sent).await;
                        // Hold the connection until the client gives up.
                        let _ = socket.read(&mut buf).await;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    Server { base, hits }
}
