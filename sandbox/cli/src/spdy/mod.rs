//! SPDY/3.1, the stream multiplexing kubectl's port-forward speaks: over a plain HTTP/1.1
//! `Upgrade: SPDY/3.1`, or tunnelled in WebSocket binary messages (KEP-4006), both upgraded by
//! the core's API server. Only the server side, and only what port-forward needs
//! (`portforward.rs`).

mod dictionary;
mod frame;
mod headers;
pub(crate) mod portforward;
mod session;
