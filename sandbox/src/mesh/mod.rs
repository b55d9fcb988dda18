//! The sandbox's Istio half: what `istioctl install --set profile=demo` gives a reader, on
//! real Envoy. istiod's job (CA, injection, translation of Kubernetes and Istio objects into
//! Envoy configuration, delivery by file-based xDS) runs in-process; every proxy (sidecars and
//! gateways) is a real `envoy` process.
//!
//! The mesh core (install, crds, ca, envoy, inject, proxy, paths, xds, translate, model) and the
//! authorization, telemetry, capture and Prometheus parts (authz, telemetry, capture,
//! prometheus) meet only at the functions documented in `authz.rs`, `telemetry/mod.rs`,
//! `tcpdump.rs` and `prometheus.rs`.

pub mod authz;
pub mod prometheus;
pub mod tcpdump;
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
/// (`crates/provision/src/istio/releases.rs`, `PINNED_DEFAULT`), so image tags and version-dependent behaviour
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

/// The hub `happy-sandbox up` and [`crate::Sandbox::install_istio`] install from: where every
/// Istio release's images are pushed (istio/release-builder `release/publish.sh`,
/// `DOCKER_HUB=${DOCKER_HUB:-docker.io/istio}`, branches release-1.29 to release-1.31). The
/// suite passes its own ([`crate::Sandbox::install_istio_from`]), so a pull fault on a hub
/// hits the control plane as it would on kind.
pub const DEFAULT_HUB: &str = "docker.io/istio";

/// The hubs that carry [`ISTIO_VERSION`]'s images: `docker.io/istio` only. istio.io blog
/// `2026/retirement-of-gcp` (2026-08-21): "Starting with Istio 1.31, we will only publish Istio
/// container images to `docker.io/istio`" and 1.31 "will **not** have … images published to
/// `gcr.io/istio-release`" (which `registry.istio.io/release` proxies, blog
/// `2026/retirement-of-gcr.io-follow-up`). istio/release-builder release-1.31
/// `release/publish.sh:49,81-87` (branch head of 2026-08-20) still pushed a copy to
/// `gcr.io/istio-release`; the later announcement is followed here, and whether 1.31.1 is on the
/// mirror could not be confirmed. A mirror laid out like Docker Hub's (`…/istio`) also serves
/// them (see [`proxy::is_istio_image`]).
pub const RELEASE_HUBS: [&str; 1] = [DEFAULT_HUB];

/// The proxy image of [`ISTIO_VERSION`] on `hub`, as Istio's charts and injector name it:
/// `{{ .Values.global.hub }}/proxyv2:{{ .Values.global.tag }}` (istio/istio@1.31.0-rc.0
/// `pkg/kube/inject/inject.go` `ProxyImage`/`imageURL`: `hub + "/" + imageName + ":" + tag`;
/// `manifests/charts/gateways/istio-ingress/templates/deployment.yaml:83` for the gateways).
pub fn proxy_image(hub: &str) -> String {
    format!("{hub}/proxyv2:{ISTIO_VERSION}")
}

/// The istiod image of [`ISTIO_VERSION`] on `hub` (istio/istio@1.31.0-rc.0
/// `manifests/charts/istio-control/istio-discovery/templates/deployment.yaml:101`,
/// `{{ .Values.hub | default .Values.global.hub }}/{{ .Values.image | default "pilot" }}:…`).
pub fn pilot_image(hub: &str) -> String {
    format!("{hub}/pilot:{ISTIO_VERSION}")
}
