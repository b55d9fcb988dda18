//! The table of resource types the API server serves. Data-driven so that other parts (the Istio
//! half) can register their custom resources with one call instead of touching the router.

use std::sync::{Arc, RwLock};

/// A group and plural name: the storage identity of a resource, shared by all its versions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One served group/version/kind, as discovery lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Subresources such as `status`, `log`, `exec`, `portforward`, `scale`.
    pub subresources: Vec<String>,
    pub categories: Vec<String>,
    /// Built-in types merge lists by key (strategic merge, apply); custom resources treat lists
    /// as atomic, like the API server does for CRDs without list-type markers.
    pub builtin: bool,
}

impl ResourceType {
    fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: Vec::new(),
            subresources: Vec::new(),
            categories: Vec::new(),
            builtin: true,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn sub(mut self, names: &[&str]) -> Self {
        self.subresources = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn all(mut self) -> Self {
        self.categories = vec!["all".to_string()];
        self
    }

    /// A custom resource type (lists atomic, `status` subresource optional).
    pub fn custom(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short_names: &[&str],
    ) -> Self {
        let mut t = Self::new(group, version, kind, plural, namespaced).short(short_names);
        t.builtin = false;
        t
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }
}

/// The registry: built-in Kubernetes types at start, custom types added later.
#[derive(Debug)]
pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in types the workshop needs.
    pub fn new() -> Self {
        let core = |kind: &str, plural: &str, namespaced: bool| {
            ResourceType::new("", "v1", kind, plural, namespaced)
        };
        let types = vec![
            core("Namespace", "namespaces", false)
                .short(&["ns"])
                .sub(&["status", "finalize"]),
            core("Pod", "pods", true)
                .short(&["po"])
                .sub(&["status", "log", "exec", "portforward"])
                .all(),
            core("Service", "services", true)
                .short(&["svc"])
                .sub(&["status"])
                .all(),
            core("Endpoints", "endpoints", true).short(&["ep"]),
            core("ServiceAccount", "serviceaccounts", true).short(&["sa"]),
            core("ConfigMap", "configmaps", true).short(&["cm"]),
            core("Secret", "secrets", true),
            core("Event", "events", true).short(&["ev"]),
            core("Node", "nodes", false).short(&["no"]).sub(&["status"]),
            ResourceType::new("apps", "v1", "Deployment", "deployments", true)
                .short(&["deploy"])
                .sub(&["status", "scale"])
                .all(),
            ResourceType::new("apps", "v1", "ReplicaSet", "replicasets", true)
                .short(&["rs"])
                .sub(&["status", "scale"])
                .all(),
            ResourceType::new(
                "discovery.k8s.io",
                "v1",
                "EndpointSlice",
                "endpointslices",
                true,
            ),
        ];
        Self {
            types: RwLock::new(types.into_iter().map(Arc::new).collect()),
        }
    }

    /// Serve another type (for example an Istio CRD version). Re-registering the same
    /// group/version/plural replaces the entry.
    pub fn register(&self, t: ResourceType) {
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        types.retain(|o| !(o.group == t.group && o.version == t.version && o.plural == t.plural));
        types.push(Arc::new(t));
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The type served at `/api(s)/GROUP/VERSION/PLURAL`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Whether anything is served under GROUP/VERSION.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.all()
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    /// The groups with their versions, newest-registered first within a group as the
    /// preferred version is the first listed one.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all() {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Any served type with this group and plural (for storage-level decisions).
    pub fn by_group_resource(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .find(|t| t.group == gr.group && t.plural == gr.resource)
    }
}

/// Kubernetes' version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let num_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major = rest[..num_end].parse().unwrap_or(0);
    let tail = &rest[num_end..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_version_is_ga() {
        let r = Registry::new();
        for v in ["v1alpha3", "v1", "v1beta1"] {
            r.register(ResourceType::custom(
                "networking.istio.io",
                v,
                "VirtualService",
                "virtualservices",
                true,
                &["vs"],
            ));
        }
        let groups = r.groups();
        let (_, versions) = groups
            .iter()
            .find(|(g, _)| g == "networking.istio.io")
            .unwrap();
        assert_eq!(versions, &["v1", "v1beta1", "v1alpha3"]);
        assert!(
            r.lookup("networking.istio.io", "v1alpha3", "virtualservices")
                .is_some()
        );
        assert!(
            r.lookup("networking.istio.io", "v2", "virtualservices")
                .is_none()
        );
    }
}
