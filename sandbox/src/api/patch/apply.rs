//! Server-side apply: merge the applied configuration into the live object and record, in
//! `metadata.managedFields`, which fields the manager set; fields the manager applied before
//! and omits now are removed (unless another apply manager still sets them), which is how
//! re-applying a VirtualService without `mirror` drops the mirror.
//!
//! A field another apply manager owns with a different value is a conflict (409) unless the
//! apply is forced, which moves the field to the applying manager. Simplified against
//! Kubernetes: only apply managers own fields (updates by PUT/PATCH are not tracked).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::keys::list_key;

/// A field path in fieldsV1 notation: `f:spec`, `k:{"name":"x"}`, `.`.
type FieldPath = Vec<String>;

/// Top-level and metadata fields that belong to the server, never to a manager.
fn server_owned(path: &[String]) -> bool {
    match path {
        [first, ..] if first == "f:apiVersion" || first == "f:kind" || first == "f:status" => true,
        [m, f, ..] if m == "f:metadata" => matches!(
            f.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:managedFields"
                | "f:deletionTimestamp"
                | "f:selfLink"
        ),
        _ => false,
    }
}

/// The set of fields an applied configuration sets.
pub(crate) fn field_set(applied: &Value, builtin: bool) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    walk(applied, &mut Vec::new(), &mut out, builtin);
    out.retain(|p| !server_owned(p));
    out
}

fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>, builtin: bool) {
    let Value::Object(m) = v else {
        return;
    };
    for (k, child) in m {
        prefix.push(format!("f:{k}"));
        match child {
            Value::Object(cm) if !cm.is_empty() => walk(child, prefix, out, builtin),
            Value::Array(items) if builtin && list_key(k, items, None).is_some() => {
                let key = list_key(k, items, None).unwrap_or("name");
                for item in items {
                    let id = json!({ key: item.get(key).cloned().unwrap_or(Value::Null) });
                    prefix.push(format!("k:{id}"));
                    let mut item_path = prefix.clone();
                    item_path.push(".".to_string());
                    out.insert(item_path);
                    walk(item, prefix, out, builtin);
                    prefix.pop();
                }
            }
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// fieldsV1 JSON for a field set.
pub(crate) fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut node = &mut root;
        for seg in path {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let Value::Object(m) = node else {
                break;
            };
            node = m.entry(seg.clone()).or_insert_with(|| json!({}));
        }
    }
    root
}

/// The field set recorded in fieldsV1 JSON.
pub(crate) fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn rec(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Value::Object(m) = v else {
            return;
        };
        for (k, child) in m {
            prefix.push(k.clone());
            if k == "." || child.as_object().is_none_or(Map::is_empty) {
                out.insert(prefix.clone());
            } else {
                rec(child, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = BTreeSet::new();
    rec(v, &mut Vec::new(), &mut out);
    out
}

fn key_matches(elem: &Value, key_json: &str) -> bool {
    match serde_json::from_str::<Value>(key_json) {
        Ok(Value::Object(k)) => k.iter().all(|(kk, vv)| elem.get(kk) == Some(vv)),
        _ => false,
    }
}

/// Remove one owned field (or list item, for a path ending in `.`) from `doc`.
fn remove_path(doc: &mut Value, path: &[String]) {
    match path {
        [] => {}
        [last] => {
            if let (Some(name), Some(m)) = (last.strip_prefix("f:"), doc.as_object_mut()) {
                m.remove(name);
            }
        }
        [k, dot] if dot == "." => {
            if let (Some(key), Some(list)) = (k.strip_prefix("k:"), doc.as_array_mut()) {
                list.retain(|e| !key_matches(e, key));
            }
        }
        [first, rest @ ..] => {
            if let Some(name) = first.strip_prefix("f:") {
                let Some(m) = doc.as_object_mut() else {
                    return;
                };
                if let Some(next) = m.get_mut(name) {
                    remove_path(next, rest);
                    // A map or list emptied by the removal goes too: nobody set it empty.
                    if is_empty_container(next) {
                        m.remove(name);
                    }
                }
            } else if let Some(key) = first.strip_prefix("k:")
                && let Some(next) = doc
                    .as_array_mut()
                    .and_then(|l| l.iter_mut().find(|e| key_matches(e, key)))
            {
                remove_path(next, rest);
            }
        }
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Merge an applied configuration into the live object: maps field by field, keyed lists of
/// built-in types item by item, everything else replaced.
fn merge_applied(doc: &mut Value, applied: &Value, builtin: bool) {
    match (doc, applied) {
        (Value::Object(d), Value::Object(a)) => {
            for (k, v) in a {
                match (d.get_mut(k), v) {
                    (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                        merge_applied(existing, v, builtin)
                    }
                    (Some(existing @ Value::Array(_)), Value::Array(items))
                        if builtin && list_key(k, items, Some(existing)).is_some() =>
                    {
                        let key = list_key(k, items, Some(existing)).unwrap_or("name");
                        if let Value::Array(list) = existing {
                            for item in items {
                                match list.iter_mut().find(|e| e.get(key) == item.get(key)) {
                                    Some(e) => merge_applied(e, item, builtin),
                                    None => list.push(item.clone()),
                                }
                            }
                        }
                    }
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (doc, applied) => *doc = applied.clone(),
    }
}

/// Apply `applied` as `manager` to `live` (None: the object does not exist yet). Returns the
/// new object, with managedFields updated; the caller stores it.
pub(crate) fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    builtin: bool,
    force: bool,
) -> Result<Value, ApplyConflict> {
    let new_set = field_set(applied, builtin);
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    let mut entries: Vec<Value> = result["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is_mine = |e: &Value| e["manager"] == manager && e["operation"] == "Apply";
    // Conflicts: fields another apply manager set to a different value.
    let mut conflicts = Vec::new();
    for e in entries
        .iter_mut()
        .filter(|e| !is_mine(e) && e["operation"] == "Apply")
    {
        let mut theirs = from_fields_v1(&e["fieldsV1"]);
        let clashing: Vec<FieldPath> = theirs
            .intersection(&new_set)
            .filter(|p| p.last().is_some_and(|l| l != "."))
            .filter(|p| get_path(&result, p) != get_path(applied, p))
            .cloned()
            .collect();
        if clashing.is_empty() {
            continue;
        }
        let owner = e["manager"].as_str().unwrap_or_default().to_string();
        if force {
            for p in &clashing {
                theirs.remove(p);
            }
            e["fieldsV1"] = to_fields_v1(&theirs);
        } else {
            conflicts.extend(clashing.iter().map(|p| (owner.clone(), display_path(p))));
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyConflict(conflicts));
    }
    let old_set = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| from_fields_v1(&e["fieldsV1"]))
        .unwrap_or_default();
    let others: BTreeSet<FieldPath> = entries
        .iter()
        .filter(|e| !is_mine(e) && e["operation"] == "Apply")
        .flat_map(|e| from_fields_v1(&e["fieldsV1"]))
        .collect();
    for path in old_set.difference(&new_set) {
        if !others.contains(path) {
            remove_path(&mut result, path);
        }
    }
    let mut applied = applied.clone();
    if let Some(m) = applied.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(f);
        }
    }
    merge_applied(&mut result, &applied, builtin);
    let mut entries: Vec<Value> = entries.into_iter().filter(|e| !is_mine(e)).collect();
    entries.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": crate::store::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(&new_set),
    }));
    result["metadata"]["managedFields"] = Value::Array(entries);
    Ok(result)
}

/// Fields owned by other managers with other values: (manager, `.spec.field`) pairs.
#[derive(Debug, thiserror::Error)]
#[error("Apply failed with {} conflict(s): {}", .0.len(), .0.iter().map(|(m, p)| format!("conflict with {m:?}: {p}")).collect::<Vec<_>>().join(", "))]
pub(crate) struct ApplyConflict(pub Vec<(String, String)>);

fn display_path(p: &[String]) -> String {
    p.iter()
        .map(|s| match s.strip_prefix("f:") {
            Some(f) => format!(".{f}"),
            None => format!("[{}]", s.trim_start_matches("k:")),
        })
        .collect()
}

/// The value at a field path, if present.
fn get_path<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = doc;
    for seg in path {
        v = if let Some(name) = seg.strip_prefix("f:") {
            v.get(name)?
        } else if let Some(key) = seg.strip_prefix("k:") {
            v.as_array()?.iter().find(|e| key_matches(e, key))?
        } else {
            return None;
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reapply_without_a_field_removes_it() {
        let with_mirror = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
            "metadata": {"name": "service-c", "labels": {"a": "1"}},
            "spec": {"hosts": ["c"], "http": [{"route": [{"destination": {"host": "c", "subset": "v1"}}],
                "mirror": {"host": "c", "subset": "v2"}, "mirrorPercentage": {"value": 100.0}}],
                "extra": {"x": 1}}});
        let live = apply(None, &with_mirror, "happy", false, false).unwrap();
        assert_eq!(live["spec"]["extra"]["x"], 1);
        let plain = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
            "metadata": {"name": "service-c"},
            "spec": {"hosts": ["c"], "http": [{"route": [{"destination": {"host": "c", "subset": "v1"}}]}]}});
        let live = apply(Some(&live), &plain, "happy", false, false).unwrap();
        assert!(live["spec"]["http"][0].get("mirror").is_none());
        assert!(live["spec"].get("extra").is_none(), "{live}");
        assert!(live["metadata"]["labels"].get("a").is_none(), "{live}");
    }

    #[test]
    fn other_managers_fields_stay_and_keyed_lists_merge() {
        let a = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}]}]}}}});
        let live = apply(None, &a, "one", true, false).unwrap();
        let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "y"}]}}}});
        let live = apply(Some(&live), &b, "two", true, false).unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // "one" drops its env var: it goes, the other manager's container stays.
        let a2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}}});
        let live = apply(Some(&live), &a2, "one", true, false).unwrap();
        let cs = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 2);
        assert!(cs[0].get("env").is_none(), "{live}");
    }

    #[test]
    fn conflicts_unless_forced() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}});
        let live = apply(None, &a, "one", true, false).unwrap();
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "2"}});
        let err = apply(Some(&live), &b, "two", true, false).unwrap_err();
        assert_eq!(err.0, vec![("one".to_string(), ".data.k".to_string())]);
        // Same value: shared ownership, no conflict.
        apply(Some(&live), &a, "two", true, false).unwrap();
        let forced = apply(Some(&live), &b, "two", true, true).unwrap();
        assert_eq!(forced["data"]["k"], "2");
        // "one" no longer owns data.k, so its next apply without it does not remove it.
        let one_again = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let after = apply(Some(&forced), &one_again, "one", true, false).unwrap();
        assert_eq!(after["data"]["k"], "2");
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({"spec": {"containers": [{"name": "a", "image": "b"}]}, "metadata": {"labels": {"x": "y"}}});
        let set = field_set(&v, true);
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }
}
