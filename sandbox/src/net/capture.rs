//! The per-pod capture: every byte that enters or leaves a pod through its inbound recording
//! point, with time, direction, peer and port. It is what the workshop's `tcpdump` in the
//! istio-proxy container shows, so it must hold the real bytes (plaintext or TLS) and stay
//! bounded: the oldest records are dropped once the pod's budget is used up.
//!
//! Every record gets a sequence number, and each new record is announced on a watch channel,
//! so a live capture (`tcpdump` without end) waits for traffic by notification, not by polling.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
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

/// One chunk of bytes as read from one side of a connection.
#[derive(Clone, Debug)]
pub struct CaptureRecord {
    /// Position in the pod's capture: 0 for the first record ever, then +1 for each.
    pub seq: u64,
    pub at: SystemTime,
    pub direction: Direction,
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

    pub fn record(&self, direction: Direction, peer: SocketAddrV4, port: u16, bytes: &[u8]) {
        let next = {
            let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            let record = CaptureRecord {
                seq: ring.next,
                at: SystemTime::now(),
                direction,
                peer,
                port,
                bytes: Bytes::copy_from_slice(bytes),
            };
            ring.next += 1;
            ring.bytes += bytes.len();
            ring.records.push_back(record);
            while ring.bytes > self.budget {
                match ring.records.pop_front() {
                    Some(old) => ring.bytes -= old.bytes.len(),
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

/// A capture bound to one connection.
#[derive(Clone)]
pub struct CaptureTap {
    pub capture: Arc<Capture>,
    pub peer: SocketAddrV4,
    pub port: u16,
}

impl CaptureTap {
    pub fn record(&self, direction: Direction, bytes: &[u8]) {
        self.capture.record(direction, self.peer, self.port, bytes);
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
