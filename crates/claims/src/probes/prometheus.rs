//! The Prometheus text exposition format, as Istio's sidecars serve it on
//! `:15020/stats/prometheus`, and helpers for `istio_requests_total`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// One sample: a metric name, its labels and its value (timestamps are dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `istio_requests_total`.
    pub name: String,
    /// Label names to values, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

/// The sample as a line of Prometheus's text format (`name{label="value",…} value`), labels in
/// name order and values escaped as that format escapes them.
impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            write!(f, "{{{}}}", labels.join(","))?;
        }
        write!(f, " {}", self.value)
    }
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// True when every `(label, value)` pair matches.
    pub fn matches(&self, filter: &[(&str, &str)]) -> bool {
        filter.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Name of Istio's request counter.
pub const ISTIO_REQUESTS_TOTAL: &str = "istio_requests_total";

/// The metric-name prefix of Istio's standard metrics (istio/proxy
/// `source/extensions/filters/http/istio_stats/istio_stats.cc`: `istio_requests_total`,
/// `istio_request_duration_milliseconds`, …), the only lines the claims read.
pub(crate) const ISTIO_PREFIX: &str = "istio_";

/// Parses a whole exposition; comments (`# HELP`, `# TYPE`) and blank lines are skipped.
/// A malformed `istio_…` line is an error naming its line number and content; any other line
/// that does not parse (an Envoy or Go runtime metric in a form this parser does not know) is
/// skipped, since no claim reads it and it must not fail a step about Istio's metrics.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(sample) => samples.push(sample),
            Err(message) if line.starts_with(ISTIO_PREFIX) => {
                return Err(Error::Parse {
                    what: format!("Prometheus metrics, line {}", i + 1),
                    message: format!("{message} in {line:?}"),
                });
            }
            Err(message) => {
                tracing::debug!(line = i + 1, %message, "skipped a metrics line no claim reads");
            }
        }
    }
    Ok(samples)
}

fn parse_line(line: &str) -> std::result::Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("expected a metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("missing value")?;
    let value = parse_value(value_text)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the value"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `name="value",…}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> std::result::Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {key:?}"));
        }
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated label value".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.insert(key.to_string(), value);
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

fn parse_value(text: &str) -> std::result::Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("bad value {text:?}")),
    }
}

/// Sum of the values of metric `name` over samples matching every `(label, value)`.
#[cfg(test)] // only the tests use it
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.matches(filter))
        .map(|s| s.value)
        .sum()
}

/// `istio_requests_total` summed per `response_code`, over samples matching `filter`
/// (e.g. `[("reporter", "destination"), ("destination_workload", "service-c-v2")]`).
#[cfg(test)] // only the tests use it
pub(crate) fn requests_by_response_code(
    samples: &[Sample],
    filter: &[(&str, &str)],
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == ISTIO_REQUESTS_TOTAL && s.matches(filter))
    {
        let code = s.label("response_code").unwrap_or("").to_string();
        *out.entry(code).or_insert(0.0) += s.value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_prints_as_a_line_of_the_text_format_and_parses_back() {
        let text =
            "istio_requests_total{reporter=\"source\",response_code=\"500\",x=\"a\\\"b\"} 14";
        let samples = parse_prometheus(text).unwrap();
        let line = samples[0].to_string();
        assert_eq!(line, text);
        assert_eq!(parse_prometheus(&line).unwrap(), samples);
    }

    // Lines as Istio's sidecar serves them on :15020/stats/prometheus (Envoy's stats merged
    // with istio-agent's), trimmed to a few labels per line.
    const SIDECAR: &str = r#"# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",source_workload="istio-ingressgateway",source_workload_namespace="istio-system",source_principal="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",destination_workload="service-a",destination_workload_namespace="istioinaction",destination_service="service-a.istioinaction.svc.cluster.local",request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="mutual_tls"} 16
istio_requests_total{reporter="destination",source_workload="istio-ingressgateway",destination_workload="service-a",response_code="500",response_flags="-",connection_security_policy="mutual_tls"} 14
istio_requests_total{reporter="source",source_workload="service-a",destination_workload="service-c-v2",destination_service_name="service-c",response_code="500",response_flags="-",connection_security_policy="unknown"} 14
istio_requests_total{reporter="source",source_workload="service-a",destination_workload="service-c-v1",destination_service_name="service-c",response_code="200",response_flags="-",connection_security_policy="unknown"} 16
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="0.5"} 0
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="+Inf"} 16
istio_request_duration_milliseconds_sum{reporter="destination",response_code="200"} 41.5
# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.7862e-05
go_gc_duration_seconds{quantile="1"} NaN
envoy_cluster_upstream_cx_total{cluster_name="outbound|80||service-b.istioinaction.svc.cluster.local"} 3
istio_build{component="proxy",tag="1.24.2"} 1
process_start_time_seconds 1.71456e+09
up 1 1714560000000
"#;

    #[test]
    fn parses_sidecar_stats() {
        let samples = parse_prometheus(SIDECAR).unwrap();
        assert_eq!(samples.len(), 13);
        let first = &samples[0];
        assert_eq!(first.name, "istio_requests_total");
        assert_eq!(first.label("response_code"), Some("200"));
        assert_eq!(first.label("grpc_response_status"), Some(""));
        assert_eq!(
            first.label("source_principal"),
            Some("spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account")
        );
        assert_eq!(first.value, 16.0);
        let inf = samples
            .iter()
            .find(|s| s.label("le") == Some("+Inf"))
            .unwrap();
        assert_eq!(inf.value, 16.0);
        assert!(samples.iter().any(|s| s.value.is_nan()));
        assert_eq!(
            samples
                .iter()
                .find(|s| s.name == "envoy_cluster_upstream_cx_total")
                .unwrap()
                .label("cluster_name"),
            Some("outbound|80||service-b.istioinaction.svc.cluster.local")
        );
        assert_eq!(samples.last().unwrap().name, "up");
        assert_eq!(samples[11].value, 1.71456e9);
    }

    #[test]
    fn istio_requests_helpers() {
        let samples = parse_prometheus(SIDECAR).unwrap();
        let inbound = requests_by_response_code(&samples, &[("reporter", "destination")]);
        assert_eq!(inbound.get("200"), Some(&16.0));
        assert_eq!(inbound.get("500"), Some(&14.0));
        assert_eq!(inbound.len(), 2, "histograms are not requests: {inbound:?}");
        let to_c = requests_by_response_code(
            &samples,
            &[
                ("reporter", "source"),
                ("destination_service_name", "service-c"),
            ],
        );
        assert_eq!(to_c.values().sum::<f64>(), 30.0);
        assert_eq!(
            sum(
                &samples,
                ISTIO_REQUESTS_TOTAL,
                &[("destination_workload", "service-c-v2")]
            ),
            14.0
        );
        assert_eq!(
            sum(
                &samples,
                ISTIO_REQUESTS_TOTAL,
                &[("connection_security_policy", "mutual_tls")]
            ),
            30.0
        );
    }

    #[test]
    fn escapes_in_label_values() {
        let s = parse_prometheus(r#"m{a="x\"y",b="line\nnext",c="back\\slash",} 2"#).unwrap();
        assert_eq!(s[0].label("a"), Some("x\"y"));
        assert_eq!(s[0].label("b"), Some("line\nnext"));
        assert_eq!(s[0].label("c"), Some("back\\slash"));
        assert_eq!(s[0].value, 2.0);
    }

    #[test]
    fn malformed_istio_lines_name_the_line() {
        for (text, line) in [
            ("ok 1\nistio_requests_total{a=\"1\" 2", 2),
            ("# c\n\nistio_requests_total{a=1} 2", 3),
            ("istio_requests_total{a=\"1\"}", 1),
            ("istio_requests_total 1 2 3", 1),
            ("istio_requests_total abc", 1),
            ("istio_build{tag=\"unterminated} 1", 1),
        ] {
            let msg = parse_prometheus(text).unwrap_err().to_string();
            assert!(msg.contains(&format!("line {line}")), "{text:?}: {msg}");
        }
    }

    #[test]
    fn other_unparsable_lines_are_skipped() {
        let text = "envoy_cluster_x{a=\"1\" 2\n{a=\"b\"} 1\nm abc\nistio_requests_total{response_code=\"200\"} 3\n";
        let samples = parse_prometheus(text).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].value, 3.0);
    }

    /// `istio_requests_total` as the sidecar's merged endpoint prints it: Envoy's Prometheus
    /// output (`# TYPE … counter`, then one line per tag set) with every standard label Istio's
    /// stats filter sets (istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc`,
    /// `Context`: reporter … grpc_response_status), merged by istio-agent with its own
    /// `istio_agent_*` and Go runtime metrics.
    const UPSTREAM_EXPOSITION: &str = r#"# TYPE istio_requests_total counter
istio_requests_total{reporter="source",source_workload="service-a",source_canonical_service="service-a",source_canonical_revision="v1",source_workload_namespace="istioinaction",source_principal="spiffe://cluster.local/ns/istioinaction/sa/service-a",source_app="service-a",source_version="v1",source_cluster="Kubernetes",destination_workload="service-c-v2",destination_workload_namespace="istioinaction",destination_principal="spiffe://cluster.local/ns/istioinaction/sa/service-c",destination_app="service-c",destination_version="v2",destination_service="service-c.istioinaction.svc.cluster.local",destination_service_name="service-c",destination_service_namespace="istioinaction",destination_canonical_service="service-c",destination_canonical_revision="v2",destination_cluster="Kubernetes",request_protocol="http",response_flags="-",connection_security_policy="unknown",response_code="500",grpc_response_status=""} 14
istio_requests_total{reporter="destination",source_workload="istio-ingressgateway",source_canonical_service="istio-ingressgateway",source_canonical_revision="latest",source_workload_namespace="istio-system",source_principal="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",source_app="istio-ingressgateway",source_version="unknown",source_cluster="Kubernetes",destination_workload="service-a",destination_workload_namespace="istioinaction",destination_principal="spiffe://cluster.local/ns/istioinaction/sa/service-a",destination_app="service-a",destination_version="v1",destination_service="service-a.istioinaction.svc.cluster.local",destination_service_name="service-a",destination_service_namespace="istioinaction",destination_canonical_service="service-a",destination_canonical_revision="v1",destination_cluster="Kubernetes",request_protocol="http",response_flags="-",connection_security_policy="mutual_tls",response_code="200",grpc_response_status=""} 17
# TYPE istio_agent_pilot_xds gauge
istio_agent_pilot_xds{version="1.28.0"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
"#;

    #[test]
    fn parses_the_upstream_shaped_exposition() {
        let samples = parse_prometheus(UPSTREAM_EXPOSITION).unwrap();
        let requests: Vec<_> = samples
            .iter()
            .filter(|s| s.name == ISTIO_REQUESTS_TOTAL)
            .collect();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].labels.len(), 25, "every standard label");
        assert_eq!(requests[0].label("grpc_response_status"), Some(""));
        assert_eq!(
            requests_by_response_code(&samples, &[("reporter", "source")]).get("500"),
            Some(&14.0)
        );
        assert_eq!(
            requests[1].label("connection_security_policy"),
            Some("mutual_tls")
        );
    }
}
