//! The per-pod capture: every byte that enters or leaves a pod through its inbound recording
//! point, with time, direction, peer and port. It is what the workshop's `tcpdump` in the
//! istio-proxy container shows, so it must hold the real bytes (plaintext or TLS) and stay
//! bounded: the oldest records are dropped once the pod's budget is used up.
//!
//! Every record gets a sequence number, and each new record is announced on a watch channel,
//! so a live capture (`tcpdump` without end) waits for traffic by notification, not by polling.
//!
//! Besides the bytes, a connection's opening and each side's end (FIN, or a reset) are recorded,
//! so the packets synthesized from the records ([`crate::net::pcap`]) hold the TCP handshake and
//! teardown a capture on a real pod's eth0 shows.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::watch;

/// Which way bytes flowed, seen from the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the peer into the pod.
    In,
    /// From the pod back to the peer.
    Out,
}

/// What a record says happened on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The peer's connection was accepted (the TCP handshake); direction [`Direction::In`].
    Open,
    /// Bytes flowed in `direction`.
    Data,
    /// The side sending in `direction` closed its half (a FIN).
    Fin,
    /// The side sending in `direction` reset the connection (an RST).
    Reset,
}

/// Budget cost of a record without bytes (open, FIN, reset), so that a flood of short
/// connections stays bounded too.
const EVENT_COST: usize = 64;

/// One chunk of bytes as read from one side of a connection, or an event of the connection.
#[derive(Clone, Debug)]
pub struct CaptureRecord {
    /// Position in the pod's capture: 0 for the first record ever, then +1 for each.
    pub seq: u64,
    pub at: SystemTime,
    pub direction: Direction,
    pub kind: RecordKind,
    /// The remote end of the connection (the client of the pod).
    pub peer: SocketAddrV4,
    /// The pod's port the connection came in on.
    pub port: u16,
    pub bytes: Bytes,
}

#[derive(Default)]
struct Ring {
    records: VecDeque<CaptureRecord>,
    bytes: usize,
    /// The sequence number of the next record.
    next: u64,
}

/// A pod's bounded capture buffer.
pub struct Capture {
    ring: Mutex<Ring>,
    budget: usize,
    /// The sequence number of the next record, announced after each record.
    announce: watch::Sender<u64>,
}

/// Default per-pod budget: enough for thousands of workshop requests, small enough that the
/// workshop's pods stay far below the sandbox's memory target.
pub const DEFAULT_CAPTURE_BYTES: usize = 1024 * 1024;

impl Capture {
    pub fn new(budget: usize) -> Self {
        Self {
            ring: Mutex::new(Ring::default()),
            budget,
            announce: watch::Sender::new(0),
        }
    }

    /// Record bytes that flowed in `direction`.
    pub fn record(&self, direction: Direction, peer: SocketAddrV4, port: u16, bytes: &[u8]) {
        self.push(RecordKind::Data, direction, peer, port, bytes);
    }

    /// Record an event without bytes (open, FIN, reset).
    pub fn event(&self, kind: RecordKind, direction: Direction, peer: SocketAddrV4, port: u16) {
        self.push(kind, direction, peer, port, &[]);
    }

    fn push(
        &self,
        kind: RecordKind,
        direction: Direction,
        peer: SocketAddrV4,
        port: u16,
        bytes: &[u8],
    ) {
        let next = {
            let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            let record = CaptureRecord {
                seq: ring.next,
                at: SystemTime::now(),
                direction,
                kind,
                peer,
                port,
                bytes: Bytes::copy_from_slice(bytes),
            };
            ring.next += 1;
            ring.bytes += cost(&record);
            ring.records.push_back(record);
            while ring.bytes > self.budget {
                match ring.records.pop_front() {
                    Some(old) => ring.bytes -= cost(&old),
                    None => break,
                }
            }
            ring.next
        };
        self.announce.send_replace(next);
    }

    /// The sequence number the next record will get: where a capture starting now begins.
    pub fn next_seq(&self) -> u64 {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next
    }

    /// The records from sequence number `from` on that are still held, oldest first.
    pub fn since(&self, from: u64) -> Vec<CaptureRecord> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.records
            .iter()
            .filter(|r| r.seq >= from)
            .cloned()
            .collect()
    }

    /// A receiver that sees the next sequence number change whenever a record arrives.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.announce.subscribe()
    }

    /// Everything captured so far, oldest first.
    pub fn snapshot(&self) -> Vec<CaptureRecord> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.records.iter().cloned().collect()
    }

    /// Forget everything captured so far (a new `tcpdump` session starts empty).
    pub fn clear(&self) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.records.clear();
        ring.bytes = 0;
        // Sequence numbers keep growing so live captures never see a number twice.
    }
}

fn cost(record: &CaptureRecord) -> usize {
    match record.kind {
        RecordKind::Data => record.bytes.len(),
        _ => EVENT_COST,
    }
}

/// A capture bound to one connection; its clones share which halves have ended, so each end
/// is recorded once however many places see it.
#[derive(Clone)]
pub struct CaptureTap {
    pub capture: Arc<Capture>,
    pub peer: SocketAddrV4,
    pub port: u16,
    /// Whether the In and the Out half ended (FIN or reset recorded).
    ended: Arc<[AtomicBool; 2]>,
}

impl CaptureTap {
    /// The tap of a connection from `peer` that was just accepted on the pod's `port`: records
    /// its opening.
    pub fn opened(capture: Arc<Capture>, peer: SocketAddrV4, port: u16) -> Self {
        capture.event(RecordKind::Open, Direction::In, peer, port);
        Self {
            capture,
            peer,
            port,
            ended: Arc::new([AtomicBool::new(false), AtomicBool::new(false)]),
        }
    }

    pub fn record(&self, direction: Direction, bytes: &[u8]) {
        self.capture.record(direction, self.peer, self.port, bytes);
    }

    /// The side sending in `direction` ended its half with `kind` (FIN or reset); recorded
    /// the first time only, and nothing after a reset.
    pub fn end(&self, direction: Direction, kind: RecordKind) {
        let half = match direction {
            Direction::In => 0,
            Direction::Out => 1,
        };
        if kind == RecordKind::Reset {
            // A reset ends both halves.
            let first = !self.ended[0].swap(true, Ordering::AcqRel)
                | !self.ended[1].swap(true, Ordering::AcqRel);
            if first {
                self.capture.event(kind, direction, self.peer, self.port);
            }
        } else if !self.ended[half].swap(true, Ordering::AcqRel) {
            self.capture.event(kind, direction, self.peer, self.port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_drops_oldest_beyond_budget() {
        let c = Capture::new(10);
        let peer = "127.0.0.1:1000".parse().unwrap();
        c.record(Direction::In, peer, 80, b"aaaa");
        c.record(Direction::Out, peer, 80, b"bbbb");
        c.record(Direction::In, peer, 80, b"cccc");
        let snap = c.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(&snap[0].bytes[..], b"bbbb");
        assert_eq!(snap[1].direction, Direction::In);
        c.clear();
        assert!(c.snapshot().is_empty());
    }

    #[tokio::test]
    async fn records_are_numbered_and_announced() {
        let c = Capture::new(1024);
        let peer = "127.0.0.1:1000".parse().unwrap();
        let mut rx = c.subscribe();
        let start = c.next_seq();
        assert_eq!(start, 0);
        c.record(Direction::In, peer, 80, b"one");
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);
        c.record(Direction::Out, peer, 80, b"two");
        let later = c.since(1);
        assert_eq!(later.len(), 1);
        assert_eq!((later[0].seq, &later[0].bytes[..]), (1, &b"two"[..]));
        assert_eq!(c.since(start).len(), 2);
        c.clear();
        assert_eq!(c.next_seq(), 2);
    }
}
