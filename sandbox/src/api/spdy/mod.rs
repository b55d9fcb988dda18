//! SPDY/3.1, the stream multiplexing kubectl's port-forward speaks: over a plain HTTP/1.1
//! `Upgrade: SPDY/3.1`, or tunnelled in WebSocket binary messages (KEP-4006). Only the server
//! side, and only what port-forward needs (`portforward.rs`: kubectl's two port-forward forms
//! on it). Feature `kubectl` (`../kubectl.rs`), all but the protocols' names: without the
//! feature the API server still tells kubectl's forms apart, to refuse them by name.

#[cfg(feature = "kubectl")]
pub(crate) mod dictionary;
#[cfg(feature = "kubectl")]
pub(crate) mod frame;
#[cfg(feature = "kubectl")]
pub(crate) mod headers;
#[cfg(feature = "kubectl")]
pub(crate) mod portforward;
#[cfg(feature = "kubectl")]
pub(crate) mod session;

/// apimachinery `spdy.HeaderSpdy31`.
pub(crate) const SPDY_31: &str = "SPDY/3.1";
/// The WebSocket subprotocol of the tunnelled form (apimachinery
/// `pkg/util/portforward/constants.go`, `WebsocketsSPDYTunnelingPortForwardV1`).
pub(crate) const TUNNELING_V1: &str = "SPDY/3.1+portforward.k8s.io";
/// `WebsocketsSPDYTunnelingPrefix` (same file).
pub(crate) const TUNNELING_PREFIX: &str = "SPDY/3.1+";
