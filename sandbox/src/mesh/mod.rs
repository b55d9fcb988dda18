//! The sandbox's Istio half: what `istioctl install --set profile=demo` gives a reader, on
//! real Envoy. istiod's job (CA, injection, translation of Kubernetes and Istio objects into
//! Envoy configuration, delivery by file-based xDS) runs in-process; every proxy (sidecars and
//! gateways) is a real `envoy` process.
//!
//! The mesh core (install, crds, ca, envoy, inject, proxy, paths, xds, translate, model) and the
//! authorization, telemetry, capture and Prometheus parts (authz, telemetry, capture,
//! prometheus) meet only at the functions documented in `authz.rs`, `telemetry/mod.rs`,
//! `capture.rs` and `prometheus.rs`.

pub mod authz;
pub mod capture;
pub mod prometheus;
pub mod telemetry;

pub mod ca;
pub mod crds;
pub mod envoy;
pub mod inject;
pub mod install;
pub mod model;
pub mod paths;
pub mod proxy;
pub mod translate;
pub mod xds;

pub use envoy::envoy_unavailable_reason;
pub use xds::Mesh;

/// The Istio release the sandbox stands in for: the suite's pinned default
/// (`src/istio/releases.rs`, `PINNED_DEFAULT`), so image tags and version-dependent behaviour
/// (native sidecars, the mirror host suffix) match what that release does.
pub const ISTIO_VERSION: &str = "1.31.1";

/// Istio's root namespace: mesh-wide PeerAuthentication and AuthorizationPolicy live here.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The trust domain of every SPIFFE identity.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// `(major, minor)` of [`ISTIO_VERSION`].
pub fn istio_minor() -> (u32, u32) {
    let mut parts = ISTIO_VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(1), parts.next().unwrap_or(0))
}

/// The proxy image of [`ISTIO_VERSION`].
pub fn proxy_image() -> String {
    format!("docker.io/istio/proxyv2:{ISTIO_VERSION}")
}

/// The istiod image of [`ISTIO_VERSION`].
pub fn pilot_image() -> String {
    format!("docker.io/istio/pilot:{ISTIO_VERSION}")
}
