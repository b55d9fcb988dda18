//! The JSON fake-service (and the workshop's happy-service fork) answers with: the service's
//! name, owner and message, its addresses, timings, and the nested responses of its upstream
//! calls keyed by upstream URI.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// One fake-service response, with the responses of its upstreams nested.
///
/// Every field but `code` is optional in fake-service's output (`omitempty`), so missing
/// fields read as empty. Fields the suite does not know are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FakeServiceResponse {
    /// `NAME` of the service, e.g. `service-c(v2)`.
    #[serde(default)]
    pub name: String,
    /// `SERVICE_OWNER` (the workshop's fork adds it).
    #[serde(default)]
    pub owner: String,
    /// The URI the caller used (e.g. `http://service-b`); empty on the outermost response.
    #[serde(default)]
    pub uri: String,
    /// `HTTP` or `gRPC`.
    #[serde(default, rename = "type")]
    pub r#type: String,
    /// The serving pod's addresses.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// Paths received, when fake-service reports them.
    #[serde(default)]
    pub path: Vec<String>,
    /// When the request started, as fake-service formats it.
    #[serde(default)]
    pub start_time: String,
    /// When the request ended.
    #[serde(default)]
    pub end_time: String,
    /// How long it took, e.g. `1.7ms`.
    #[serde(default)]
    pub duration: String,
    /// Request headers, when fake-service echoes them.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `MESSAGE`; fake-service embeds a JSON message as JSON, which is kept here as its text.
    #[serde(default, deserialize_with = "body_text")]
    pub body: String,
    /// Responses of the upstream calls, keyed by upstream URI (`http://service-b`).
    #[serde(default)]
    pub upstream_calls: BTreeMap<String, FakeServiceResponse>,
    /// The status this service answered with; fake-service uses -1 for an upstream it could
    /// not reach at all.
    pub code: i32,
    /// The error fake-service reports for a failed call, if any.
    #[serde(default)]
    pub error: String,
}

fn body_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

impl FakeServiceResponse {
    /// Parses a response body; the error quotes the start of the text so a HTML page or an
    /// Envoy error (`upstream connect error…`, `RBAC: access denied`) is recognisable.
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Parse {
            what: "fake-service JSON".into(),
            message: format!("{e}; the text starts with {:?}", excerpt(text, 120)),
        })
    }

    /// The upstream response for `uri` (e.g. `http://service-c`), if called.
    pub fn upstream(&self, uri: &str) -> Option<&FakeServiceResponse> {
        self.upstream_calls.get(uri)
    }

    /// The upstream response whose `name` is `name` (e.g. `service-c(v1)`), searching the
    /// whole call tree.
    pub fn find(&self, name: &str) -> Option<&FakeServiceResponse> {
        if self.name == name {
            return Some(self);
        }
        self.upstream_calls.values().find_map(|u| u.find(name))
    }

    /// Every response in the call tree, this one first, depth first.
    pub fn walk(&self) -> Vec<&FakeServiceResponse> {
        let mut out = vec![self];
        for u in self.upstream_calls.values() {
            out.extend(u.walk());
        }
        out
    }
}

fn excerpt(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape fake-service prints (2-space indent), with the workshop's chain and the
    // fork's `owner` field.
    const OK_CHAIN: &str = r#"{
  "name": "service-a",
  "owner": "dave",
  "uri": "/",
  "type": "HTTP",
  "ip_addresses": [
    "10.244.0.7"
  ],
  "start_time": "2024-05-01T10:00:00.000000",
  "end_time": "2024-05-01T10:00:00.004000",
  "duration": "4.0ms",
  "body": "Hello from service-a",
  "upstream_calls": {
    "http://service-b": {
      "name": "service-b",
      "owner": "oli",
      "uri": "http://service-b",
      "type": "HTTP",
      "ip_addresses": [
        "10.244.0.8"
      ],
      "start_time": "2024-05-01T10:00:00.001000",
      "end_time": "2024-05-01T10:00:00.001500",
      "duration": "500µs",
      "headers": {
        "Content-Length": "268",
        "Content-Type": "text/plain; charset=utf-8"
      },
      "body": "Hello World",
      "code": 200
    },
    "http://service-c": {
      "name": "service-c(v2)",
      "uri": "http://service-c",
      "type": "HTTP",
      "ip_addresses": [
        "10.244.0.9"
      ],
      "body": "Hello World",
      "code": 500,
      "error": "Service error automatically injected"
    }
  },
  "code": 500
}
"#;

    #[test]
    fn parses_the_chain() {
        let r = FakeServiceResponse::parse(OK_CHAIN).unwrap();
        assert_eq!(r.name, "service-a");
        assert_eq!(r.owner, "dave");
        assert_eq!(r.r#type, "HTTP");
        assert_eq!(r.body, "Hello from service-a");
        assert_eq!(r.ip_addresses, vec!["10.244.0.7"]);
        assert_eq!(r.code, 500);
        assert_eq!(r.upstream_calls.len(), 2);
        let b = r.upstream("http://service-b").unwrap();
        assert_eq!(
            (b.name.as_str(), b.code, b.owner.as_str()),
            ("service-b", 200, "oli")
        );
        assert_eq!(
            b.headers.get("Content-Length").map(String::as_str),
            Some("268")
        );
        let c = r.upstream("http://service-c").unwrap();
        assert_eq!(c.code, 500);
        assert_eq!(c.error, "Service error automatically injected");
        assert_eq!(r.find("service-c(v2)").map(|c| c.code), Some(500));
        assert!(r.find("service-c(v1)").is_none());
        assert_eq!(r.walk().len(), 3);
    }

    #[test]
    fn json_body_and_unreachable_upstream() {
        let text = r#"{"name":"a","body":{"hello":"world"},"upstream_calls":{"http://b":{"uri":"http://b","code":-1,"error":"Error communicating with upstream service: connection reset"}},"code":500}"#;
        let r = FakeServiceResponse::parse(text).unwrap();
        assert_eq!(r.body, r#"{"hello":"world"}"#);
        let b = r.upstream("http://b").unwrap();
        assert_eq!(b.code, -1);
        assert!(b.name.is_empty());
    }

    #[test]
    fn non_json_is_a_clear_error() {
        for text in [
            "RBAC: access denied",
            "<html><body>UI</body></html>",
            "{\"name\":\"a\"}",
        ] {
            let msg = FakeServiceResponse::parse(text).unwrap_err().to_string();
            assert!(msg.contains("fake-service JSON"), "{msg}");
            assert!(msg.contains(&format!("{text:?}")), "{msg}");
        }
    }
}
