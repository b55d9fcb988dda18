//! Byte pumps between two TCP connections that keep TCP's end-of-stream semantics: a FIN on one
//! side becomes a half-close (FIN) on the other and the opposite direction keeps flowing; a
//! reset (or any read/write failure) on one side becomes a reset (SO_LINGER 0 close) on the
//! other. This is what lets a client see Envoy's or an app's reset as curl exit 56.
//!
//! The sockets at either end are made here too: listeners ([`bind_listener`]) and connections
//! from a chosen source address ([`connect_from`]), all on `lo`.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::NetError;
use super::capture::{CaptureTap, Direction, RecordKind};

const CHUNK: usize = 16 * 1024;

/// Listen on `addr` (non-blocking, for tokio); the error names the address.
pub(crate) fn bind_listener(addr: SocketAddr) -> Result<TcpListener, NetError> {
    let bind = || -> io::Result<TcpListener> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        TcpListener::from_std(std_listener)
    };
    bind().map_err(|source| NetError::Bind { addr, source })
}

/// Connect to `dest` with `source` as the local address, so the far end sees `source` as its
/// peer (all addresses are on `lo`, so any 127/8 source works).
pub(crate) async fn connect_from(source: Ipv4Addr, dest: SocketAddrV4) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // Many short connections from one pod address would otherwise run out of bindable ports
    // while earlier ones sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket.connect(SocketAddr::V4(dest)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Close `stream` with a reset rather than a FIN.
pub(crate) fn reset(stream: TcpStream) {
    // Ignoring the result is right: if the socket is already dead there is nothing to reset.
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Pump bytes both ways between `client` and `server` until both directions ended, recording
/// them on `tap` if given (client→server as [`Direction::In`]).
pub(crate) async fn splice(client: TcpStream, server: TcpStream, tap: Option<CaptureTap>) {
    // Small writes are the norm (HTTP heads); Nagle would add delayed-ACK stalls per hop.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let failed = {
        let up = one_way(&client, &server, tap.as_ref(), Direction::In);
        let down = one_way(&server, &client, tap.as_ref(), Direction::Out);
        match tokio::try_join!(up, down) {
            Ok(_) => None,
            Err(victim) => Some(std::ptr::eq(victim, &client)),
        }
    };
    match failed {
        None => {}
        Some(true) => {
            if let Some(tap) = &tap {
                tap.end(Direction::Out, RecordKind::Reset);
            }
            reset(client);
            drop(server);
        }
        Some(false) => {
            if let Some(tap) = &tap {
                // Closing the client's socket sends its FIN, if it was not sent already.
                tap.end(Direction::Out, RecordKind::Fin);
            }
            reset(server);
            drop(client);
        }
    }
}

/// Copy `src` → `dst` until EOF (then half-close `dst`). On failure returns the stream that must
/// be reset: `dst` when reading `src` failed, `src` when writing `dst` failed.
async fn one_way<'a>(
    src: &'a TcpStream,
    dst: &'a TcpStream,
    tap: Option<&CaptureTap>,
    direction: Direction,
) -> Result<(), &'a TcpStream> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match read_some(src, &mut buf).await {
            Ok(0) => {
                if let Some(tap) = tap {
                    tap.end(direction, RecordKind::Fin);
                }
                let _ = socket2::SockRef::from(dst).shutdown(Shutdown::Write);
                return Ok(());
            }
            Ok(n) => n,
            Err(_) => return Err(dst),
        };
        if let Some(tap) = tap {
            tap.record(direction, &buf[..n]);
        }
        if write_all(dst, &buf[..n]).await.is_err() {
            return Err(src);
        }
    }
}

async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// client <-> [splice] <-> server; returns (client side, server side).
    async fn spliced() -> (TcpStream, TcpStream) {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let back = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let back_addr = back.local_addr().unwrap();
        tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let s = TcpStream::connect(back_addr).await.unwrap();
            splice(c, s, None).await;
        });
        let client = TcpStream::connect(front_addr).await.unwrap();
        let (server, _) = back.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn half_close_keeps_the_other_direction_open() {
        let (mut client, mut server) = spliced().await;
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        server.write_all(b"response").await.unwrap();
        drop(server);
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"response");
    }

    #[tokio::test]
    async fn server_reset_reaches_client_as_reset() {
        let (mut client, server) = spliced().await;
        client.write_all(b"x").await.unwrap();
        reset(server);
        let mut buf = [0u8; 8];
        let err = loop {
            match client.read(&mut buf).await {
                Ok(0) => panic!("expected a reset, got a clean EOF"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn connect_from_sets_the_peer_address() {
        let listener = TcpListener::bind("127.254.0.1:0").await.unwrap();
        let addr = match listener.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        let source = Ipv4Addr::new(127, 254, 0, 2);
        let _c = connect_from(source, addr).await.unwrap();
        let (_s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(source));
    }
}
