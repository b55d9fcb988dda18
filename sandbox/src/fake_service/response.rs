//! fake-service's JSON response: field names and order as the workshop's fork prints them,
//! `upstream_calls` keyed by upstream URI (sorted, as Go marshals maps), pretty-printed with
//! two spaces, HTML-escaped and newline-terminated like Go's `json.Encoder`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One service's answer, or an upstream entry inside one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Response {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream_calls: BTreeMap<String, Response>,
    #[serde(default)]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl Response {
    /// The `body` field: MESSAGE as raw JSON when it starts with `{` (and parses), else a
    /// string.
    pub(crate) fn body_from_message(message: &str) -> serde_json::Value {
        if message.starts_with('{')
            && let Ok(v) = serde_json::from_str(message)
        {
            return v;
        }
        serde_json::Value::String(message.to_string())
    }

    /// The wire form, as Go's `json.Encoder` with `SetIndent("", "  ")` writes it.
    pub(crate) fn to_json(&self) -> String {
        let pretty = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string());
        let mut out = String::with_capacity(pretty.len() + 1);
        for c in pretty.chars() {
            match c {
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_and_indentation() {
        let mut r = Response {
            name: "service-a".into(),
            owner: "dave".into(),
            uri: "/".into(),
            kind: "HTTP".into(),
            ip_addresses: vec!["127.1.0.1".into()],
            start_time: "s".into(),
            end_time: "e".into(),
            duration: "1ms".into(),
            body: Some(Response::body_from_message("Hello from service-a")),
            code: 200,
            ..Default::default()
        };
        r.upstream_calls.insert(
            "http://service-c".into(),
            Response {
                uri: "http://service-c".into(),
                code: 500,
                error: "x".into(),
                ..Default::default()
            },
        );
        r.upstream_calls.insert(
            "http://service-b".into(),
            Response {
                name: "service-b".into(),
                uri: "http://service-b".into(),
                code: 200,
                ..Default::default()
            },
        );
        let json = r.to_json();
        let expected = r#"{
  "name": "service-a",
  "owner": "dave",
  "uri": "/",
  "type": "HTTP",
  "ip_addresses": [
    "127.1.0.1"
  ],
  "start_time": "s",
  "end_time": "e",
  "duration": "1ms",
  "body": "Hello from service-a",
  "upstream_calls": {
    "http://service-b": {
      "name": "service-b",
      "uri": "http://service-b",
      "code": 200
    },
    "http://service-c": {
      "uri": "http://service-c",
      "code": 500,
      "error": "x"
    }
  },
  "code": 200
}
"#;
        assert_eq!(json, expected);
        let back: Response = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn html_is_escaped_and_json_messages_embed() {
        let r = Response {
            body: Some(Response::body_from_message("<b>&</b>")),
            ..Default::default()
        };
        assert!(
            r.to_json()
                .contains(r#""\u003cb\u003e\u0026\u003c/b\u003e""#)
        );
        let v = Response::body_from_message(r#"{"a": 1}"#);
        assert_eq!(v["a"], 1);
    }
}
