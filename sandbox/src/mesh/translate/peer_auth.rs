//! PeerAuthentication: which mTLS mode a workload's inbound port runs. Istio's precedence:
//! a workload-selector policy in the workload's namespace, else the namespace-wide policy
//! (no selector), else the mesh-wide one in the root namespace, else PERMISSIVE; `UNSET` (or
//! no `mtls`) inherits from the next level; `portLevelMtls` applies to selector policies only.

use std::collections::BTreeMap;

use serde_json::Value;

use super::input::Warning;
use crate::mesh::ROOT_NAMESPACE;
use crate::mesh::model::{selector_of, selects};

/// An inbound port's mTLS mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MtlsMode {
    /// Only mutual TLS from the mesh.
    Strict,
    /// Mutual TLS and plaintext (the default).
    Permissive,
    /// Plaintext only.
    Disable,
}

fn parse_mode(v: &Value, policy: &Value, warnings: &mut Vec<Warning>) -> Option<MtlsMode> {
    match v.as_str() {
        None | Some("UNSET") => None,
        Some("STRICT") => Some(MtlsMode::Strict),
        Some("PERMISSIVE") => Some(MtlsMode::Permissive),
        Some("DISABLE") => Some(MtlsMode::Disable),
        Some(other) => {
            warnings.push(Warning::about(
                policy,
                format!("mtls mode {other:?} is not a PeerAuthentication mode; treated as UNSET"),
            ));
            None
        }
    }
}

/// The mode for `port` of a workload in `namespace` with `labels`, given every
/// PeerAuthentication (oldest first) and where unsupported fields are reported.
pub(crate) fn mode_for(
    policies: &[Value],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    port: Option<u16>,
    warnings: &mut Vec<Warning>,
) -> MtlsMode {
    let has_selector = |p: &Value| {
        p["spec"]["selector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    };
    let workload = policies.iter().find(|p| {
        p["metadata"]["namespace"] == namespace
            && has_selector(p)
            && selects(&selector_of(&p["spec"]["selector"]), labels)
    });
    let namespace_wide = policies
        .iter()
        .find(|p| p["metadata"]["namespace"] == namespace && !has_selector(p));
    let mesh_wide = policies
        .iter()
        .find(|p| p["metadata"]["namespace"] == ROOT_NAMESPACE && !has_selector(p));

    if let Some(p) = workload {
        if let Some(port) = port
            && let Some(m) = p["spec"]["portLevelMtls"].get(port.to_string())
            && let Some(mode) = parse_mode(&m["mode"], p, warnings)
        {
            return mode;
        }
        if let Some(mode) = parse_mode(&p["spec"]["mtls"]["mode"], p, warnings) {
            return mode;
        }
    }
    for p in [namespace_wide, mesh_wide].into_iter().flatten() {
        if p["spec"]["portLevelMtls"].is_object() {
            warnings.push(Warning::about(
                p,
                "portLevelMtls applies only to policies with a workload selector; ignored",
            ));
        }
        if let Some(mode) = parse_mode(&p["spec"]["mtls"]["mode"], p, warnings) {
            return mode;
        }
    }
    MtlsMode::Permissive
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pa(ns: &str, name: &str, selector: Option<Value>, mode: &str) -> Value {
        let mut spec = json!({"mtls": {"mode": mode}});
        if let Some(s) = selector {
            spec["selector"] = json!({"matchLabels": s});
        }
        json!({"kind": "PeerAuthentication", "metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    fn labels(app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), app.to_string())])
    }

    #[test]
    fn default_is_permissive() {
        let mut w = Vec::new();
        assert_eq!(
            mode_for(&[], "istioinaction", &labels("a"), Some(8080), &mut w),
            MtlsMode::Permissive
        );
    }

    #[test]
    fn namespace_policy_beats_mesh_policy_and_workload_beats_both() {
        let mut w = Vec::new();
        let policies = vec![
            pa("istio-system", "default", None, "STRICT"),
            pa("istioinaction", "default", None, "PERMISSIVE"),
            pa(
                "istioinaction",
                "only-b",
                Some(json!({"app": "b"})),
                "DISABLE",
            ),
        ];
        assert_eq!(
            mode_for(&policies, "istioinaction", &labels("a"), None, &mut w),
            MtlsMode::Permissive
        );
        assert_eq!(
            mode_for(&policies, "istioinaction", &labels("b"), None, &mut w),
            MtlsMode::Disable
        );
        assert_eq!(
            mode_for(&policies, "other", &labels("b"), None, &mut w),
            MtlsMode::Strict
        );
    }

    #[test]
    fn unset_inherits_and_port_level_wins() {
        let mut w = Vec::new();
        let mut workload = pa("ns", "w", Some(json!({"app": "a"})), "UNSET");
        workload["spec"]["portLevelMtls"] = json!({"8080": {"mode": "DISABLE"}});
        let policies = vec![pa("ns", "default", None, "STRICT"), workload];
        assert_eq!(
            mode_for(&policies, "ns", &labels("a"), Some(9090), &mut w),
            MtlsMode::Strict
        );
        assert_eq!(
            mode_for(&policies, "ns", &labels("a"), Some(8080), &mut w),
            MtlsMode::Disable
        );
        assert!(w.is_empty());
    }
}
