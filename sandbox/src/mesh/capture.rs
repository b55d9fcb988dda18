//! `tcpdump` in the istio-proxy container: the workshop's
//! `sudo tcpdump -l -nn -A -s 0 -i eth0 -c 20 tcp port 8080`. It prints what the pod's inbound
//! recording point ([`crate::net::capture`]) sees from the moment it starts — the bytes on the
//! wire in front of the sidecar, so TLS between sidecars and plaintext from a client without
//! one — in tcpdump's `-nn -A` layout:
//!
//! ```text
//! 12:00:00.000000 IP 127.1.0.4.43210 > 127.1.0.7.8080: Flags [P.], seq 1:79, ack 1, win 512, length 78
//! E..v..@.@.......GET / HTTP/1.1
//! Host: service-c
//! ```
//!
//! Each chunk the recording point read is one packet (TCP segments without payload — the
//! handshake, bare ACKs — are not recorded, so `-c N` counts packets with payload). The
//! capture waits for packets by notification and ends after `-c` packets, or when the exec
//! session or the pod goes away.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use futures::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::cri::{ExecExit, ExecSession};
use crate::net::PodNet;
use crate::net::capture::{CaptureRecord, Direction};

/// The one interface a pod has, as the workshop names it.
const INTERFACE: &str = "eth0";
/// The largest payload of one packet on the wire (lo's MTU minus headers).
const MAX_SEGMENT: usize = 65483;

/// What a `tcpdump` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpdumpArgs {
    /// `-c N`: stop after N packets; `None` runs until stopped.
    pub count: Option<u64>,
    /// `port N` in the filter; `None` captures every port.
    pub port: Option<u16>,
    /// `host A.B.C.D` in the filter: only packets to or from that address.
    pub host: Option<Ipv4Addr>,
    /// `-A`: print each packet's bytes as ASCII.
    pub ascii: bool,
}

/// A command line tcpdump would refuse: the message it prints and its exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub code: i32,
}

const USAGE: &str = "Usage: tcpdump [-AbdDefhHIJKlLnNOpqStuUvxX#] [ -B size ] [ -c count ] [--count]\n\
\t\t[ -C file_size ] [ -E algo:secret ] [ -F file ] [ -G seconds ]\n\
\t\t[ -i interface ] [ --immediate-mode ] [ -j tstamptype ]\n\
\t\t[ -M secret ] [ --number ] [ --print ] [ -Q in|out|inout ]\n\
\t\t[ -r file ] [ -s snaplen ] [ -T type ] [ --version ]\n\
\t\t[ -V file ] [ -w file ] [ -W filecount ] [ -y datalinktype ]\n\
\t\t[ --time-stamp-precision precision ] [ --micro ] [ --nano ]\n\
\t\t[ -z postrotate-command ] [ -Z user ] [ expression ]\n";

fn usage(message: &str) -> UsageError {
    UsageError {
        message: format!("tcpdump: {message}\n{USAGE}"),
        code: 1,
    }
}

fn fail(message: String) -> UsageError {
    UsageError {
        message: format!("tcpdump: {message}\n"),
        code: 1,
    }
}

/// Parse tcpdump's options the workshop uses (`-l -n -nn -A -s N -i eth0 -c N`, the filter
/// `[tcp] [port N] [host A.B.C.D]` joined by `and`); anything else gets tcpdump's own refusal.
pub fn parse_args(args: &[String]) -> Result<TcpdumpArgs, UsageError> {
    let mut parsed = TcpdumpArgs {
        count: None,
        port: None,
        host: None,
        ascii: false,
    };
    let mut expression: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if !arg.starts_with('-') || arg == "-" || !expression.is_empty() {
            expression.push(arg);
            continue;
        }
        if arg.starts_with("--") {
            return Err(usage(&format!("unrecognized option '{arg}'")));
        }
        let flags: Vec<char> = arg[1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let flag = flags[j];
            j += 1;
            match flag {
                'l' | 'n' => {}
                'A' => parsed.ascii = true,
                'c' | 's' | 'i' => {
                    // The value is the rest of this argument, else the next argument.
                    let rest: String = flags[j..].iter().collect();
                    j = flags.len();
                    let value = if !rest.is_empty() {
                        rest
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(usage(&format!("option requires an argument -- '{flag}'")));
                    };
                    match flag {
                        'c' => match value.parse::<u64>() {
                            Ok(n) if n > 0 => parsed.count = Some(n),
                            _ => return Err(fail(format!("invalid packet count {value}"))),
                        },
                        's' => {
                            if value.parse::<u32>().is_err() {
                                return Err(fail(format!("invalid snaplen {value}")));
                            }
                        }
                        _ => {
                            if value != INTERFACE {
                                return Err(fail(format!(
                                    "{value}: No such device exists\n(SIOCGIFHWADDR: No such device)"
                                )));
                            }
                        }
                    }
                }
                other => {
                    return Err(usage(&format!(
                        "invalid option -- '{other}' (the happy-sandbox's tcpdump knows -l -n \
                         -A -s -i eth0 -c and the filter [tcp] [port N] [host A.B.C.D])"
                    )));
                }
            }
        }
    }
    (parsed.port, parsed.host) = parse_filter(&expression)?;
    Ok(parsed)
}

/// A conjunction of `tcp`, `port N` and `host A.B.C.D` (in any order, joined by `and` or
/// juxtaposed, as pcap-filter(7) allows) → the port and the host, if given.
fn parse_filter(words: &[&str]) -> Result<(Option<u16>, Option<Ipv4Addr>), UsageError> {
    let words: Vec<&str> = words.iter().flat_map(|w| w.split_whitespace()).collect();
    let syntax = || fail("can't parse filter expression: syntax error".into());
    let (mut port, mut host) = (None, None);
    let mut i = 0;
    let mut expect_term = true;
    while i < words.len() {
        match (words[i], expect_term) {
            ("and", false) => {
                expect_term = true;
                i += 1;
                continue;
            }
            ("tcp", _) => i += 1,
            ("port", _) => {
                let n = words.get(i + 1).ok_or_else(syntax)?;
                port = Some(
                    n.parse::<u16>()
                        .map_err(|_| fail(format!("illegal port number {n}")))?,
                );
                i += 2;
            }
            ("host", _) => {
                let a = words.get(i + 1).ok_or_else(syntax)?;
                host = Some(a.parse::<Ipv4Addr>().map_err(|_| {
                    fail(format!("can't parse filter expression: unknown host '{a}'"))
                })?);
                i += 2;
            }
            _ => return Err(syntax()),
        }
        expect_term = false;
    }
    if expect_term && !words.is_empty() {
        return Err(syntax());
    }
    Ok((port, host))
}

/// tcpdump's `-A` rendering of bytes: printable ASCII, space, tab and newline as they are,
/// anything else as `.`, a carriage return only when it does not end a line.
pub fn ascii(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => {
                if bytes.get(i + 1) != Some(&b'\n') {
                    out.push('.');
                }
            }
            b' ' | b'\t' | b'\n' => out.push(b as char),
            b if b.is_ascii_graphic() => out.push(b as char),
            _ => out.push('.'),
        }
    }
    out
}

/// Each connection's bytes so far, both ways, for tcpdump's relative sequence numbers.
#[derive(Default)]
struct Flows {
    sent: HashMap<(SocketAddrV4, u16, bool), u64>,
}

impl Flows {
    /// (seq start, seq end, ack) of a packet of `len` bytes, relative as tcpdump prints them.
    fn advance(
        &mut self,
        peer: SocketAddrV4,
        port: u16,
        inbound: bool,
        len: u64,
    ) -> (u64, u64, u64) {
        let ack = *self.sent.get(&(peer, port, !inbound)).unwrap_or(&0) + 1;
        let sent = self.sent.entry((peer, port, inbound)).or_insert(0);
        let start = *sent + 1;
        *sent += len;
        (start, start + len, ack)
    }
}

/// A plausible IPv4 + TCP header (what `-A` prints before the payload, as dots and letters).
fn headers(src: SocketAddrV4, dst: SocketAddrV4, seq: u64, ack: u64, len: usize) -> Vec<u8> {
    let total = (20 + 32 + len).min(u16::MAX as usize) as u16;
    let mut h = vec![0x45, 0x00];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00]);
    h.extend_from_slice(&src.ip().octets());
    h.extend_from_slice(&dst.ip().octets());
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h.extend_from_slice(&(seq as u32).to_be_bytes());
    h.extend_from_slice(&(ack as u32).to_be_bytes());
    // Data offset 8 words, flags PSH+ACK, window 512, checksum, urgent, NOP NOP TS option.
    h.extend_from_slice(&[0x80, 0x18, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00]);
    h.extend_from_slice(&[0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 1]);
    h
}

fn clock(at: std::time::SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let zoned = ts.to_zoned(jiff::tz::TimeZone::system());
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        zoned.hour(),
        zoned.minute(),
        zoned.second(),
        zoned.subsec_nanosecond() / 1000
    )
}

/// Print one recorded chunk as tcpdump would print its packets (one per segment); returns
/// the text and how many packets it holds.
fn render(
    record: &CaptureRecord,
    pod_ip: Ipv4Addr,
    flows: &mut Flows,
    args: &TcpdumpArgs,
    limit: u64,
) -> (String, u64) {
    let pod = SocketAddrV4::new(pod_ip, record.port);
    let inbound = record.direction == Direction::In;
    let (src, dst) = if inbound {
        (record.peer, pod)
    } else {
        (pod, record.peer)
    };
    let mut out = String::new();
    let mut packets = 0;
    for segment in record.bytes.chunks(MAX_SEGMENT) {
        if packets == limit {
            break;
        }
        let len = segment.len() as u64;
        let (start, end, ack) = flows.advance(record.peer, record.port, inbound, len);
        out.push_str(&format!(
            "{} IP {}.{} > {}.{}: Flags [P.], seq {start}:{end}, ack {ack}, win 512, length {len}\n",
            clock(record.at),
            src.ip(),
            src.port(),
            dst.ip(),
            dst.port(),
        ));
        if args.ascii {
            let mut packet = headers(src, dst, start, ack, segment.len());
            packet.extend_from_slice(segment);
            out.push_str(&ascii(&packet));
            out.push('\n');
        }
        packets += 1;
    }
    (out, packets)
}

/// An exec session that prints `message` on stderr and exits with `code`.
fn refused(stdin: bool, message: String, code: i32) -> ExecSession {
    ExecSession {
        stdin: stdin
            .then(|| Box::pin(tokio::io::sink()) as std::pin::Pin<Box<dyn AsyncWrite + Send>>),
        stdout: Box::pin(tokio::io::empty()),
        stderr: Box::pin(std::io::Cursor::new(message.into_bytes())),
        exit: futures::future::ready(ExecExit { code }).boxed(),
    }
}

/// Run `tcpdump ARGS` (the words after `tcpdump`) on the pod whose network is `net`; it ends
/// after `-c` packets, or when `pod_cancel` fires or the session's exit future is dropped.
pub fn run_tcpdump(
    args: &[String],
    net: Arc<PodNet>,
    stdin: bool,
    pod_cancel: CancellationToken,
) -> ExecSession {
    let parsed = match parse_args(args) {
        Ok(p) => p,
        Err(e) => return refused(stdin, e.message, e.code),
    };
    let capture = net.capture().clone();
    // Only what arrives from now on, as a capture that starts now would see.
    let mut position = capture.next_seq();
    let mut announced = capture.subscribe();
    let (mut out, out_reader) = tokio::io::duplex(256 * 1024);
    let (mut err, err_reader) = tokio::io::duplex(4096);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<i32>();
    let session = pod_cancel.child_token();
    let stop = session.clone();
    let pod_ip = net.ip();
    net.tracker().spawn(async move {
        let _ = err
            .write_all(
                format!(
                    "tcpdump: verbose output suppressed, use -v[v]... for full protocol decode\n\
                     listening on {INTERFACE}, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
                )
                .as_bytes(),
            )
            .await;
        let limit = parsed.count.unwrap_or(u64::MAX);
        let mut flows = Flows::default();
        let mut printed = 0u64;
        'capture: while printed < limit {
            for record in capture.since(position) {
                position = record.seq + 1;
                if record.bytes.is_empty()
                    || parsed.port.is_some_and(|p| p != record.port)
                    || parsed.host.is_some_and(|h| h != *record.peer.ip() && h != pod_ip)
                {
                    continue;
                }
                let (text, packets) = render(&record, pod_ip, &mut flows, &parsed, limit - printed);
                printed += packets;
                if out.write_all(text.as_bytes()).await.is_err() {
                    break 'capture;
                }
                if printed >= limit {
                    break 'capture;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = announced.changed() => if changed.is_err() { break },
            }
        }
        let _ = out.shutdown().await;
        let _ = err
            .write_all(
                format!(
                    "{printed} packets captured\n{printed} packets received by filter\n0 packets dropped by kernel\n"
                )
                .as_bytes(),
            )
            .await;
        let _ = err.shutdown().await;
        let _ = done_tx.send(0);
    });
    // Dropping the exit future (the client went away) stops the capture.
    let guard = session.drop_guard();
    let exit = async move {
        let code = done_rx.await.unwrap_or(137);
        drop(guard);
        ExecExit { code }
    }
    .boxed();
    ExecSession {
        stdin: stdin
            .then(|| Box::pin(tokio::io::sink()) as std::pin::Pin<Box<dyn AsyncWrite + Send>>),
        stdout: Box::pin(out_reader),
        stderr: Box::pin(err_reader),
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_the_workshops_command() {
        let a = parse_args(&words("-l -nn -A -s 0 -i eth0 -c 20 tcp port 8080")).unwrap();
        assert_eq!(
            a,
            TcpdumpArgs {
                count: Some(20),
                port: Some(8080),
                host: None,
                ascii: true
            }
        );
        // The suite's C18 capture: only the legacy client's connection.
        let h = parse_args(&words(
            "-l -nn -A -s 0 -i eth0 -c 20 tcp port 8080 and host 127.1.0.9",
        ))
        .unwrap();
        assert_eq!(
            (h.port, h.host),
            (Some(8080), Some(Ipv4Addr::new(127, 1, 0, 9)))
        );
        let q = parse_args(&["tcp port 8080 and host 127.1.0.9".to_string()]).unwrap();
        assert_eq!(
            (q.port, q.host),
            (Some(8080), Some(Ipv4Addr::new(127, 1, 0, 9)))
        );
        assert!(parse_args(&words("host legacy")).is_err());
        assert!(parse_args(&words("port 80 and")).is_err());
        let b = parse_args(&words("-nnA -c5 port 80")).unwrap();
        assert_eq!((b.count, b.port, b.ascii), (Some(5), Some(80), true));
        let c = parse_args(&words("-i eth0")).unwrap();
        assert_eq!((c.count, c.port, c.ascii), (None, None, false));
        assert_eq!(parse_args(&words("tcp and port 9")).unwrap().port, Some(9));
    }

    #[test]
    fn refuses_like_tcpdump() {
        let e = parse_args(&words("-X port 80")).unwrap_err();
        assert!(
            e.message.starts_with("tcpdump: invalid option -- 'X'"),
            "{}",
            e.message
        );
        assert!(e.message.contains("Usage: tcpdump"));
        assert_eq!(e.code, 1);
        assert!(
            parse_args(&words("-i any"))
                .unwrap_err()
                .message
                .contains("any: No such device")
        );
        assert!(
            parse_args(&words("-c"))
                .unwrap_err()
                .message
                .contains("requires an argument")
        );
        assert!(
            parse_args(&words("-c x"))
                .unwrap_err()
                .message
                .contains("invalid packet count")
        );
        assert!(
            parse_args(&words("udp port 53"))
                .unwrap_err()
                .message
                .contains("syntax error")
        );
        assert!(
            parse_args(&words("port http"))
                .unwrap_err()
                .message
                .contains("illegal port")
        );
        assert!(
            parse_args(&words("--version"))
                .unwrap_err()
                .message
                .contains("unrecognized")
        );
    }

    #[test]
    fn ascii_is_tcpdumps() {
        assert_eq!(
            ascii(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            "GET / HTTP/1.1\nHost: a\n\n"
        );
        assert_eq!(ascii(&[0x16, 0x03, 0x01, b'a', b'\r', 0xff]), "...a..");
    }

    #[test]
    fn renders_packets_as_the_suite_reads_them() {
        let peer: SocketAddrV4 = "127.1.0.4:43210".parse().unwrap();
        let args = TcpdumpArgs {
            count: Some(20),
            port: Some(8080),
            host: None,
            ascii: true,
        };
        let mut flows = Flows::default();
        let req = CaptureRecord {
            seq: 0,
            at: std::time::SystemTime::now(),
            direction: Direction::In,
            peer,
            port: 8080,
            bytes: bytes::Bytes::from_static(b"GET / HTTP/1.1\r\nHost: service-c\r\n\r\n"),
        };
        let (text, n) = render(&req, Ipv4Addr::new(127, 1, 0, 7), &mut flows, &args, 20);
        assert_eq!(n, 1);
        let first = text.lines().next().unwrap();
        assert!(
            first.ends_with(" IP 127.1.0.4.43210 > 127.1.0.7.8080: Flags [P.], seq 1:36, ack 1, win 512, length 35"),
            "{first}"
        );
        assert!(text.contains("GET / HTTP/1.1\nHost: service-c\n"));
        let resp = CaptureRecord {
            direction: Direction::Out,
            bytes: bytes::Bytes::from(vec![0x17u8; 70000]),
            ..req
        };
        let (text, n) = render(&resp, Ipv4Addr::new(127, 1, 0, 7), &mut flows, &args, 20);
        assert_eq!(n, 2, "split at the segment size");
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("127.1.0.7.8080 > 127.1.0.4.43210: Flags [P.], seq 1:65484, ack 36")
        );
        // The same as the suite's `packets_with_payload`: header lines ending in length N > 0.
        let with_payload = text
            .lines()
            .filter_map(|l| l.rsplit_once("length ").map(|(_, n)| n))
            .filter(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
            .count();
        assert_eq!(with_payload, 2);
        assert!(!text.contains("HTTP/1.1 "));
    }

    /// A live capture on a pod of the sandbox network: waits for traffic, prints the request
    /// and the response, ends after `-c`, and says so on stderr.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_capture_prints_what_crosses_the_recording_point() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let network = crate::net::Network::new().unwrap();
        let pod = network
            .create_pod("istioinaction", "service-c-v1-abc")
            .unwrap();
        let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        pod.expose(8080, app.local_addr().unwrap()).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = app.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let cancel = CancellationToken::new();
        let mut session = run_tcpdump(
            &words("-l -nn -A -s 0 -i eth0 -c 2 tcp port 8080"),
            pod.clone(),
            false,
            cancel.clone(),
        );
        // Traffic from before the capture does not show; nothing yet, so it waits.
        let mut client = tokio::net::TcpStream::connect((pod.ip(), 8080))
            .await
            .unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: service-c\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let mut out = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            session.stdout.read_to_string(&mut out),
        );
        read.await.expect("tcpdump ended after 2 packets").unwrap();
        let mut err = String::new();
        session.stderr.read_to_string(&mut err).await.unwrap();
        assert_eq!(session.exit.await.code, 0);
        assert!(out.contains("GET / HTTP/1.1\nHost: service-c"), "{out}");
        assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
        assert!(
            out.contains(&format!(" > {}.8080: Flags [P.]", pod.ip())),
            "{out}"
        );
        assert!(
            err.starts_with("tcpdump: verbose output suppressed"),
            "{err}"
        );
        assert!(err.contains("2 packets captured"), "{err}");
        network.shutdown().await;
    }
}
