//! SPDY/3.1 frames on the wire: the 8-byte control and data frame headers, the control frames a
//! port-forward session meets, and the (uncompressed) name/value header block.
//!
//! Layouts as SPDY Protocol Draft 3 (sections 2.2, 2.6) defines them and as moby/spdystream
//! v0.5.0 `spdy/read.go` and `spdy/write.go` read and write them (the framer kubectl 1.32 and
//! the kubelet use): a control frame is `1 | version(15) | type(16) | flags(8) | length(24)`,
//! a data frame `0 | stream-id(31) | flags(8) | length(24)`; header block lengths are 32-bit.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version in every control frame (spdystream `spdy.Version`).
pub(crate) const VERSION: u16 = 3;

/// Control frame types (spdystream `spdy/types.go`).
pub(crate) const SYN_STREAM: u16 = 1;
pub(crate) const SYN_REPLY: u16 = 2;
pub(crate) const RST_STREAM: u16 = 3;
pub(crate) const PING: u16 = 6;
pub(crate) const GOAWAY: u16 = 7;
pub(crate) const HEADERS: u16 = 8;
/// Ignored when it arrives (`session.rs`); its tests send one.
#[cfg(test)]
pub(crate) const WINDOW_UPDATE: u16 = 9;

/// FLAG_FIN on control and data frames; FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub(crate) const FLAG_FIN: u8 = 0x01;
pub(crate) const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here (spdystream `RstStreamStatus`: PROTOCOL_ERROR = 1 …).
pub(crate) const RST_PROTOCOL_ERROR: u32 = 1;
pub(crate) const RST_CANCEL: u32 = 5;
pub(crate) const RST_STREAM_IN_USE: u32 = 8;

/// A header block: lower-case names, each with its values (joined by NUL on the wire).
pub(crate) type HeaderBlock = Vec<(String, Vec<String>)>;

/// One frame read off the wire; header blocks are still compressed (the session's
/// [`super::headers::Inflater`] must see every block in order to keep its zlib context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawFrame {
    Control {
        version: u16,
        kind: u16,
        flags: u8,
        payload: Bytes,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
}

/// Take one whole frame off the front of `buf`, or `None` while it is incomplete.
pub(crate) fn split_frame(buf: &mut BytesMut) -> Option<RawFrame> {
    if buf.len() < 8 {
        return None;
    }
    let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let flags = buf[4];
    let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + length {
        buf.reserve(8 + length - buf.len());
        return None;
    }
    buf.advance(8);
    let payload = buf.split_to(length).freeze();
    Some(if word & 0x8000_0000 != 0 {
        RawFrame::Control {
            version: ((word >> 16) & 0x7fff) as u16,
            kind: (word & 0xffff) as u16,
            flags,
            payload,
        }
    } else {
        RawFrame::Data {
            stream_id: word & 0x7fff_ffff,
            flags,
            data: payload,
        }
    })
}

/// The 8-byte header of a control frame.
pub(crate) fn put_control_header(out: &mut BytesMut, kind: u16, flags: u8, length: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | (length as u32 & 0x00ff_ffff));
}

/// A DATA frame for `stream_id` (at most 2^24 - 1 bytes of `data`: the length is 24 bits,
/// spdystream `MaxDataLength`).
pub(crate) fn data(stream_id: u32, flags: u8, data: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(8 + data.len());
    out.put_u32(stream_id & 0x7fff_ffff);
    out.put_u32((u32::from(flags) << 24) | (data.len() as u32 & 0x00ff_ffff));
    out.put_slice(data);
    out
}

/// A SYN_REPLY frame carrying an already compressed header block.
pub(crate) fn syn_reply(stream_id: u32, flags: u8, compressed_headers: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(12 + compressed_headers.len());
    put_control_header(&mut out, SYN_REPLY, flags, 4 + compressed_headers.len());
    out.put_u32(stream_id & 0x7fff_ffff);
    out.put_slice(compressed_headers);
    out
}

/// A RST_STREAM frame.
pub(crate) fn rst_stream(stream_id: u32, status: u32) -> BytesMut {
    let mut out = BytesMut::with_capacity(16);
    put_control_header(&mut out, RST_STREAM, 0, 8);
    out.put_u32(stream_id & 0x7fff_ffff);
    out.put_u32(status);
    out
}

/// A PING frame (a reply echoes the peer's id).
pub(crate) fn ping(id: u32) -> BytesMut {
    let mut out = BytesMut::with_capacity(12);
    put_control_header(&mut out, PING, 0, 4);
    out.put_u32(id);
    out
}

/// A GOAWAY frame.
pub(crate) fn goaway(last_good_stream_id: u32, status: u32) -> BytesMut {
    let mut out = BytesMut::with_capacity(16);
    put_control_header(&mut out, GOAWAY, 0, 8);
    out.put_u32(last_good_stream_id & 0x7fff_ffff);
    out.put_u32(status);
    out
}

/// The fixed fields of a SYN_STREAM payload before its header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SynStream {
    pub stream_id: u32,
    pub associated_to: u32,
    pub priority: u8,
}

/// Split a SYN_STREAM payload into its fixed fields and its compressed header block.
pub(crate) fn parse_syn_stream(payload: &Bytes) -> Result<(SynStream, Bytes), FrameError> {
    if payload.len() < 10 {
        return Err(FrameError::Short("SYN_STREAM", payload.len()));
    }
    let mut p = payload.clone();
    let stream_id = p.get_u32() & 0x7fff_ffff;
    let associated_to = p.get_u32() & 0x7fff_ffff;
    let priority = p.get_u8() >> 5;
    let _slot = p.get_u8();
    if stream_id == 0 {
        return Err(FrameError::ZeroStreamId("SYN_STREAM"));
    }
    Ok((
        SynStream {
            stream_id,
            associated_to,
            priority,
        },
        p,
    ))
}

/// The stream id and compressed header block of a SYN_REPLY or HEADERS payload.
pub(crate) fn parse_stream_headers(
    what: &'static str,
    payload: &Bytes,
) -> Result<(u32, Bytes), FrameError> {
    if payload.len() < 4 {
        return Err(FrameError::Short(what, payload.len()));
    }
    let mut p = payload.clone();
    Ok((p.get_u32() & 0x7fff_ffff, p))
}

/// Two big-endian 32-bit words (RST_STREAM, GOAWAY, WINDOW_UPDATE: 8 bytes exactly).
pub(crate) fn parse_two_words(
    what: &'static str,
    payload: &Bytes,
) -> Result<(u32, u32), FrameError> {
    if payload.len() != 8 {
        return Err(FrameError::Short(what, payload.len()));
    }
    let mut p = payload.clone();
    Ok((p.get_u32(), p.get_u32()))
}

/// The id of a PING payload (4 bytes).
pub(crate) fn parse_ping(payload: &Bytes) -> Result<u32, FrameError> {
    if payload.len() != 4 {
        return Err(FrameError::Short("PING", payload.len()));
    }
    let mut p = payload.clone();
    Ok(p.get_u32())
}

/// Encode a header block (before compression): count, then length-prefixed names and
/// NUL-joined values, all lengths 32-bit (spdystream `writeHeaderValueBlock`).
pub(crate) fn encode_header_block(headers: &HeaderBlock) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u32(headers.len() as u32);
    for (name, values) in headers {
        let name = name.to_ascii_lowercase();
        out.put_u32(name.len() as u32);
        out.put_slice(name.as_bytes());
        let value = values.join("\0");
        out.put_u32(value.len() as u32);
        out.put_slice(value.as_bytes());
    }
    out
}

/// Decode an (uncompressed) header block. Names are lower-cased as spdystream does
/// (`parseHeaderValueBlock`); Go's clients send `http.Header` keys such as `Streamtype`
/// lower-cased on the wire.
pub(crate) fn decode_header_block(block: &[u8]) -> Result<HeaderBlock, FrameError> {
    let mut p = block;
    let count = take_u32(&mut p)?;
    let mut headers = HeaderBlock::new();
    for _ in 0..count {
        let name = take_str(&mut p)?.to_ascii_lowercase();
        let value = take_str(&mut p)?;
        headers.push((name, value.split('\0').map(String::from).collect()));
    }
    Ok(headers)
}

/// The first value of header `name` (case-insensitive).
pub(crate) fn header<'a>(headers: &'a HeaderBlock, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

fn take_u32(p: &mut &[u8]) -> Result<u32, FrameError> {
    if p.len() < 4 {
        return Err(FrameError::HeaderBlock);
    }
    Ok(p.get_u32())
}

fn take_str(p: &mut &[u8]) -> Result<String, FrameError> {
    let len = take_u32(p)? as usize;
    if p.len() < len {
        return Err(FrameError::HeaderBlock);
    }
    let (s, rest) = p.split_at(len);
    *p = rest;
    String::from_utf8(s.to_vec()).map_err(|_| FrameError::HeaderBlock)
}

/// A frame that cannot be understood: the session ends with GOAWAY(PROTOCOL_ERROR).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    #[error("SPDY {0} frame too short ({1} bytes)")]
    Short(&'static str, usize),
    #[error("SPDY {0} frame with stream id 0")]
    ZeroStreamId(&'static str),
    #[error("malformed SPDY header block")]
    HeaderBlock,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frame_header_layout() {
        // RST_STREAM(stream 5, CANCEL): 80 03 00 03 | 00 00 00 08 | 00 00 00 05 | 00 00 00 05,
        // the bytes spdystream's RstStreamFrame.write produces for SPDY/3.
        assert_eq!(
            &rst_stream(5, RST_CANCEL)[..],
            &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5]
        );
        assert_eq!(&ping(2)[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]);
        assert_eq!(
            &goaway(7, 0)[..],
            &[0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0]
        );
    }

    #[test]
    fn data_frame_layout_and_split() {
        let mut buf = data(3, FLAG_FIN, b"hello");
        assert_eq!(&buf[..8], &[0, 0, 0, 3, 1, 0, 0, 5]);
        // spdystream's zero-stream fixture for an empty DATA frame ("AAAAAAAAAAA="; SPDY/2-era,
        // but data frames kept their layout in SPDY/3).
        assert_eq!(&data(0, 0, b"")[..], &[0u8; 8]);
        let mut partial = BytesMut::from(&buf[..10]);
        assert_eq!(split_frame(&mut partial), None);
        assert_eq!(
            split_frame(&mut buf),
            Some(RawFrame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello")
            })
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn control_frame_split_reads_version_type_flags() {
        let mut buf = BytesMut::new();
        put_control_header(&mut buf, SYN_STREAM, FLAG_FIN, 2);
        buf.put_slice(&[9, 9]);
        buf.put_slice(&ping(1));
        let first = split_frame(&mut buf);
        assert_eq!(
            first,
            Some(RawFrame::Control {
                version: 3,
                kind: SYN_STREAM,
                flags: FLAG_FIN,
                payload: Bytes::from_static(&[9, 9])
            })
        );
        let Some(RawFrame::Control { kind, payload, .. }) = split_frame(&mut buf) else {
            panic!("no PING frame");
        };
        assert_eq!((kind, parse_ping(&payload)), (PING, Ok(1)));
    }

    #[test]
    fn header_block_round_trip_lowercases_names() {
        let headers: HeaderBlock = vec![
            ("Streamtype".into(), vec!["error".into()]),
            ("port".into(), vec!["8080".into()]),
            ("requestid".into(), vec!["0".into(), "1".into()]),
        ];
        let block = encode_header_block(&headers);
        assert_eq!(&block[..4], &[0, 0, 0, 3]);
        assert_eq!(&block[4..18], b"\0\0\0\x0astreamtype");
        let decoded = decode_header_block(&block).unwrap();
        assert_eq!(header(&decoded, "streamType"), Some("error"));
        assert_eq!(header(&decoded, "PORT"), Some("8080"));
        assert_eq!(decoded[2].1, vec!["0".to_string(), "1".to_string()]);
        assert_eq!(
            decode_header_block(&block[..block.len() - 1]),
            Err(FrameError::HeaderBlock)
        );
    }

    #[test]
    fn syn_stream_fields_and_zero_id() {
        let payload = Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 0, 0xe0, 0, 0xaa]);
        let (syn, rest) = parse_syn_stream(&payload).unwrap();
        assert_eq!(
            syn,
            SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 7
            }
        );
        assert_eq!(&rest[..], &[0xaa]);
        let zero = Bytes::from_static(&[0; 10]);
        assert_eq!(
            parse_syn_stream(&zero),
            Err(FrameError::ZeroStreamId("SYN_STREAM"))
        );
    }
}
