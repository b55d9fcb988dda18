//! Merge keys of Kubernetes' built-in list fields, shared by strategic merge patch and
//! server-side apply (the `patchMergeKey` / `listMapKeys` of the Go types).

use serde_json::Value;

/// The key that identifies elements of list `field`, or `None` for an atomic list. `sample`
/// is an element (from either side) so `ports` can tell container ports from service ports.
pub(crate) fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "hostAliases" => Some("ip"),
        "ownerReferences" => Some("uid"),
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

/// Whether `field` is a list of maps that merges by key (only lists of objects do).
pub(crate) fn list_key(field: &str, patch: &[Value], live: Option<&Value>) -> Option<&'static str> {
    let sample = patch
        .iter()
        .find(|v| v.is_object() && v.get("$patch").is_none())
        .or_else(|| live.and_then(Value::as_array).and_then(|a| a.first()));
    if !sample.is_some_and(Value::is_object) && !patch.iter().all(Value::is_object) {
        return None;
    }
    merge_key(field, sample)
}
