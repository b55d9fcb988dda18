//! Where an object of a manifest goes: its kind resolved to an API resource through discovery
//! (or anything that can look kinds up), and the namespace it lands in.

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, Discovery, Scope};

use crate::error::{Error, Result};
use crate::manifests::Manifest;

/// Looks a kind up among what the cluster serves.
pub trait KindLookup {
    /// The resource and its capabilities, `None` when the cluster does not serve the kind.
    fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, ApiCapabilities)>;
}

impl<S: std::hash::BuildHasher> KindLookup
    for std::collections::HashMap<GroupVersionKind, (ApiResource, ApiCapabilities), S>
{
    fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, ApiCapabilities)> {
        self.get(gvk).cloned()
    }
}

impl KindLookup for Discovery {
    fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, ApiCapabilities)> {
        self.resolve_gvk(gvk)
    }
}

/// Where one object is applied or deleted.
#[derive(Debug, Clone)]
pub struct Target {
    /// The API resource serving the object's kind.
    pub resource: ApiResource,
    /// The namespace, `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl Target {
    /// `Deployment service-a in istioinaction` / `Namespace istioinaction`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {} in {ns}", self.resource.kind, self.name),
            None => format!("{} {}", self.resource.kind, self.name),
        }
    }
}

/// The namespace an object lands in: none for cluster-scoped kinds; its own if it names one
/// (peer-auth-strict.yaml does); else the default the step gives.
pub fn target_namespace(
    own: Option<&str>,
    scope: &Scope,
    default_namespace: &str,
) -> Option<String> {
    match scope {
        Scope::Cluster => None,
        Scope::Namespaced => Some(own.unwrap_or(default_namespace).to_string()),
    }
}

/// Resolves a manifest's kind and namespace; a kind the cluster does not serve is an error
/// naming the file, the document and the kind.
pub fn resolve_target(
    manifest: &Manifest,
    lookup: &(impl KindLookup + ?Sized),
    default_namespace: &str,
) -> Result<Target> {
    let gvk = manifest.gvk();
    let (resource, caps) = lookup.resolve(&gvk).ok_or_else(|| Error::UnknownKind {
        object: manifest.describe(),
        api_version: manifest.api_version().to_string(),
        kind: manifest.kind().to_string(),
    })?;
    Ok(Target {
        namespace: target_namespace(manifest.namespace(), &caps.scope, default_namespace),
        name: manifest.name().to_string(),
        resource,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifests::parse_documents;
    use std::collections::HashMap;
    use std::path::Path;

    /// A fake cluster serving a fixed set of kinds.
    pub(crate) struct FakeLookup(HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>);

    impl FakeLookup {
        pub(crate) fn new(kinds: &[(&str, &str, &str, &str, Scope)]) -> Self {
            FakeLookup(
                kinds
                    .iter()
                    .map(|(g, v, k, plural, scope)| {
                        let gvk = GroupVersionKind::gvk(g, v, k);
                        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
                        let caps = ApiCapabilities {
                            scope: scope.clone(),
                            subresources: vec![],
                            operations: vec![],
                        };
                        (gvk, (ar, caps))
                    })
                    .collect(),
            )
        }
    }

    impl KindLookup for FakeLookup {
        fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, ApiCapabilities)> {
            self.0.get(gvk).cloned()
        }
    }

    fn core_cluster() -> FakeLookup {
        FakeLookup::new(&[
            (
                "",
                "v1",
                "ServiceAccount",
                "serviceaccounts",
                Scope::Namespaced,
            ),
            ("", "v1", "Service", "services", Scope::Namespaced),
            ("", "v1", "Namespace", "namespaces", Scope::Cluster),
            ("apps", "v1", "Deployment", "deployments", Scope::Namespaced),
            (
                "security.istio.io",
                "v1beta1",
                "PeerAuthentication",
                "peerauthentications",
                Scope::Namespaced,
            ),
        ])
    }

    const MIXED: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: service-a
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istioinaction
---
apiVersion: v1
kind: Namespace
metadata:
  name: other
  namespace: ignored
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: service-a-gateway
";

    #[test]
    fn namespaces_are_filled_kept_or_dropped() {
        let m = parse_documents(Path::new("manifests/mixed.yaml"), MIXED).unwrap();
        let lookup = core_cluster();
        let sa = resolve_target(&m[0], &lookup, "default").unwrap();
        assert_eq!(sa.namespace.as_deref(), Some("default"), "filled in");
        assert_eq!(sa.resource.plural, "serviceaccounts");
        assert_eq!(sa.describe(), "ServiceAccount service-a in default");
        let pa = resolve_target(&m[1], &lookup, "default").unwrap();
        assert_eq!(
            pa.namespace.as_deref(),
            Some("istioinaction"),
            "its own kept"
        );
        assert_eq!(pa.resource.group, "security.istio.io");
        let ns = resolve_target(&m[2], &lookup, "default").unwrap();
        assert_eq!(ns.namespace, None, "cluster-scoped");
    }

    #[test]
    fn unknown_kind_names_file_document_and_kind() {
        let m = parse_documents(Path::new("manifests/mixed.yaml"), MIXED).unwrap();
        let err = resolve_target(&m[3], &core_cluster(), "default").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::UnknownKind { .. }));
        assert!(msg.contains("manifests/mixed.yaml"), "{msg}");
        assert!(msg.contains("document 4"), "{msg}");
        assert!(msg.contains("kind Gateway"), "{msg}");
        assert!(msg.contains("networking.istio.io/v1alpha3"), "{msg}");
    }

    #[test]
    fn version_matters() {
        // v1 served, v1beta1 asked for: not the same kind
        let lookup = FakeLookup::new(&[(
            "security.istio.io",
            "v1",
            "PeerAuthentication",
            "peerauthentications",
            Scope::Namespaced,
        )]);
        let m = parse_documents(Path::new("x.yaml"), MIXED).unwrap();
        assert!(resolve_target(&m[1], &lookup, "default").is_err());
    }
}
