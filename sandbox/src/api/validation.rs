//! Validation of an object's spec that the real API server does for the kinds the sandbox
//! serves, with its words, so a manifest the real cluster rejects is rejected here too.
//!
//! Deployments and ReplicaSets: the selector must be set and select the pod template's labels
//! (kubernetes/kubernetes `pkg/apis/apps/validation/validation.go`, `ValidateDeploymentSpec`
//! and `ValidateReplicaSetSpec` → `ValidatePodTemplateSpecForReplicaSet`:
//! `field.Invalid(fldPath.Child("metadata", "labels"), template.Labels, "`selector` does not
//! match template `labels`")`). The message is as apimachinery v0.33 (Kubernetes 1.33, which
//! the sandbox reports) renders a field error: `<field>: Invalid value: <value>: <detail>`,
//! a map value in Go's `%#v` (`pkg/util/validation/field/errors.go`, `ErrorBody`), inside
//! `<Kind>.<group> "<name>" is invalid: …` (`k8s.io/apimachinery/pkg/api/errors`, `NewInvalid`).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::store::ResourceType;
use crate::store::selectors::LabelSelector;

/// `Err` (422 Invalid) when `obj`, a whole object about to be stored, fails the API server's
/// validation of its kind's spec.
pub(crate) fn validate_spec(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if rt.group != "apps" || !matches!(rt.kind.as_str(), "Deployment" | "ReplicaSet") {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let selector = &obj["spec"]["selector"];
    if !selector.is_object() {
        return Err(invalid(
            rt,
            name,
            "spec.selector",
            "FieldValueRequired",
            "Required value".into(),
        ));
    }
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    if !LabelSelector::from_object(selector).matches_labels(labels) {
        return Err(invalid(
            rt,
            name,
            "spec.template.metadata.labels",
            "FieldValueInvalid",
            format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                go_string_map(labels)
            ),
        ));
    }
    Ok(())
}

/// A `map[string]string` as Go's `%#v` prints it: keys sorted, values quoted.
fn go_string_map(labels: &Value) -> String {
    let Some(map) = labels.as_object() else {
        return "map[string]string(nil)".into();
    };
    let mut pairs: Vec<(&String, &str)> = map
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// The API server's 422: `<Kind>.<group> "<name>" is invalid: <field>: <detail>`.
fn invalid(rt: &ResourceType, name: &str, field: &str, reason: &str, detail: String) -> ApiError {
    let qualified = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    let mut e = ApiError::invalid(&rt.kind, name, field, detail.clone());
    e.message = format!("{qualified} {name:?} is invalid: {field}: {detail}");
    e.details = Some(json!({
        "name": name, "group": rt.group, "kind": rt.kind,
        "causes": [{"reason": reason, "message": detail, "field": field}],
    }));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formatting_of_label_maps() {
        assert_eq!(
            go_string_map(&json!({"version": "v1", "app": "service-a"})),
            r#"map[string]string{"app":"service-a", "version":"v1"}"#
        );
        assert_eq!(go_string_map(&Value::Null), "map[string]string(nil)");
    }
}
