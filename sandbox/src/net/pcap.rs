//! A libpcap savefile stream synthesized from a pod's capture records
//! ([`super::capture`]), for the host's real `tcpdump -r -` to read: every flag and filter
//! expression of the workshop's `tcpdump` then behaves as the real tool's.
//!
//! The records say what crossed the pod's recording point: a connection accepted, bytes each
//! way, each side's FIN or reset. Each becomes the Ethernet/IPv4/TCP packets a capture on a
//! real pod's eth0 shows for it:
//!
//! - open → SYN, SYN-ACK, ACK (the three-way handshake, RFC 9293 §3.5), with the options Linux
//!   sends (MSS, SACK permitted, timestamps, window scale);
//! - bytes → one `[P.]` segment per chunk (at most [`MAX_SEGMENT`] bytes: IPv4's 65535-byte
//!   total length less the headers; a real eth0 shows such large segments too, as GRO
//!   coalesces them), then the receiver's bare ACK;
//! - FIN → `[F.]` and the other side's ACK; reset → `[R.]`.
//!
//! Sequence and acknowledgment numbers advance with the payload from a per-connection initial
//! number, IPv4 and TCP checksums are computed (by etherparse), the IPv4 ID counts up per
//! sender with DF set, TTL 64, as Linux sends. Packets of one record share its time, each 1 µs
//! after the previous one, so they keep their order. MAC addresses, which tcpdump shows only
//! with `-e`, are made from the IPv4 address behind the locally administered prefix 0a:58
//! (what the containernetworking bridge plugin gives pods, containernetworking/plugins
//! pkg/utils/hwaddr).
//!
//! The file format: pcap-savefile(5) (libpcap, man/pcap-savefile.manfile.in): a 24-byte global
//! header (magic 0xa1b2c3d4 for microsecond timestamps, version 2.4, snapshot length, link-type)
//! and per packet a 16-byte header (seconds, microseconds, captured length, original length)
//! before the packet's bytes; link-type 1 is LINKTYPE_ETHERNET (tcpdump.org linktypes list),
//! which tcpdump prints as `EN10MB (Ethernet)`, as on a pod's eth0. Both headers are written in
//! this host's byte order, which the magic number tells the reader.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder, TcpOptionElement};

use super::capture::{CaptureRecord, Direction, RecordKind};

/// pcap-savefile(5): the magic number of a file with microsecond timestamps.
const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;
/// LINKTYPE_ETHERNET (https://www.tcpdump.org/linktypes.html).
pub(crate) const LINKTYPE_ETHERNET: u32 = 1;
/// tcpdump's snapshot length for `-s 0` or no `-s` (MAXIMUM_SNAPLEN, netdissect.h, 4.99).
pub(crate) const DEFAULT_SNAPLEN: u32 = 262_144;
/// The largest payload of one segment: 65535 (IPv4 total length) − 20 (IPv4) − 32 (TCP with
/// the timestamp option).
pub(crate) const MAX_SEGMENT: usize = 65_535 - 20 - 32;
/// The MSS a pod announces: eth0's MTU 1500 (kind's default) − 40.
const MSS: u16 = 1460;
/// Linux's initial receive window on such a link (tcp_select_initial_window: 44 × MSS,
/// rounded down to a multiple of the MSS ≈ 64240) and its window scale (7).
const SYN_WINDOW: u16 = 64_240;
const WINDOW_SCALE: u8 = 7;
/// The scaled window of an established connection (502 × 128 ≈ 64 KiB), as tcpdump prints it.
const WINDOW: u16 = 502;
const TTL: u8 = 64;

/// The 24-byte global header of a savefile with `snaplen` and Ethernet link-type.
pub(crate) fn global_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_MICROSECONDS.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    // thiszone and sigfigs: 0 (pcap-savefile(5)).
    h[16..20].copy_from_slice(&snaplen.to_ne_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
    h
}

/// One packet's record: the 16-byte header and the bytes, cut to `snaplen`.
fn packet_record(at: SystemTime, frame: &[u8], snaplen: u32) -> Vec<u8> {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let caplen = frame.len().min(snaplen as usize);
    let mut out = Vec::with_capacity(16 + caplen);
    // Seconds as an unsigned 32-bit count: good until 2106 (pcap-savefile(5)).
    out.extend_from_slice(&(since.as_secs() as u32).to_ne_bytes());
    out.extend_from_slice(&since.subsec_micros().to_ne_bytes());
    out.extend_from_slice(&(caplen as u32).to_ne_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_ne_bytes());
    out.extend_from_slice(&frame[..caplen]);
    out
}

/// A MAC address for an IPv4 address: 0a:58 and the address's four bytes.
fn mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// One side of a connection.
#[derive(Clone, Copy)]
struct Half {
    /// The next sequence number it sends.
    next: u32,
    /// The last timestamp value it sent (the other side echoes it).
    ts: u32,
}

/// A connection as the synthesizer tracks it: the client's side and the pod's side.
struct Flow {
    client: Half,
    pod: Half,
}

/// Turns capture records into pcap packet records, keeping each connection's TCP state.
pub(crate) struct Synthesizer {
    pod_ip: Ipv4Addr,
    snaplen: u32,
    flows: HashMap<(SocketAddrV4, u16), Flow>,
    /// IPv4 identification, per sender address.
    ip_ids: HashMap<Ipv4Addr, u16>,
}

/// Which flags a segment carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
    RstAck,
}

impl Synthesizer {
    /// For the pod at `pod_ip`, cutting packets to `snaplen` bytes (0 means the default).
    pub(crate) fn new(pod_ip: Ipv4Addr, snaplen: u32) -> Self {
        Self {
            pod_ip,
            snaplen: if snaplen == 0 {
                DEFAULT_SNAPLEN
            } else {
                snaplen
            },
            flows: HashMap::new(),
            ip_ids: HashMap::new(),
        }
    }

    /// The global header this synthesizer's packets go behind.
    pub(crate) fn header(&self) -> [u8; 24] {
        global_header(self.snaplen)
    }

    /// The pcap records for one capture record, in the order they crossed the wire.
    pub(crate) fn packets(&mut self, record: &CaptureRecord) -> Vec<Vec<u8>> {
        let key = (record.peer, record.port);
        let fresh = !self.flows.contains_key(&key);
        let stamp = timestamp(record.at);
        let flow = self.flows.entry(key).or_insert_with(|| {
            let isn = initial_sequence(record);
            Flow {
                client: Half {
                    // A connection first seen mid-stream starts after its SYN.
                    next: isn.wrapping_add(1),
                    ts: stamp,
                },
                pod: Half {
                    next: isn.rotate_left(16).wrapping_add(0x9e37_79b9),
                    ts: stamp,
                },
            }
        });
        let mut segments: Vec<(Direction, Flags, u32, u32, &[u8])> = Vec::new();
        let inbound = record.direction == Direction::In;
        match record.kind {
            RecordKind::Open => {
                if !fresh {
                    // A new connection on a reused port pair: forget the old one's numbers.
                    let isn = initial_sequence(record);
                    flow.client.next = isn.wrapping_add(1);
                    flow.pod.next = isn.rotate_left(16).wrapping_add(0x9e37_79b9);
                }
                let (c, p) = (flow.client.next.wrapping_sub(1), flow.pod.next);
                segments.push((Direction::In, Flags::Syn, c, 0, &[]));
                segments.push((Direction::Out, Flags::SynAck, p, c.wrapping_add(1), &[]));
                flow.pod.next = p.wrapping_add(1);
                segments.push((
                    Direction::In,
                    Flags::Ack,
                    flow.client.next,
                    flow.pod.next,
                    &[],
                ));
            }
            RecordKind::Data => {
                for chunk in record.bytes.chunks(MAX_SEGMENT) {
                    let (sender, receiver) = halves(flow, inbound);
                    let seq = sender.next;
                    sender.next = seq.wrapping_add(chunk.len() as u32);
                    let (ack, back) = (receiver.next, sender.next);
                    segments.push((record.direction, Flags::PshAck, seq, ack, chunk));
                    segments.push((opposite(record.direction), Flags::Ack, ack, back, &[]));
                }
            }
            RecordKind::Fin => {
                let (sender, receiver) = halves(flow, inbound);
                let seq = sender.next;
                sender.next = seq.wrapping_add(1);
                let (ack, back) = (receiver.next, sender.next);
                segments.push((record.direction, Flags::FinAck, seq, ack, &[]));
                segments.push((opposite(record.direction), Flags::Ack, ack, back, &[]));
            }
            RecordKind::Reset => {
                let (sender, receiver) = halves(flow, inbound);
                segments.push((
                    record.direction,
                    Flags::RstAck,
                    sender.next,
                    receiver.next,
                    &[],
                ));
            }
        }
        let pod = SocketAddrV4::new(self.pod_ip, record.port);
        let mut out = Vec::with_capacity(segments.len());
        for (i, (direction, flags, seq, ack, payload)) in segments.into_iter().enumerate() {
            let (src, dst) = match direction {
                Direction::In => (record.peer, pod),
                Direction::Out => (pod, record.peer),
            };
            let flow = self
                .flows
                .get_mut(&key)
                .expect("the flow was inserted above");
            let (sender, receiver) = halves(flow, direction == Direction::In);
            sender.ts = stamp;
            let echo = if flags == Flags::Syn { 0 } else { receiver.ts };
            let id = self.ip_ids.entry(*src.ip()).or_insert(0);
            *id = id.wrapping_add(1);
            let frame = frame(src, dst, flags, seq, ack, (stamp, echo), *id, payload);
            let at = record.at + Duration::from_micros(i as u64);
            out.push(packet_record(at, &frame, self.snaplen));
        }
        if record.kind == RecordKind::Reset {
            self.flows.remove(&key);
        }
        out
    }
}

/// (sender, receiver) of a segment going In (client → pod) or Out.
fn halves(flow: &mut Flow, inbound: bool) -> (&mut Half, &mut Half) {
    if inbound {
        (&mut flow.client, &mut flow.pod)
    } else {
        (&mut flow.pod, &mut flow.client)
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::In => Direction::Out,
        Direction::Out => Direction::In,
    }
}

/// A TCP timestamp value: milliseconds (Linux's TCP clock ticks in ms, RFC 7323 §5.4).
fn timestamp(at: SystemTime) -> u32 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u32
}

/// An initial sequence number that differs per connection and time (RFC 6528 asks for one an
/// off-path attacker cannot guess; here it only has to look like one).
fn initial_sequence(record: &CaptureRecord) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(&record.peer.ip().octets());
    h.write_u16(record.peer.port());
    h.write_u16(record.port);
    h.write_u128(
        record
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

/// An Ethernet frame holding one IPv4/TCP segment.
#[allow(clippy::too_many_arguments)]
fn frame(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: Flags,
    seq: u32,
    ack: u32,
    (ts, echo): (u32, u32),
    ip_id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, TTL, IpNumber::TCP, src.ip().octets(), dst.ip().octets())
        .unwrap_or_default();
    ip.identification = ip_id;
    ip.dont_fragment = true;
    let window = match flags {
        Flags::Syn | Flags::SynAck => SYN_WINDOW,
        _ => WINDOW,
    };
    let builder = PacketBuilder::ethernet2(mac(*src.ip()), mac(*dst.ip()))
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .tcp(src.port(), dst.port(), seq, window);
    let builder = match flags {
        Flags::Syn => builder.syn(),
        Flags::SynAck => builder.syn().ack(ack),
        Flags::Ack => builder.ack(ack),
        Flags::PshAck => builder.psh().ack(ack),
        Flags::FinAck => builder.fin().ack(ack),
        Flags::RstAck => builder.rst().ack(ack),
    };
    // Linux's option layouts: the SYN's MSS, SACK-permitted, timestamps, NOP, window scale;
    // afterwards NOP, NOP, timestamps (tcp_options_write, net/ipv4/tcp_output.c); a reset
    // carries none.
    let options: &[TcpOptionElement] = match flags {
        Flags::Syn | Flags::SynAck => &[
            TcpOptionElement::MaximumSegmentSize(MSS),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(ts, echo),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(WINDOW_SCALE),
        ],
        Flags::RstAck => &[],
        _ => &[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(ts, echo),
        ],
    };
    let builder = match builder.options(options) {
        Ok(b) => b,
        // The options above are 20 bytes at most, far below TCP's 40: this cannot fail.
        Err(_) => unreachable!("TCP options within 40 bytes"),
    };
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    // Writing into a Vec fails only for a payload larger than IPv4 allows, which
    // MAX_SEGMENT excludes.
    let _ = builder.write(&mut out, payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn record(seq: u64, kind: RecordKind, direction: Direction, bytes: &[u8]) -> CaptureRecord {
        CaptureRecord {
            seq,
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            direction,
            kind,
            peer: "127.1.0.4:43210".parse().unwrap(),
            port: 8080,
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    /// A whole exchange: handshake, request, response, both FINs.
    fn exchange() -> Vec<CaptureRecord> {
        vec![
            record(0, RecordKind::Open, Direction::In, b""),
            record(
                1,
                RecordKind::Data,
                Direction::In,
                b"GET / HTTP/1.1\r\n\r\n",
            ),
            record(
                2,
                RecordKind::Data,
                Direction::Out,
                b"HTTP/1.1 200 OK\r\n\r\n",
            ),
            record(3, RecordKind::Fin, Direction::In, b""),
            record(4, RecordKind::Fin, Direction::Out, b""),
        ]
    }

    /// The pcap records split back into (timestamp µs, captured bytes).
    fn split(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let caplen = u32::from_ne_bytes(rest[8..12].try_into().unwrap()) as usize;
            out.push(rest[16..16 + caplen].to_vec());
            rest = &rest[16 + caplen..];
        }
        out
    }

    #[test]
    fn the_global_header_is_libpcaps() {
        let h = global_header(0x40000);
        assert_eq!(u32::from_ne_bytes(h[0..4].try_into().unwrap()), 0xa1b2c3d4);
        assert_eq!(u32::from_ne_bytes(h[16..20].try_into().unwrap()), 262_144);
        assert_eq!(u32::from_ne_bytes(h[20..24].try_into().unwrap()), 1);
    }

    /// Parsed back with etherparse: flags, numbers that advance with the payload, checksums.
    #[test]
    fn packets_are_a_consistent_tcp_conversation() {
        let pod = Ipv4Addr::new(127, 1, 0, 7);
        let mut s = Synthesizer::new(pod, 0);
        let mut stream = Vec::new();
        for r in exchange() {
            for p in s.packets(&r) {
                stream.extend_from_slice(&p);
            }
        }
        let frames = split(&stream);
        // SYN, SYN-ACK, ACK; request + ACK; response + ACK; FIN + ACK twice.
        assert_eq!(frames.len(), 3 + 2 + 2 + 2 + 2);
        let mut seen = Vec::new();
        for f in &frames {
            let p = SlicedPacket::from_ethernet(f).expect("an Ethernet frame");
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!("IPv4")
            };
            let h = ip.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            assert!(h.dont_fragment());
            let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
                panic!("TCP")
            };
            let checksum = tcp
                .to_header()
                .calc_checksum_ipv4(&h.to_header(), tcp.payload())
                .unwrap();
            assert_eq!(checksum, tcp.checksum(), "TCP checksum");
            seen.push((
                h.source_addr(),
                tcp.syn(),
                tcp.ack(),
                tcp.fin(),
                tcp.sequence_number(),
                tcp.acknowledgment_number(),
                tcp.payload().len(),
            ));
        }
        let client = Ipv4Addr::new(127, 1, 0, 4);
        let (syn, synack, ack) = (seen[0], seen[1], seen[2]);
        assert_eq!((syn.0, syn.1, syn.2), (client, true, false));
        assert_eq!((synack.0, synack.1, synack.2), (pod, true, true));
        assert_eq!(synack.5, syn.4.wrapping_add(1));
        assert_eq!(
            (ack.4, ack.5),
            (syn.4.wrapping_add(1), synack.4.wrapping_add(1))
        );
        let request = seen[3];
        assert_eq!((request.4, request.6), (ack.4, 18));
        assert_eq!(
            seen[4].5,
            request.4.wrapping_add(18),
            "the pod acks the request"
        );
        let response = seen[5];
        assert_eq!(
            (response.0, response.4, response.5),
            (pod, ack.5, request.4 + 18)
        );
        let client_fin = seen[7];
        assert!(client_fin.3);
        assert_eq!(client_fin.4, request.4 + 18);
        let pod_fin = seen[9];
        assert!(pod_fin.3);
        assert_eq!(pod_fin.4, response.4 + 19);
        assert_eq!(seen[10].5, pod_fin.4 + 1, "the client acks the pod's FIN");
    }

    /// The workshop's payload-only filter (the README's mTLS chapter).
    pub(super) const PAYLOAD_ONLY: &str =
        "(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)";

    /// Debian's real tcpdump reads the stream: every packet, flags and verified checksums,
    /// and the workshop's filter keeps only the two with a payload.
    #[test]
    fn real_tcpdump_reads_the_stream() {
        let Some(tcpdump) = crate::mesh::tcpdump::find_tcpdump() else {
            eprintln!("SKIPPED: no tcpdump on this host (install Debian's tcpdump package)");
            return;
        };
        let mut s = Synthesizer::new(Ipv4Addr::new(127, 1, 0, 7), 0);
        let mut stream = s.header().to_vec();
        for r in exchange() {
            for p in s.packets(&r) {
                stream.extend_from_slice(&p);
            }
        }
        let read = |extra: &[&str]| {
            use std::io::Write;
            let mut child = std::process::Command::new(&tcpdump)
                .args(["-r", "-", "-n", "-vv"])
                .args(extra)
                .env("TZ", "UTC")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&stream).unwrap();
            let out = child.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, all, err) = read(&[]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            err.contains("link-type EN10MB (Ethernet), snapshot length 262144"),
            "{err}"
        );
        let headers: Vec<&str> = all.lines().filter(|l| l.contains("Flags [")).collect();
        assert_eq!(headers.len(), 11, "{all}");
        assert!(
            headers[0].contains("127.1.0.4.43210 > 127.1.0.7.8080: Flags [S]"),
            "{all}"
        );
        assert!(
            headers[1].contains("127.1.0.7.8080 > 127.1.0.4.43210: Flags [S.]"),
            "{all}"
        );
        assert!(
            headers[3].contains("Flags [P.]") && headers[3].contains("seq 1:19, ack 1"),
            "{all}"
        );
        assert!(headers[7].contains("Flags [F.]"), "{all}");
        assert!(
            headers.iter().all(|h| h.contains("(correct)")),
            "every checksum verifies: {all}"
        );
        // tcpdump's HTTP printer (print-tcp.c: port 8080 is HTTP_PORT_ALT) shows the text.
        assert!(all.contains("HTTP, length: 18\n\tGET / HTTP/1.1"), "{all}");
        let (code, payload, _) = read(&[PAYLOAD_ONLY]);
        assert_eq!(code, Some(0));
        let headers: Vec<&str> = payload.lines().filter(|l| l.contains("Flags [")).collect();
        assert_eq!(
            headers.len(),
            2,
            "only the request and the response: {payload}"
        );
        let (code, _, err) = read(&["tcp port"]);
        assert_eq!(code, Some(1));
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn large_chunks_are_split_and_cut_to_the_snapshot_length() {
        let mut s = Synthesizer::new(Ipv4Addr::new(127, 1, 0, 7), 100);
        let big = vec![0x17u8; MAX_SEGMENT + 10];
        let packets = s.packets(&record(0, RecordKind::Data, Direction::Out, &big));
        assert_eq!(packets.len(), 4, "two segments, each with its ACK");
        let orig = u32::from_ne_bytes(packets[0][12..16].try_into().unwrap());
        assert_eq!(orig as usize, 14 + 20 + 32 + MAX_SEGMENT);
        assert_eq!(packets[0].len(), 16 + 100);
    }
}
