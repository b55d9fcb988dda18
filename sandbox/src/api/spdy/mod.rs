//! SPDY/3.1, the stream multiplexing kubectl's port-forward speaks: over a plain HTTP/1.1
//! `Upgrade: SPDY/3.1`, or tunnelled in WebSocket binary messages (KEP-4006). The API server
//! tells kubectl's forms apart by these names and negotiates the upgrade (`upgrade.rs`); the
//! session itself is served by the kubectl protocols (`../kubectl.rs`), or the upgrade refused
//! by name without them.

pub(crate) mod upgrade;

/// apimachinery `spdy.HeaderSpdy31`.
pub(crate) const SPDY_31: &str = "SPDY/3.1";
/// The WebSocket subprotocol of the tunnelled form (apimachinery
/// `pkg/util/portforward/constants.go`, `WebsocketsSPDYTunnelingPortForwardV1`).
pub(crate) const TUNNELING_V1: &str = "SPDY/3.1+portforward.k8s.io";
/// `WebsocketsSPDYTunnelingPrefix` (same file).
pub(crate) const TUNNELING_PREFIX: &str = "SPDY/3.1+";
