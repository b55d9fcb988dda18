//! The Istio custom resources the sandbox serves once Istio is installed, with every version
//! the workshop's manifests (v1alpha3, v1beta1) and current releases (v1) use. All versions of
//! a kind share one storage, as a CRD's versions do, so an object applied as v1alpha3 reads
//! back as v1.

use crate::store::{GroupResource, ResourceType};

/// Networking API group.
pub const NETWORKING: &str = "networking.istio.io";
/// Security API group.
pub const SECURITY: &str = "security.istio.io";
/// Telemetry API group (istio/istio@1.28.0 manifests/charts/base/files/crd-all.gen.yaml:
/// `telemetries.telemetry.istio.io`, versions v1alpha1 and v1, short name `telemetry`).
pub const TELEMETRY: &str = "telemetry.istio.io";

/// `(group, versions, kind, plural, short names)` of a served kind.
type Kind = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Every served kind.
const KINDS: &[Kind] = &[
    (
        NETWORKING,
        &["v1alpha3", "v1beta1", "v1"],
        "Gateway",
        "gateways",
        &["gw"],
    ),
    (
        NETWORKING,
        &["v1alpha3", "v1beta1", "v1"],
        "VirtualService",
        "virtualservices",
        &["vs"],
    ),
    (
        NETWORKING,
        &["v1alpha3", "v1beta1", "v1"],
        "DestinationRule",
        "destinationrules",
        &["dr"],
    ),
    (
        NETWORKING,
        &["v1alpha3", "v1beta1", "v1"],
        "ServiceEntry",
        "serviceentries",
        &["se"],
    ),
    (
        SECURITY,
        &["v1beta1", "v1"],
        "PeerAuthentication",
        "peerauthentications",
        &["pa"],
    ),
    (
        SECURITY,
        &["v1beta1", "v1"],
        "AuthorizationPolicy",
        "authorizationpolicies",
        &["ap"],
    ),
    (
        TELEMETRY,
        &["v1alpha1", "v1"],
        "Telemetry",
        "telemetries",
        &["telemetry"],
    ),
];

/// Every resource type (one per kind and version) Istio's CRDs serve.
pub fn resource_types() -> Vec<ResourceType> {
    let mut out = Vec::new();
    for (group, versions, kind, plural, short) in KINDS {
        for version in *versions {
            let mut t = ResourceType::custom(group, version, kind, plural, true, short);
            t.categories = vec![
                "istio-io".to_string(),
                format!("{}-istio-io", group.split('.').next().unwrap_or_default()),
            ];
            out.push(t);
        }
    }
    out
}

/// Storage identities the mesh reads.
pub fn gateways() -> GroupResource {
    GroupResource::new(NETWORKING, "gateways")
}
pub fn virtual_services() -> GroupResource {
    GroupResource::new(NETWORKING, "virtualservices")
}
pub fn destination_rules() -> GroupResource {
    GroupResource::new(NETWORKING, "destinationrules")
}
pub fn service_entries() -> GroupResource {
    GroupResource::new(NETWORKING, "serviceentries")
}
pub fn peer_authentications() -> GroupResource {
    GroupResource::new(SECURITY, "peerauthentications")
}
pub fn authorization_policies() -> GroupResource {
    GroupResource::new(SECURITY, "authorizationpolicies")
}
pub fn telemetries() -> GroupResource {
    GroupResource::new(TELEMETRY, "telemetries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workshop_version_is_served() {
        let types = resource_types();
        let has = |g: &str, v: &str, k: &str| {
            types
                .iter()
                .any(|t| t.group == g && t.version == v && t.kind == k)
        };
        assert!(has(NETWORKING, "v1alpha3", "Gateway"));
        assert!(has(NETWORKING, "v1alpha3", "VirtualService"));
        assert!(has(NETWORKING, "v1", "DestinationRule"));
        assert!(has(SECURITY, "v1beta1", "PeerAuthentication"));
        assert!(has(SECURITY, "v1", "AuthorizationPolicy"));
        assert!(has(TELEMETRY, "v1", "Telemetry"));
        assert!(has(TELEMETRY, "v1alpha1", "Telemetry"));
        assert!(types.iter().all(|t| !t.builtin && t.namespaced));
    }
}
