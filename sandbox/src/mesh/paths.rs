//! How a meshed pod's traffic enters its proxy — what Istio's iptables REDIRECT rules do on a
//! real pod. Outbound, the pod's egress connects to the sidecar's `virtualOutbound` (15001);
//! inbound, the pod's recording point (which keeps seeing the bytes on the wire) connects to
//! `virtualInbound` (15006). Either way a PROXY protocol v1 header first tells Envoy the
//! original source and destination, which iptables would have kept in the socket.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::net::egress::{OutboundPath, OutboundTarget};
use crate::net::inbound::InboundPath;
use crate::net::pipe::connect_from;

/// The PROXY protocol v1 header for a TCP/IPv4 connection from `src` to `dst`.
pub fn proxy_v1_header(src: SocketAddrV4, dst: SocketAddrV4) -> String {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
}

async fn connect_with_header(
    from: Ipv4Addr,
    to: SocketAddrV4,
    header_src: Option<SocketAddrV4>,
    header_dst: SocketAddrV4,
) -> io::Result<TcpStream> {
    let mut stream = connect_from(from, to).await?;
    let src = match header_src {
        Some(s) => s,
        None => match stream.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => SocketAddrV4::new(from, 0),
        },
    };
    stream
        .write_all(proxy_v1_header(src, header_dst).as_bytes())
        .await?;
    Ok(stream)
}

/// A meshed pod's outbound path: into its sidecar's `virtualOutbound`.
pub struct SidecarOutbound {
    pub listener: SocketAddrV4,
}

impl OutboundPath for SidecarOutbound {
    fn connect(
        &self,
        source: Ipv4Addr,
        target: OutboundTarget,
    ) -> BoxFuture<'static, io::Result<TcpStream>> {
        let listener = self.listener;
        Box::pin(async move { connect_with_header(source, listener, None, target.addr).await })
    }
}

/// A proxy's inbound path: from the recording point into `virtualInbound` (sidecars) or
/// `gateway-entry` (gateways).
pub struct ProxyInbound {
    pub pod_ip: Ipv4Addr,
    pub listener: SocketAddrV4,
}

impl InboundPath for ProxyInbound {
    fn connect(
        &self,
        peer: SocketAddrV4,
        port: u16,
        _app: Option<SocketAddr>,
    ) -> BoxFuture<'static, io::Result<TcpStream>> {
        let (pod_ip, listener) = (self.pod_ip, self.listener);
        Box::pin(async move {
            connect_with_header(
                pod_ip,
                listener,
                Some(peer),
                SocketAddrV4::new(pod_ip, port),
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_proxy_protocol_v1() {
        let h = proxy_v1_header(
            "127.1.0.3:40000".parse().unwrap(),
            "127.2.0.7:80".parse().unwrap(),
        );
        assert_eq!(h, "PROXY TCP4 127.1.0.3 127.2.0.7 40000 80\r\n");
    }
}
