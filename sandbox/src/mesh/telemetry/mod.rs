//! Istio's telemetry on the sandbox's proxies: what a reader sees in the istio-proxy container
//! log (Istio's default text access-log format on stdout) and on :15020/stats/prometheus
//! (`istio_requests_total` with Istio's labels, merged with Envoy's own statistics).
//!
//! Real Istio counts requests inside Envoy (the `istio.stats` Wasm/native filter) and learns the
//! peer's identity through metadata exchange headers. Stock Envoy has neither, so:
//!
//! * every sidecar adds its [`WorkloadMeta`] to the requests it sends
//!   ([`peer_metadata_request_headers`], on the outbound route config) and to the responses it
//!   returns ([`peer_metadata_response_headers`], on the inbound route config), as Istio's
//!   `x-envoy-peer-metadata` headers do;
//! * the receiving side's [`peer_metadata_filter`] moves those headers into Envoy dynamic
//!   metadata, so the app never sees them and the access log still can (a route's
//!   `*_headers_to_remove` would hide them from the access log too — tried on Envoy 1.40);
//!   where a proxy has no such filter, the log falls back to the headers as they arrived;
//! * a JSON access log ([`stats_access_log`]) records each request with the peer's metadata and
//!   TLS identity, and the agent ([`run_agent`]) turns it into `istio_requests_total` when
//!   scraped.

mod agent;
#[cfg(test)]
mod envoy_tests;
pub(crate) mod stats;

use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};

use super::model::WorkloadMeta;

pub(crate) use agent::admin_call;
pub use agent::run_agent;

/// Which side of a request a proxy reports, as Istio's `reporter` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporter {
    /// The client side: a sidecar's outbound traffic, and gateways.
    Source,
    /// The server side: a sidecar's inbound traffic.
    Destination,
}

impl Reporter {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// Istio's default text access-log format (`EnvoyTextLogFormat` in istio/istio's
/// pilot/pkg/model/telemetry_logging.go, 1.23 on for the text format: `%UPSTREAM_CLUSTER_RAW%`).
pub const ISTIO_TEXT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ",
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ",
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% ",
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ",
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
);

/// Istio's default text access log on stdout (the istio-proxy container log): one entry for an
/// HTTP connection manager's `access_log: [...]`.
pub fn istio_text_access_log() -> Value {
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": "/dev/stdout",
            "log_format": {"text_format_source": {"inline_string": ISTIO_TEXT_FORMAT}}
        }
    })
}

/// The dynamic-metadata namespace the peer metadata filter writes to.
const PEER_NAMESPACE: &str = "istio.peer_exchange";
/// Istio's metadata exchange header: the peer's metadata (here base64 of WorkloadMeta's JSON).
pub const PEER_METADATA_HEADER: &str = "x-envoy-peer-metadata";
/// Istio's metadata exchange id header (`sidecar~IP~POD.NS~NS.svc.cluster.local`).
pub const PEER_ID_HEADER: &str = "x-envoy-peer-metadata-id";
/// The cluster the source sidecar picked (`outbound|80|SUBSET|FQDN`): tells the destination
/// which Service was called, as Istio's inbound cluster metadata does.
pub const PEER_CLUSTER_HEADER: &str = "x-happy-peer-cluster";

/// A JSON access log of every request, for the stats agent (a file under the proxy's
/// directory). Put it on every HTTP connection manager of the proxy, next to the text log:
/// `reporter` Destination on the inbound side of a sidecar, Source on its outbound side and on
/// gateways.
pub fn stats_access_log(path: &Path, reporter: Reporter, this: &WorkloadMeta) -> Value {
    let peer = |key: &str| format!("%DYNAMIC_METADATA({PEER_NAMESPACE}:{key})%");
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path.to_string_lossy(),
            "log_format": {"json_format": {
                "reporter": reporter.as_str(),
                // Which proxy wrote it: a check when several proxies share a directory.
                "pod": format!("{}.{}", this.pod_name, this.namespace),
                "code": "%RESPONSE_CODE%",
                "flags": "%RESPONSE_FLAGS%",
                "protocol": "%PROTOCOL%",
                "authority": "%REQ(:AUTHORITY)%",
                "cluster": "%UPSTREAM_CLUSTER_RAW%",
                "peer": peer("metadata"),
                "peer_cluster": peer("cluster"),
                // The same headers as they arrived, for proxies without the peer filter
                // (where nothing removes them). Each side reads only the peer's direction.
                "peer_request": format!("%REQ({PEER_METADATA_HEADER})%"),
                "peer_request_cluster": format!("%REQ({PEER_CLUSTER_HEADER})%"),
                "peer_response": format!("%RESP({PEER_METADATA_HEADER})%"),
                "downstream_san": "%DOWNSTREAM_PEER_URI_SAN%",
                "upstream_san": "%UPSTREAM_PEER_URI_SAN%",
                "content_type": "%REQ(CONTENT-TYPE)%"
            }}
        }
    })
}

/// `this` as the metadata header value: base64 of its JSON (no `%`, which Envoy's header
/// formatter would take for a command).
pub fn encode_peer(this: &WorkloadMeta) -> String {
    let json = serde_json::to_vec(this).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// The peer's metadata from a header value written by [`encode_peer`].
pub fn decode_peer(value: &str) -> Option<WorkloadMeta> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn peer_id(this: &WorkloadMeta) -> String {
    format!(
        "sidecar~{}~{}.{}~{}.svc.cluster.local",
        this.ip, this.pod_name, this.namespace, this.namespace
    )
}

fn header(key: &str, value: String) -> Value {
    json!({
        "header": {"key": key, "value": value},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    })
}

/// Headers carrying this workload's metadata on the requests it sends: the OUTBOUND route
/// config's `request_headers_to_add` of each sidecar and gateway.
pub fn peer_metadata_request_headers(this: &WorkloadMeta) -> Value {
    json!([
        header(PEER_METADATA_HEADER, encode_peer(this)),
        header(PEER_ID_HEADER, peer_id(this)),
        header(PEER_CLUSTER_HEADER, "%UPSTREAM_CLUSTER_RAW%".into()),
    ])
}

/// Headers carrying this workload's metadata on the responses it returns: the INBOUND route
/// config's `response_headers_to_add` of each sidecar.
pub fn peer_metadata_response_headers(this: &WorkloadMeta) -> Value {
    json!([
        header(PEER_METADATA_HEADER, encode_peer(this)),
        header(PEER_ID_HEADER, peer_id(this)),
    ])
}

/// The HTTP filter that takes the peer's metadata headers off what arrives (requests on a
/// sidecar's inbound side — `Reporter::Destination`; responses on its outbound side and on
/// gateways — `Reporter::Source`) and keeps them as dynamic metadata for the stats access log.
/// Place it first in `http_filters` of every HTTP connection manager of the proxy.
pub fn peer_metadata_filter(side: Reporter) -> Value {
    let rule = |name: &str, key: &str| {
        json!({
            "header": name,
            "on_header_present": {"metadata_namespace": PEER_NAMESPACE, "key": key, "type": "STRING"},
            "remove": true
        })
    };
    // Only what arrives from the peer: the other direction carries this proxy's own headers,
    // which the filter would otherwise strip after the router added them.
    let config = match side {
        Reporter::Destination => json!({
            "request_rules": [
                rule(PEER_METADATA_HEADER, "metadata"),
                rule(PEER_ID_HEADER, "id"),
                rule(PEER_CLUSTER_HEADER, "cluster"),
            ]
        }),
        Reporter::Source => json!({
            "response_rules": [
                rule(PEER_METADATA_HEADER, "metadata"),
                rule(PEER_ID_HEADER, "id"),
            ]
        }),
    };
    let mut typed = config;
    typed["@type"] =
        json!("type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config");
    json!({"name": "envoy.filters.http.header_to_metadata", "typed_config": typed})
}

/// Header names a route config would remove. Empty on purpose: [`peer_metadata_filter`] removes
/// the peer headers (a route's `*_headers_to_remove` would also hide them from the access log).
pub fn peer_metadata_header_names() -> Vec<&'static str> {
    Vec::new()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    pub(crate) fn meta(
        ns: &str,
        workload: &str,
        app: &str,
        version: &str,
        sa: &str,
    ) -> WorkloadMeta {
        WorkloadMeta {
            namespace: ns.into(),
            pod_name: format!("{workload}-5d9c7b-x1"),
            workload: workload.into(),
            app: app.into(),
            version: version.into(),
            service_account: sa.into(),
            ip: Ipv4Addr::new(127, 1, 0, 9),
        }
    }

    #[test]
    fn peer_metadata_round_trips_and_has_no_percent() {
        let m = meta("istioinaction", "service-a", "service-a", "v1", "service-a");
        let encoded = encode_peer(&m);
        assert!(!encoded.contains('%'));
        assert_eq!(decode_peer(&encoded), Some(m.clone()));
        assert_eq!(decode_peer("not base64!"), None);
        let headers = peer_metadata_request_headers(&m);
        assert_eq!(headers.as_array().unwrap().len(), 3);
        assert_eq!(
            headers[1]["header"]["value"],
            "sidecar~127.1.0.9~service-a-5d9c7b-x1.istioinaction~istioinaction.svc.cluster.local"
        );
        assert_eq!(
            peer_metadata_response_headers(&m).as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn text_format_is_istios() {
        assert!(ISTIO_TEXT_FORMAT.starts_with(
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\""
        ));
        assert!(ISTIO_TEXT_FORMAT.ends_with("%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"));
        // 22 fields, as the suite's parser expects.
        let fields = ISTIO_TEXT_FORMAT.matches("%").count() / 2;
        assert_eq!(
            fields, 24,
            "22 fields, the request line holding three operators"
        );
        assert_eq!(
            istio_text_access_log()["typed_config"]["path"],
            "/dev/stdout"
        );
    }

    #[test]
    fn filter_takes_only_what_arrives() {
        let inbound = peer_metadata_filter(Reporter::Destination);
        assert_eq!(
            inbound["typed_config"]["request_rules"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(inbound["typed_config"].get("response_rules").is_none());
        let outbound = peer_metadata_filter(Reporter::Source);
        assert_eq!(
            outbound["typed_config"]["response_rules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(outbound["typed_config"].get("request_rules").is_none());
    }
}
