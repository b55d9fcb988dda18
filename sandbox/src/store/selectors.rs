//! Label and field selectors as `kubectl` and kube-rs send them in list and watch queries.

use serde_json::Value;

/// A selector parse failure, naming the selector text.
#[derive(Debug, thiserror::Error)]
#[error("invalid selector {selector:?}: {reason}")]
pub(crate) struct SelectorError {
    pub selector: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Split on commas that are not inside `( … )`.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |reason: &str| SelectorError {
            selector: text.to_string(),
            reason: reason.to_string(),
        };
        let mut requirements = Vec::new();
        for part in split_top(text) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, rest)) = split_set_op(part, " notin ") {
                Requirement::NotIn(k, parse_set(rest).ok_or_else(|| err("bad value set"))?)
            } else if let Some((k, rest)) = split_set_op(part, " in ") {
                Requirement::In(k, parse_set(rest).ok_or_else(|| err("bad value set"))?)
            } else if part.contains(' ') || part.contains('(') {
                return Err(err(&format!("cannot parse requirement {part:?}")));
            } else {
                Requirement::Exists(part.to_string())
            };
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// Selector from a `matchLabels`/`matchExpressions` object (`spec.selector` of a
    /// Deployment) or a plain map (`spec.selector` of a Service).
    pub(crate) fn from_object(selector: &Value) -> Self {
        let mut requirements = Vec::new();
        let labels =
            selector
                .get("matchLabels")
                .or(if selector.get("matchExpressions").is_none() {
                    Some(selector)
                } else {
                    None
                });
        if let Some(Value::Object(m)) = labels {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    requirements.push(Requirement::Eq(k.clone(), v.to_string()));
                }
            }
        }
        if let Some(Value::Array(exprs)) = selector.get("matchExpressions") {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                match e["operator"].as_str() {
                    Some("In") => requirements.push(Requirement::In(key, values)),
                    Some("NotIn") => requirements.push(Requirement::NotIn(key, values)),
                    Some("Exists") => requirements.push(Requirement::Exists(key)),
                    Some("DoesNotExist") => requirements.push(Requirement::NotExists(key)),
                    _ => {}
                }
            }
        }
        Self { requirements }
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches_labels(labels)
    }

    pub(crate) fn matches_labels(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

fn split_set_op(part: &str, op: &str) -> Option<(String, String)> {
    let idx = part.find(op)?;
    Some((
        part[..idx].trim().to_string(),
        part[idx + op.len()..].trim().to_string(),
    ))
}

fn parse_set(rest: String) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// A field selector: `metadata.name=x,status.phase!=Running`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub(crate) fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top(text) {
            let (field, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError {
                    selector: text.to_string(),
                    reason: format!("{part:?} is not FIELD=VALUE or FIELD!=VALUE"),
                });
            };
            let field = field.trim();
            if !matches!(
                field,
                "metadata.name"
                    | "metadata.namespace"
                    | "status.phase"
                    | "spec.nodeName"
                    | "spec.serviceAccountName"
                    | "involvedObject.name"
                    | "involvedObject.namespace"
                    | "involvedObject.kind"
                    | "involvedObject.uid"
                    | "type"
            ) {
                return Err(SelectorError {
                    selector: text.to_string(),
                    reason: format!("field label not supported: {field}"),
                });
            }
            requirements.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self { requirements })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, equal, value)| {
            let mut v = object;
            for seg in field.split('.') {
                v = &v[seg];
            }
            let actual = v.as_str().unwrap_or_default();
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let o = json!({"metadata": {"labels": {"app": "a", "version": "v1"}}});
        let t = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(t("app=a"));
        assert!(t("app==a,version"));
        assert!(!t("app!=a"));
        assert!(t("app in (a, b)"));
        assert!(!t("app notin (a,b)"));
        assert!(t("version notin (v2)"));
        assert!(t("!missing"));
        assert!(!t("missing"));
        assert!(t(""));
        assert!(LabelSelector::parse("app in a").is_err());
    }

    #[test]
    fn field_selector() {
        let o = json!({"metadata": {"name": "x"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("metadata.name=x").unwrap().matches(&o));
        assert!(
            !FieldSelector::parse("status.phase!=Running")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.bogus=1").is_err());
    }

    #[test]
    fn selector_objects() {
        let o = json!({"metadata": {"labels": {"app": "a"}}});
        assert!(LabelSelector::from_object(&json!({"app": "a"})).matches(&o));
        assert!(LabelSelector::from_object(&json!({"matchLabels": {"app": "a"}})).matches(&o));
        assert!(
            !LabelSelector::from_object(&json!({"matchExpressions": [
                {"key": "app", "operator": "NotIn", "values": ["a"]}]}))
            .matches(&o)
        );
    }
}
