//! SPDY/3.1, the stream multiplexing kubectl's port-forward speaks: over a plain HTTP/1.1
//! `Upgrade: SPDY/3.1`, or tunnelled in WebSocket binary messages (KEP-4006). Only the server
//! side, and only what port-forward needs.

pub mod dictionary;
pub mod frame;
pub mod headers;
pub mod session;
