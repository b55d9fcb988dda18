//! Loopback address pools: pod addresses come from 127.1.0.0/16 and ClusterIPs from
//! 127.2.0.0/16. Linux routes all of 127/8 to `lo`, so every address is bindable without any
//! setup; [`check_host_loopback`] proves that once at start-up instead of failing obscurely later.
//!
//! Several sandboxes may run at once (parallel tests, two suites on one machine), so an address
//! is only handed out once this pool holds its *claim*: a UDP socket bound to address:65535.
//! The claim lives as long as the address is in use and vanishes with the process, so
//! concurrent sandboxes never share an address and a crashed one leaks nothing.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};

/// The UDP port that marks an address as claimed (TCP port space stays untouched).
const CLAIM_PORT: u16 = 65535;

fn claim(ip: Ipv4Addr) -> Option<UdpSocket> {
    UdpSocket::bind(SocketAddrV4::new(ip, CLAIM_PORT)).ok()
}

use super::NetError;

/// A /16 of 127/8 handing out host addresses, lowest free first, so addresses are predictable
/// in tests and reused after release.
#[derive(Debug)]
pub(crate) struct AddressPool {
    label: &'static str,
    second_octet: u8,
    /// Addresses handed out, with their claim when this pool could take one.
    used: BTreeMap<u16, Option<UdpSocket>>,
}

impl AddressPool {
    /// A pool over 127.`second_octet`.0.0/16; `label` names it in errors.
    pub(crate) fn new(label: &'static str, second_octet: u8) -> Self {
        Self {
            label,
            second_octet,
            used: BTreeMap::new(),
        }
    }

    fn host_part(ip: Ipv4Addr) -> u16 {
        let o = ip.octets();
        u16::from_be_bytes([o[2], o[3]])
    }

    /// Whether `ip` lies inside this pool's /16.
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        o[0] == 127 && o[1] == self.second_octet
    }

    /// The lowest free address; skips `.0` and `.255` last octets, which look like network and
    /// broadcast addresses to humans reading captures.
    pub(crate) fn allocate(&mut self) -> Result<Ipv4Addr, NetError> {
        for host in 1..=u16::MAX - 1 {
            let [hi, lo] = host.to_be_bytes();
            if lo == 0 || lo == 255 || self.used.contains_key(&host) {
                continue;
            }
            let ip = Ipv4Addr::new(127, self.second_octet, hi, lo);
            // Taken by another sandbox: try the next one.
            let Some(marker) = claim(ip) else { continue };
            self.used.insert(host, Some(marker));
            return Ok(ip);
        }
        Err(NetError::PoolExhausted { pool: self.label })
    }

    /// Mark `ip` as taken (for addresses chosen elsewhere); false when it was already taken
    /// here or lies outside the pool.
    pub(crate) fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        let host = Self::host_part(ip);
        if !self.contains(ip) || self.used.contains_key(&host) {
            return false;
        }
        self.used.insert(host, claim(ip));
        true
    }

    /// Return `ip` to the pool.
    pub(crate) fn release(&mut self, ip: Ipv4Addr) {
        if self.contains(ip) {
            self.used.remove(&Self::host_part(ip));
        }
    }

    /// How many addresses are handed out.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// Prove the host lets us listen on and connect between 127.1/16 and 127.2/16 addresses (Linux
/// does; macOS, for one, only has 127.0.0.1 unless aliases are added).
pub(crate) fn check_host_loopback() -> Result<(), NetError> {
    let server_ip = Ipv4Addr::new(127, 2, 255, 254);
    let client_ip = Ipv4Addr::new(127, 1, 255, 254);
    let listener = TcpListener::bind(SocketAddrV4::new(server_ip, 0)).map_err(|source| {
        NetError::LoopbackUnavailable {
            addr: server_ip,
            source,
        }
    })?;
    let target = listener
        .local_addr()
        .map_err(|source| NetError::LoopbackUnavailable {
            addr: server_ip,
            source,
        })?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).map_err(
        |source| NetError::LoopbackUnavailable {
            addr: client_ip,
            source,
        },
    )?;
    socket
        .bind(&SocketAddrV4::new(client_ip, 0).into())
        .map_err(|source| NetError::LoopbackUnavailable {
            addr: client_ip,
            source,
        })?;
    socket
        .connect(&target.into())
        .map_err(|source| NetError::LoopbackUnavailable {
            addr: server_ip,
            source,
        })?;
    let _client: TcpStream = socket.into();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_reuses_released() {
        // A range no sandbox uses, so a concurrently running one cannot hold these claims.
        let mut pool = AddressPool::new("test", 250);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 250, 0, 1));
        assert_eq!(b, Ipv4Addr::new(127, 250, 0, 2));
        pool.release(a);
        assert_eq!(pool.allocate().unwrap(), a);
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn skips_zero_and_broadcast_looking_addresses() {
        let mut pool = AddressPool::new("test", 251);
        for _ in 0..254 {
            pool.allocate().unwrap();
        }
        assert_eq!(pool.allocate().unwrap(), Ipv4Addr::new(127, 251, 1, 1));
    }

    #[test]
    fn a_claimed_address_is_skipped() {
        let _other = UdpSocket::bind("127.252.0.1:65535").unwrap();
        let mut pool = AddressPool::new("test", 252);
        assert_eq!(pool.allocate().unwrap(), Ipv4Addr::new(127, 252, 0, 2));
    }

    #[test]
    fn reserve_rejects_foreign_and_taken_addresses() {
        let mut pool = AddressPool::new("test", 253);
        assert!(pool.reserve(Ipv4Addr::new(127, 253, 0, 9)));
        assert!(!pool.reserve(Ipv4Addr::new(127, 253, 0, 9)));
        assert!(!pool.reserve(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn host_allows_loopback_aliases() {
        check_host_loopback().unwrap();
    }
}
