//! The server side of a SPDY/3.1 session as the kubelet runs it for port-forward
//! (k8s.io/apimachinery v0.32 `pkg/util/httpstream/spdy/connection.go` over moby/spdystream
//! v0.5.0 `connection.go`): the client opens every stream with SYN_STREAM, the server answers
//! SYN_REPLY (empty headers) or RST_STREAM(CANCEL) for a stream it refuses, echoes the client's
//! PINGs (odd ids; a server's are even), and ends on GOAWAY or EOF.
//!
//! Flow control: spdystream implements none (SETTINGS and WINDOW_UPDATE reach its "unhandled
//! frame type" branch, and it never sends WINDOW_UPDATE), so kubectl neither honours a window
//! nor opens one. A server that enforced SPDY/3.1's 64 KiB initial window would stall after
//! 64 KiB; this one accepts and ignores both frames, as the kubelet does.
//!
//! No maintained crate serves SPDY/3.1 (crates.io's `spdy-mux` 0.1 is a client-side pool that
//! opens streams; nothing accepts them), so framing lives in [`super::frame`] and
//! [`super::headers`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::{self, HeaderBlock, RawFrame};
use super::headers::{Deflater, Inflater};

/// Data frames carry at most this much (spdystream's limit is 2^24-1; kubectl reads any size).
const MAX_DATA_FRAME: usize = 32 * 1024;

/// A stream the client opened and the server accepted (its SYN_REPLY is already queued).
pub(crate) struct Incoming {
    pub id: u32,
    pub headers: HeaderBlock,
    /// What the client sends on the stream; ends with the client's FIN, RST_STREAM or the
    /// session's end.
    pub data: mpsc::Receiver<Bytes>,
    pub out: StreamWriter,
}

/// Writes one stream's frames, in order after its SYN_REPLY.
#[derive(Clone)]
pub(crate) struct StreamWriter {
    id: u32,
    frames: mpsc::Sender<Outgoing>,
    /// Set once the client reset the stream or this side finished it: nothing more is sent.
    closed: Arc<AtomicBool>,
}

impl StreamWriter {
    /// Send `data` (split into frames); false once the stream or the session is gone.
    pub(crate) async fn send(&self, data: &[u8]) -> bool {
        for chunk in data.chunks(MAX_DATA_FRAME) {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            let f = frame::data(self.id, 0, chunk);
            if self.frames.send(Outgoing::Frame(f)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-close: an empty DATA frame with FLAG_FIN (spdystream `Stream.Close`).
    pub(crate) async fn finish(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let f = frame::data(self.id, frame::FLAG_FIN, &[]);
            let _ = self.frames.send(Outgoing::Frame(f)).await;
        }
    }
}

enum Outgoing {
    Frame(BytesMut),
    Reply(u32),
}

/// Why a session ended other than by the client's GOAWAY or EOF.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("SPDY session I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error(transparent)]
    Headers(#[from] super::headers::HeaderError),
}

struct StreamEntry {
    data: Option<mpsc::Sender<Bytes>>,
    closed: Arc<AtomicBool>,
}

/// Serve one session on `io` until the client ends it. `accept` checks a new stream's headers
/// (an `Err` refuses it with RST_STREAM(CANCEL), as the kubelet does for a missing `port` or
/// `streamType`); accepted streams go to `accepted`.
pub(crate) async fn serve<IO, F>(
    io: IO,
    mut accept: F,
    accepted: mpsc::Sender<Incoming>,
) -> Result<(), SessionError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: FnMut(&HeaderBlock) -> Result<(), String>,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (frames, queue) = mpsc::channel::<Outgoing>(64);
    let writer = tokio::spawn(write_frames(wr, queue));
    let result = read_frames(&mut rd, &frames, &mut accept, &accepted).await;
    if let Err(e) = &result {
        tracing::debug!("SPDY session ends: {e}");
        let _ = frames
            .send(Outgoing::Frame(frame::goaway(0, frame::RST_PROTOCOL_ERROR)))
            .await;
    }
    drop(frames);
    // Streams still held by forwarders keep the writer's queue open; the connection is over,
    // so the writer goes with it.
    writer.abort();
    result
}

async fn write_frames<W: AsyncWrite + Unpin>(mut wr: W, mut queue: mpsc::Receiver<Outgoing>) {
    let mut deflater = Deflater::new();
    while let Some(out) = queue.recv().await {
        let bytes = match out {
            Outgoing::Frame(f) => f,
            Outgoing::Reply(id) => match deflater.compress(&HeaderBlock::new()) {
                Ok(block) => frame::syn_reply(id, 0, &block),
                Err(e) => {
                    tracing::debug!("SPDY reply headers: {e}");
                    return;
                }
            },
        };
        if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_frames<R, F>(
    rd: &mut R,
    frames: &mpsc::Sender<Outgoing>,
    accept: &mut F,
    accepted: &mpsc::Sender<Incoming>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    F: FnMut(&HeaderBlock) -> Result<(), String>,
{
    let mut inflater = Inflater::new();
    let mut streams: HashMap<u32, StreamEntry> = HashMap::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(f) = frame::split_frame(&mut buf) {
            match f {
                RawFrame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    let Some(entry) = streams.get_mut(&stream_id) else {
                        // A stream already reset or never opened: spdystream drops such frames.
                        continue;
                    };
                    if !data.is_empty()
                        && let Some(tx) = &entry.data
                        && tx.send(data).await.is_err()
                    {
                        entry.data = None;
                    }
                    if flags & frame::FLAG_FIN != 0 {
                        entry.data = None;
                    }
                }
                RawFrame::Control {
                    kind,
                    flags,
                    payload,
                    ..
                } => match kind {
                    frame::SYN_STREAM => {
                        let (syn, block) = frame::parse_syn_stream(&payload)?;
                        let headers = inflater.decompress(&block)?;
                        if streams.contains_key(&syn.stream_id) {
                            send(
                                frames,
                                frame::rst_stream(syn.stream_id, frame::RST_STREAM_IN_USE),
                            )
                            .await;
                            continue;
                        }
                        if let Err(why) = accept(&headers) {
                            tracing::debug!("SPDY stream {} refused: {why}", syn.stream_id);
                            send(frames, frame::rst_stream(syn.stream_id, frame::RST_CANCEL)).await;
                            continue;
                        }
                        let (tx, rx) = mpsc::channel(16);
                        let closed = Arc::new(AtomicBool::new(false));
                        let remote_done =
                            flags & (frame::FLAG_FIN | frame::FLAG_UNIDIRECTIONAL) != 0;
                        streams.insert(
                            syn.stream_id,
                            StreamEntry {
                                data: (!remote_done).then_some(tx),
                                closed: closed.clone(),
                            },
                        );
                        if frames.send(Outgoing::Reply(syn.stream_id)).await.is_err() {
                            return Ok(());
                        }
                        let incoming = Incoming {
                            id: syn.stream_id,
                            headers,
                            data: rx,
                            out: StreamWriter {
                                id: syn.stream_id,
                                frames: frames.clone(),
                                closed,
                            },
                        };
                        if accepted.send(incoming).await.is_err() {
                            return Ok(());
                        }
                    }
                    frame::RST_STREAM => {
                        let (id, _status) = frame::parse_two_words("RST_STREAM", &payload)?;
                        if let Some(entry) = streams.remove(&(id & 0x7fff_ffff)) {
                            entry.closed.store(true, Ordering::Release);
                        }
                    }
                    frame::PING => {
                        let id = frame::parse_ping(&payload)?;
                        // Echo the client's pings (odd ids); ours would be even.
                        if id & 1 == 1 {
                            send(frames, frame::ping(id)).await;
                        }
                    }
                    frame::GOAWAY => return Ok(()),
                    // Header blocks share one zlib stream: inflate them even when unused.
                    frame::SYN_REPLY | frame::HEADERS => {
                        let (_, block) = frame::parse_stream_headers("HEADERS", &payload)?;
                        inflater.decompress(&block)?;
                    }
                    // SETTINGS, WINDOW_UPDATE and unknown control frames: ignored (see the
                    // module doc on flow control; the draft says to ignore unknown types).
                    _ => {}
                },
            }
            // Forget streams that are finished both ways.
            streams.retain(|_, e| e.data.is_some() || !e.closed.load(Ordering::Acquire));
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn send(frames: &mpsc::Sender<Outgoing>, f: BytesMut) {
    let _ = frames.send(Outgoing::Frame(f)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::frame::header;

    fn syn_stream(d: &mut Deflater, id: u32, flags: u8, headers: &[(&str, &str)]) -> BytesMut {
        let block: HeaderBlock = headers
            .iter()
            .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
            .collect();
        let compressed = d.compress(&block).unwrap();
        let mut out = BytesMut::new();
        frame::put_control_header(&mut out, frame::SYN_STREAM, flags, 10 + compressed.len());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&compressed);
        out
    }

    async fn next_frame<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> RawFrame {
        loop {
            if let Some(f) = frame::split_frame(buf) {
                return f;
            }
            assert!(rd.read_buf(buf).await.unwrap() > 0, "session closed early");
        }
    }

    /// What kubectl 1.32 (client-go v0.32, spdystream v0.5.0, Go's compress/flate) sent on one
    /// forwarded connection, as this server read it off the wire during
    /// `tests/it/kubectl_port_forward.rs`: SYN_STREAM 1 (error stream), its empty DATA+FIN,
    /// SYN_STREAM 3 (data stream, header block compressed against the first), curl's request on
    /// stream 3 (here cut to its first line), and RST_STREAM(3, CANCEL) once the answer was read.
    const KUBECTL_FRAMES: &str = concat!(
        "800300010000003e0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb",
        "45e01c60616061c0c0c0c0590489c64c50f2663400000000ffff",
        "0000000101000000",
        "800300010000001800000003000000000000c2aa19540e2512d60b000000ffff",
        "000000030000000e474554202f20485454502f312e31",
        "80030003000000080000000300000005",
    );

    #[tokio::test]
    async fn reads_what_kubectl_sends() {
        let bytes: Vec<u8> = (0..KUBECTL_FRAMES.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&KUBECTL_FRAMES[i..i + 2], 16).unwrap())
            .collect();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (tx, mut rx) = mpsc::channel(4);
        let session = tokio::spawn(serve(server, |_: &HeaderBlock| Ok(()), tx));
        let (mut crd, mut cwr) = tokio::io::split(client);
        cwr.write_all(&bytes).await.unwrap();
        let mut error = rx.recv().await.unwrap();
        let mut data = rx.recv().await.unwrap();
        assert_eq!((error.id, data.id), (1, 3));
        for (s, kind) in [(&error, "error"), (&data, "data")] {
            assert_eq!(header(&s.headers, "streamType"), Some(kind));
            assert_eq!(header(&s.headers, "port"), Some("8080"));
            assert_eq!(header(&s.headers, "requestID"), Some("0"));
        }
        assert!(error.data.recv().await.is_none(), "the error stream's FIN");
        assert_eq!(&data.data.recv().await.unwrap()[..], b"GET / HTTP/1.1");
        assert!(data.data.recv().await.is_none(), "RST_STREAM ends the data");
        assert!(
            !data.out.send(b"late").await,
            "nothing is sent on a reset stream"
        );
        // Both streams got their SYN_REPLY, in order.
        let mut buf = BytesMut::new();
        for id in [1, 3] {
            let RawFrame::Control { kind, payload, .. } = next_frame(&mut crd, &mut buf).await
            else {
                panic!("expected SYN_REPLY");
            };
            assert_eq!(kind, frame::SYN_REPLY);
            assert_eq!(
                frame::parse_stream_headers("SYN_REPLY", &payload)
                    .unwrap()
                    .0,
                id
            );
        }
        drop(cwr);
        drop(crd);
        session.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn accepts_replies_echoes_pings_refuses_and_ends_on_goaway() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (tx, mut rx) = mpsc::channel(4);
        let session = tokio::spawn(serve(
            server,
            |h: &HeaderBlock| header(h, "port").map(|_| ()).ok_or("no port".into()),
            tx,
        ));
        let (mut crd, mut cwr) = tokio::io::split(client);
        let mut d = Deflater::new();
        let mut inflater = Inflater::new();
        let mut buf = BytesMut::new();

        cwr.write_all(&syn_stream(&mut d, 1, 0, &[("port", "80")]))
            .await
            .unwrap();
        let RawFrame::Control { kind, payload, .. } = next_frame(&mut crd, &mut buf).await else {
            panic!("expected SYN_REPLY");
        };
        assert_eq!(kind, frame::SYN_REPLY);
        let (id, block) = frame::parse_stream_headers("SYN_REPLY", &payload).unwrap();
        assert_eq!(id, 1);
        assert!(inflater.decompress(&block).unwrap().is_empty());
        let mut stream = rx.recv().await.unwrap();
        assert_eq!(header(&stream.headers, "port"), Some("80"));

        // Client data (split across writes) reaches the stream; the server's comes back.
        let d1 = frame::data(1, frame::FLAG_FIN, b"ping!");
        cwr.write_all(&d1[..3]).await.unwrap();
        cwr.write_all(&d1[3..]).await.unwrap();
        assert_eq!(&stream.data.recv().await.unwrap()[..], b"ping!");
        assert!(stream.data.recv().await.is_none(), "FIN ends the data");
        assert!(stream.out.send(b"pong").await);
        stream.out.finish().await;
        assert_eq!(
            next_frame(&mut crd, &mut buf).await,
            RawFrame::Data {
                stream_id: 1,
                flags: 0,
                data: Bytes::from_static(b"pong")
            }
        );
        assert_eq!(
            next_frame(&mut crd, &mut buf).await,
            RawFrame::Data {
                stream_id: 1,
                flags: frame::FLAG_FIN,
                data: Bytes::new()
            }
        );

        // A stream without the required header is reset (CANCEL); the context stays in sync.
        cwr.write_all(&syn_stream(&mut d, 3, 0, &[("streamtype", "data")]))
            .await
            .unwrap();
        let RawFrame::Control { kind, payload, .. } = next_frame(&mut crd, &mut buf).await else {
            panic!("expected RST_STREAM");
        };
        assert_eq!(kind, frame::RST_STREAM);
        assert_eq!(
            frame::parse_two_words("RST_STREAM", &payload).unwrap(),
            (3, frame::RST_CANCEL)
        );

        // Window updates and settings are ignored; pings from the client come back.
        let mut wu = BytesMut::new();
        frame::put_control_header(&mut wu, frame::WINDOW_UPDATE, 0, 8);
        wu.extend_from_slice(&[0, 0, 0, 5, 0, 1, 0, 0]);
        cwr.write_all(&wu).await.unwrap();
        cwr.write_all(&frame::ping(1)).await.unwrap();
        let RawFrame::Control { kind, payload, .. } = next_frame(&mut crd, &mut buf).await else {
            panic!("expected PING");
        };
        assert_eq!(
            (kind, frame::parse_ping(&payload).unwrap()),
            (frame::PING, 1)
        );

        // A second stream still decodes (the zlib context carried across frames).
        cwr.write_all(&syn_stream(&mut d, 5, 0, &[("port", "81")]))
            .await
            .unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(header(&second.headers, "port"), Some("81"));

        cwr.write_all(&frame::goaway(0, 0)).await.unwrap();
        session.await.unwrap().unwrap();
    }
}
