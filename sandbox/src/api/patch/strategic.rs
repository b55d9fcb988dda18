//! Strategic merge patch: JSON merge patch, except that lists of built-in types with a merge
//! key merge element by element, and `$patch`, `$retainKeys`, `$setElementOrder` and
//! `$deleteFromPrimitiveList` directives are understood.

use serde_json::{Map, Value};

use super::PatchError;
use super::keys::list_key;

/// Merge `patch` into `doc`.
pub(crate) fn merge(doc: &mut Value, patch: &Value, builtin: bool) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *doc = strip(patch);
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *doc = strip(patch);
            return Ok(());
        }
        Some("delete") => {
            *doc = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "unknown $patch directive {other:?}"
            )));
        }
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(d) = doc else {
        return Ok(());
    };
    if let Some(retain) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| PatchError::Malformed("$retainKeys must be a list".to_string()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        d.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (d.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                d.remove(k);
            }
            Value::Object(inner) => {
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") {
                    d.remove(k);
                } else {
                    merge(d.entry(k.clone()).or_insert(Value::Null), v, builtin)?;
                }
            }
            Value::Array(items) => {
                let key = if builtin {
                    list_key(k, items, d.get(k))
                } else {
                    None
                };
                match key {
                    Some(key) => merge_list(
                        d.entry(k.clone()).or_insert(Value::Null),
                        items,
                        key,
                        builtin,
                    )?,
                    None => {
                        d.insert(k.clone(), strip(v));
                    }
                }
            }
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(
    doc: &mut Value,
    items: &[Value],
    key: &str,
    builtin: bool,
) -> Result<(), PatchError> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *doc = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip)
                .collect(),
        );
        return Ok(());
    }
    if !doc.is_array() {
        *doc = Value::Array(Vec::new());
    }
    let Value::Array(list) = doc else {
        return Ok(());
    };
    for item in items {
        let id = item.get(key);
        let pos = id.and_then(|id| list.iter().position(|e| e.get(key) == Some(id)));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(id) = id {
                list.retain(|e| e.get(key) != Some(id));
            }
            continue;
        }
        match pos {
            Some(i) => merge(&mut list[i], item, builtin)?,
            None => list.push(strip(item)),
        }
    }
    Ok(())
}

/// A patch value without directives, as it is stored.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "z", "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}});
        merge(&mut doc, &patch, true).unwrap();
        assert_eq!(doc["spec"]["containers"][0]["image"], "z");
        assert_eq!(doc["spec"]["containers"][1]["image"], "y");
        assert_eq!(
            doc["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
        );
    }

    #[test]
    fn null_removes_and_replace_replaces() {
        let mut doc =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": {"y": 1, "z": 2}}});
        merge(
            &mut doc,
            &json!({"metadata": {"labels": {"a": null}}, "spec": {"x": {"$patch": "replace", "w": 3}}}),
            true,
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"x": {"w": 3}}})
        );
    }

    #[test]
    fn custom_resources_replace_lists() {
        let mut doc = json!({"spec": {"http": [{"route": [1], "mirror": {"host": "c"}}]}});
        merge(
            &mut doc,
            &json!({"spec": {"http": [{"route": [1]}]}}),
            false,
        )
        .unwrap();
        assert_eq!(doc, json!({"spec": {"http": [{"route": [1]}]}}));
    }

    #[test]
    fn retain_keys() {
        let mut doc =
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        merge(
            &mut doc,
            &json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}),
            true,
        )
        .unwrap();
        assert_eq!(doc, json!({"strategy": {"type": "Recreate"}}));
    }
}
