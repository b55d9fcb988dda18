//! `istio_requests_total` from the stats access log: each JSON line written by
//! [`super::stats_access_log`] is one request; its labels follow Istio's standard metrics
//! (<https://istio.io/latest/docs/reference/config/metrics/>), seen from the reporting proxy:
//!
//! * `reporter="destination"` (a sidecar's inbound side): the source is the peer (from the
//!   metadata header it sent; `unknown` without a sidecar), `source_principal` the client
//!   certificate's URI SAN, `connection_security_policy` `mutual_tls` when the client presented
//!   one, else `none`.
//! * `reporter="source"` (outbound side, gateways): the destination is the peer (from its
//!   response header), `destination_principal` the server certificate's URI SAN,
//!   `connection_security_policy` always `unknown` (the source cannot tell).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{WorkloadMeta, decode_peer};

/// The metric's name.
pub(crate) const REQUESTS_TOTAL: &str = "istio_requests_total";

/// Istio's label names for `istio_requests_total`, in the order Istio prints them.
pub(crate) const LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

const UNKNOWN: &str = "unknown";
/// Istio's default cluster id.
const CLUSTER_ID: &str = "Kubernetes";

/// One series' label values, in [`LABELS`] order.
pub(crate) type SeriesKey = Vec<String>;

/// Counters of `istio_requests_total` by series.
#[derive(Default, Debug, Clone)]
pub(crate) struct RequestCounters {
    series: BTreeMap<SeriesKey, u64>,
}

/// A workload's labels as the metric names them: workload, canonical service and revision,
/// namespace, principal, app, version, cluster.
struct Side {
    workload: String,
    canonical_service: String,
    canonical_revision: String,
    namespace: String,
    principal: String,
    app: String,
    version: String,
    cluster: String,
}

impl Side {
    fn unknown(principal: String) -> Self {
        Self {
            workload: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            principal,
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            cluster: UNKNOWN.into(),
        }
    }

    fn of(meta: &WorkloadMeta, principal: String) -> Self {
        let known = |v: &str| !v.is_empty() && v != UNKNOWN;
        Self {
            workload: meta.workload.clone(),
            // Istio: label service.istio.io/canonical-name, else app, else the workload.
            canonical_service: if known(&meta.app) {
                meta.app.clone()
            } else {
                meta.workload.clone()
            },
            canonical_revision: if known(&meta.version) {
                meta.version.clone()
            } else {
                "latest".into()
            },
            namespace: meta.namespace.clone(),
            principal,
            app: meta.app.clone(),
            version: meta.version.clone(),
            cluster: CLUSTER_ID.into(),
        }
    }
}

fn field<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    match entry.get(key)? {
        Value::String(s) if !s.is_empty() && s != "-" => Some(s),
        _ => None,
    }
}

/// `outbound|80|SUBSET|service-c.istioinaction.svc.cluster.local` → the Service's FQDN.
fn service_of_cluster(cluster: &str) -> Option<String> {
    let mut parts = cluster.split('|');
    if parts.next()? != "outbound" {
        return None;
    }
    let host = parts.nth(2)?;
    host.ends_with(".svc.cluster.local")
        .then(|| host.to_string())
}

/// `:authority` naming a Service in any of its DNS forms (port dropped) → its FQDN; short names
/// are in `namespace`. IPs, `localhost` and outside names are not Services.
fn service_of_authority(authority: &str, namespace: &str) -> Option<String> {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [svc] => Some(format!("{svc}.{namespace}.svc.cluster.local")),
        [svc, ns] | [svc, ns, "svc"] | [svc, ns, "svc", "cluster", "local"] => {
            Some(format!("{svc}.{ns}.svc.cluster.local"))
        }
        _ => None,
    }
}

/// `service-c.istioinaction.svc.cluster.local` → (`service-c`, `istioinaction`).
fn split_service(fqdn: &str) -> (String, String) {
    let mut parts = fqdn.split('.');
    let name = parts.next().unwrap_or(UNKNOWN).to_string();
    let ns = parts.next().unwrap_or(UNKNOWN).to_string();
    (name, ns)
}

/// The series one access-log entry counts in, seen by the proxy of `this`; `None` for lines
/// that are not HTTP requests of this proxy (TCP, partial lines, another proxy's).
pub(crate) fn series_of(entry: &Value, this: &WorkloadMeta) -> Option<SeriesKey> {
    let reporter = field(entry, "reporter")?;
    let protocol = field(entry, "protocol")?;
    if !protocol.starts_with("HTTP") {
        return None;
    }
    if let Some(pod) = field(entry, "pod")
        && pod != format!("{}.{}", this.pod_name, this.namespace)
    {
        return None;
    }
    // The peer filter's metadata, else the header as it arrived: a request header on the
    // destination side, a response header on the source side (the other direction carries
    // this proxy's own metadata).
    let arrived = match reporter {
        "destination" => "peer_request",
        _ => "peer_response",
    };
    let peer = field(entry, "peer")
        .or_else(|| field(entry, arrived))
        .and_then(decode_peer);
    let code = match entry.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "0".into(),
    };
    let flags = field(entry, "flags").unwrap_or("-").to_string();
    let grpc = field(entry, "content_type").is_some_and(|c| c.starts_with("application/grpc"));
    let spiffe = |san: Option<&str>| {
        san.filter(|s| s.starts_with("spiffe://"))
            .map(str::to_string)
            .unwrap_or_else(|| UNKNOWN.into())
    };

    let (source, destination, service, policy) = match reporter {
        "destination" => {
            let client_san = field(entry, "downstream_san");
            let mtls = client_san.is_some();
            let source = match &peer {
                Some(p) => Side::of(p, spiffe(client_san)),
                None => Side::unknown(spiffe(client_san)),
            };
            let own = if mtls { this.spiffe() } else { UNKNOWN.into() };
            let service = field(entry, "peer_cluster")
                .or_else(|| field(entry, "peer_request_cluster"))
                .and_then(service_of_cluster)
                .or_else(|| {
                    field(entry, "authority").and_then(|a| service_of_authority(a, &this.namespace))
                });
            let policy = if mtls { "mutual_tls" } else { "none" };
            (source, Side::of(this, own), service, policy)
        }
        "source" => {
            let server_san = field(entry, "upstream_san");
            let own = if server_san.is_some() {
                this.spiffe()
            } else {
                UNKNOWN.into()
            };
            let destination = match &peer {
                Some(p) => Side::of(p, spiffe(server_san)),
                None => Side::unknown(spiffe(server_san)),
            };
            let service = field(entry, "cluster")
                .and_then(service_of_cluster)
                .or_else(|| {
                    field(entry, "authority").and_then(|a| service_of_authority(a, &this.namespace))
                });
            (Side::of(this, own), destination, service, "unknown")
        }
        _ => return None,
    };
    let (service, service_name, service_namespace) = match service {
        Some(fqdn) => {
            let (name, ns) = split_service(&fqdn);
            (fqdn, name, ns)
        }
        None => (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN.into()),
    };
    Some(vec![
        reporter.to_string(),
        source.workload,
        source.canonical_service,
        source.canonical_revision,
        source.namespace,
        source.principal,
        source.app,
        source.version,
        source.cluster,
        destination.workload,
        destination.namespace,
        destination.principal,
        destination.app,
        destination.version,
        service,
        destination.canonical_service,
        destination.canonical_revision,
        service_name,
        service_namespace,
        destination.cluster,
        if grpc { "grpc" } else { "http" }.into(),
        code,
        if grpc { "0" } else { "" }.into(),
        flags,
        policy.into(),
    ])
}

impl RequestCounters {
    /// Count every complete line of `chunk` (JSON access-log lines).
    pub(crate) fn add_lines(&mut self, chunk: &str, this: &WorkloadMeta) {
        for line in chunk.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(key) = series_of(&entry, this) {
                *self.series.entry(key).or_insert(0) += 1;
            }
        }
    }

    /// The counters in the Prometheus text format, with their `# TYPE` line.
    pub(crate) fn render(&self) -> String {
        let mut out = format!("# TYPE {REQUESTS_TOTAL} counter\n");
        for (key, count) in &self.series {
            out.push_str(REQUESTS_TOTAL);
            out.push('{');
            for (i, (name, value)) in LABELS.iter().zip(key).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push_str("=\"");
                out.push_str(&escape(value));
                out.push('"');
            }
            out.push_str("} ");
            out.push_str(&count.to_string());
            out.push('\n');
        }
        out
    }

    /// Number of series.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }
}

/// Prometheus label-value escaping: backslash, double quote, newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::tests::meta;
    use super::super::{Reporter, encode_peer};
    use super::*;

    fn labels(key: &SeriesKey) -> BTreeMap<&'static str, &str> {
        LABELS
            .iter()
            .copied()
            .zip(key.iter().map(String::as_str))
            .collect()
    }

    fn a() -> WorkloadMeta {
        meta("istioinaction", "service-a", "service-a", "v1", "service-a")
    }
    fn c2() -> WorkloadMeta {
        meta(
            "istioinaction",
            "service-c-v2",
            "service-c",
            "v2",
            "service-c",
        )
    }

    /// A line as Envoy writes it with `stats_access_log` (keys sorted, numbers bare).
    fn line(reporter: Reporter, pod: &WorkloadMeta, extra: serde_json::Value) -> String {
        let mut v = serde_json::json!({
            "reporter": reporter.as_str(),
            "pod": format!("{}.{}", pod.pod_name, pod.namespace),
            "code": 200,
            "flags": "-",
            "protocol": "HTTP/1.1",
            "authority": null,
            "cluster": null,
            "peer": null,
            "peer_cluster": null,
            "peer_request": null,
            "peer_request_cluster": null,
            "peer_response": null,
            "downstream_san": null,
            "upstream_san": null,
            "content_type": null,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    }

    #[test]
    fn inbound_over_mtls_from_a_sidecar() {
        let entry: Value = serde_json::from_str(&line(
            Reporter::Destination,
            &c2(),
            serde_json::json!({
                "code": 500,
                "authority": "service-c",
                "peer": encode_peer(&a()),
                "peer_cluster": "outbound|80||service-c.istioinaction.svc.cluster.local",
                "downstream_san": "spiffe://cluster.local/ns/istioinaction/sa/service-a",
            }),
        ))
        .unwrap();
        let key = series_of(&entry, &c2()).unwrap();
        let l = labels(&key);
        assert_eq!(l["reporter"], "destination");
        assert_eq!(l["source_workload"], "service-a");
        assert_eq!(l["source_workload_namespace"], "istioinaction");
        assert_eq!(
            l["source_principal"],
            "spiffe://cluster.local/ns/istioinaction/sa/service-a"
        );
        assert_eq!((l["source_app"], l["source_version"]), ("service-a", "v1"));
        assert_eq!(l["destination_workload"], "service-c-v2");
        assert_eq!(
            l["destination_principal"],
            "spiffe://cluster.local/ns/istioinaction/sa/service-c"
        );
        assert_eq!(
            (l["destination_app"], l["destination_version"]),
            ("service-c", "v2")
        );
        assert_eq!(
            l["destination_service"],
            "service-c.istioinaction.svc.cluster.local"
        );
        assert_eq!(l["destination_service_name"], "service-c");
        assert_eq!(l["destination_service_namespace"], "istioinaction");
        assert_eq!(l["request_protocol"], "http");
        assert_eq!(l["response_code"], "500");
        assert_eq!(l["response_flags"], "-");
        assert_eq!(l["connection_security_policy"], "mutual_tls");
    }

    #[test]
    fn headers_as_they_arrived_stand_in_for_the_filter() {
        let inbound: Value = serde_json::from_str(&line(
            Reporter::Destination,
            &c2(),
            serde_json::json!({
                "peer_request": encode_peer(&a()),
                "peer_response": encode_peer(&c2()),
                "peer_request_cluster": "outbound|80|v2|service-c.istioinaction.svc.cluster.local",
            }),
        ))
        .unwrap();
        let key = series_of(&inbound, &c2()).unwrap();
        assert_eq!(labels(&key)["source_workload"], "service-a");
        assert_eq!(labels(&key)["destination_service_name"], "service-c");
        let outbound: Value = serde_json::from_str(&line(
            Reporter::Source,
            &a(),
            serde_json::json!({"peer_request": encode_peer(&a()), "peer_response": encode_peer(&c2())}),
        ))
        .unwrap();
        let key = series_of(&outbound, &a()).unwrap();
        assert_eq!(labels(&key)["destination_workload"], "service-c-v2");
    }

    #[test]
    fn inbound_in_plaintext_from_a_legacy_client() {
        let entry: Value = serde_json::from_str(&line(
            Reporter::Destination,
            &a(),
            serde_json::json!({"authority": "service-a.istioinaction.svc.cluster.local"}),
        ))
        .unwrap();
        let l_key = series_of(&entry, &a()).unwrap();
        let l = labels(&l_key);
        assert_eq!(l["source_workload"], "unknown");
        assert_eq!(l["source_principal"], "unknown");
        assert_eq!(l["source_app"], "unknown");
        assert_eq!(l["destination_principal"], "unknown");
        assert_eq!(l["destination_service_name"], "service-a");
        assert_eq!(l["connection_security_policy"], "none");
    }

    #[test]
    fn outbound_reports_the_destination_from_its_answer() {
        let entry: Value = serde_json::from_str(&line(
            Reporter::Source,
            &a(),
            serde_json::json!({
                "code": 503,
                "flags": "UF",
                "authority": "service-c",
                "cluster": "outbound|80|version-v1|service-c.istioinaction.svc.cluster.local",
                "peer": encode_peer(&c2()),
                "upstream_san": "spiffe://cluster.local/ns/istioinaction/sa/service-c",
            }),
        ))
        .unwrap();
        let key = series_of(&entry, &a()).unwrap();
        let l = labels(&key);
        assert_eq!(l["reporter"], "source");
        assert_eq!(l["source_workload"], "service-a");
        assert_eq!(
            l["source_principal"],
            "spiffe://cluster.local/ns/istioinaction/sa/service-a"
        );
        assert_eq!(l["destination_workload"], "service-c-v2");
        assert_eq!(l["destination_service_name"], "service-c");
        assert_eq!(l["response_code"], "503");
        assert_eq!(l["response_flags"], "UF");
        assert_eq!(l["connection_security_policy"], "unknown");
    }

    #[test]
    fn lines_become_counters_and_text() {
        let mut counters = RequestCounters::default();
        let ok = line(
            Reporter::Source,
            &a(),
            serde_json::json!({"cluster": "outbound|80||service-b.istioinaction.svc.cluster.local"}),
        );
        let failed = line(
            Reporter::Source,
            &a(),
            serde_json::json!({"code": 500, "cluster": "outbound|80||service-c.istioinaction.svc.cluster.local"}),
        );
        let tcp = line(
            Reporter::Source,
            &a(),
            serde_json::json!({"protocol": null}),
        );
        let other_pod = line(Reporter::Source, &c2(), serde_json::json!({}));
        let chunk = format!("{ok}\n{ok}\n{failed}\n{tcp}\n{other_pod}\nnot json\n");
        counters.add_lines(&chunk, &a());
        assert_eq!(counters.len(), 2);
        let text = counters.render();
        assert!(text.starts_with("# TYPE istio_requests_total counter\n"));
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), 2);
        let b = lines
            .iter()
            .find(|l| l.contains("destination_service_name=\"service-b\""))
            .unwrap();
        assert!(b.ends_with("} 2"), "{b}");
        assert!(b.contains("response_code=\"200\""));
        let c = lines
            .iter()
            .find(|l| l.contains("destination_service_name=\"service-c\""))
            .unwrap();
        assert!(
            c.ends_with("} 1") && c.contains("response_code=\"500\""),
            "{c}"
        );
        assert!(b.starts_with(
            "istio_requests_total{reporter=\"source\",source_workload=\"service-a\","
        ));
    }

    #[test]
    fn services_from_clusters_and_authorities() {
        assert_eq!(
            service_of_cluster("outbound|80|version-v2|service-c.istioinaction.svc.cluster.local")
                .as_deref(),
            Some("service-c.istioinaction.svc.cluster.local")
        );
        assert_eq!(service_of_cluster("inbound|8080||"), None);
        assert_eq!(service_of_cluster("PassthroughCluster"), None);
        assert_eq!(
            service_of_authority("service-b:80", "istioinaction").as_deref(),
            Some("service-b.istioinaction.svc.cluster.local")
        );
        assert_eq!(
            service_of_authority("service-a.istioinaction", "default").as_deref(),
            Some("service-a.istioinaction.svc.cluster.local")
        );
        assert_eq!(service_of_authority("localhost:8080", "x"), None);
        assert_eq!(service_of_authority("127.2.0.4", "x"), None);
        assert_eq!(service_of_authority("example.com.au.x.y.z", "x"), None);
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
