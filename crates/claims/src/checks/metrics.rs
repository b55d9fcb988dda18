//! Istio's standard metric `istio_requests_total`, read from a sidecar's merged Prometheus
//! endpoint (:15020/stats/prometheus) or from Prometheus's query API.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::probes::Sample;

pub use crate::probes::prometheus::ISTIO_REQUESTS_TOTAL as REQUESTS_TOTAL;

/// Series of `istio_requests_total` whose labels include every `(label, value)` pair.
pub fn requests_matching<'a>(samples: &'a [Sample], labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == REQUESTS_TOTAL && s.matches(labels))
        .collect()
}

/// Total of the matching series.
pub fn total(samples: &[&Sample]) -> f64 {
    samples.iter().map(|s| s.value).sum()
}

/// Requests a workload's own sidecar recorded as received (reporter="destination").
pub fn received_by(samples: &[Sample], workload: &str) -> f64 {
    total(&requests_matching(
        samples,
        &[
            ("reporter", "destination"),
            ("destination_workload", workload),
        ],
    ))
}

/// Requests received from `source_workload`, by `connection_security_policy`.
pub fn security_policies_from(samples: &[Sample], source_workload: &str) -> BTreeMap<String, f64> {
    let mut by_policy = BTreeMap::new();
    for s in requests_matching(
        samples,
        &[
            ("reporter", "destination"),
            ("source_workload", source_workload),
        ],
    ) {
        let policy = s
            .labels
            .get("connection_security_policy")
            .cloned()
            .unwrap_or_else(|| "(none)".to_string());
        *by_policy.entry(policy).or_insert(0.0) += s.value;
    }
    by_policy
}

/// What `source_workload`'s sidecar sent (reporter="source"), summed per
/// `(destination_service_name, response_code)` — the shape of the workshop's Prometheus query
/// `sum by (destination_service_name, response_code) (istio_requests_total{reporter="source",…})`.
pub fn sent_by_destination(
    samples: &[Sample],
    source_workload: &str,
) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for s in requests_matching(
        samples,
        &[("reporter", "source"), ("source_workload", source_workload)],
    ) {
        let Some(destination) = s.labels.get("destination_service_name") else {
            continue;
        };
        let code = s.labels.get("response_code").cloned().unwrap_or_default();
        *counts.entry((destination.clone(), code)).or_insert(0.0) += s.value;
    }
    counts
}

/// How much each counter grew from `before` to `after`, key by key. A key missing before
/// counts from zero; a key that shrank was reset (its pod restarted), so all of `after`
/// counts — Prometheus's own rule for counter resets in `increase()`.
pub fn growth<K: Ord + Clone>(
    before: &BTreeMap<K, f64>,
    after: &BTreeMap<K, f64>,
) -> BTreeMap<K, f64> {
    after
        .iter()
        .map(|(k, now)| {
            let then = before.get(k).copied().unwrap_or(0.0);
            let grown = if *now >= then { now - then } else { *now };
            (k.clone(), grown)
        })
        .collect()
}

/// Growth of the `istio_requests_total` series matching `labels`, series by series (the whole
/// label set identifies one), from `before` to `after`.
pub fn requests_growth(before: &[Sample], after: &[Sample], labels: &[(&str, &str)]) -> f64 {
    let by_series = |samples: &[Sample]| -> BTreeMap<BTreeMap<String, String>, f64> {
        requests_matching(samples, labels)
            .into_iter()
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    };
    growth(&by_series(before), &by_series(after)).values().sum()
}

/// Success rate (2xx share) per destination of counts keyed `(destination, response_code)`,
/// with the request count. Destinations with no requests are absent. (The workshop's Grafana
/// panel counts non-5xx; with only 200 and 500 answered here the two are the same.)
pub fn success_rates_of(counts: &BTreeMap<(String, String), f64>) -> BTreeMap<String, (f64, f64)> {
    let mut by_destination: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for ((destination, code), n) in counts {
        let entry = by_destination
            .entry(destination.clone())
            .or_insert((0.0, 0.0));
        if code.starts_with('2') {
            entry.0 += n;
        }
        entry.1 += n;
    }
    by_destination
        .into_iter()
        .filter(|(_, (_, all))| *all > 0.0)
        .map(|(d, (ok, all))| (d, (ok / all, all)))
        .collect()
}

/// Success rate (2xx share) per `destination_service_name` of requests a source sidecar sent,
/// with the request count. Destinations with no requests are absent.
#[cfg(test)] // only the tests use it
pub(crate) fn success_rates(
    samples: &[Sample],
    source_workload: &str,
) -> BTreeMap<String, (f64, f64)> {
    success_rates_of(&sent_by_destination(samples, source_workload))
}

#[derive(Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    data: Option<QueryData>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Parse a Prometheus `/api/v1/query` answer holding an instant vector into samples named after
/// their `__name__` label (or `metric_name` when the query aggregated it away).
pub fn parse_query_vector(body: &str, metric_name: &str) -> Result<Vec<Sample>, String> {
    let response: QueryResponse = serde_json::from_str(body)
        .map_err(|e| format!("Prometheus answered something that is not a query result ({e})"))?;
    if response.status != "success" {
        return Err(format!(
            "Prometheus query failed: {}",
            response.error.unwrap_or(response.status)
        ));
    }
    let data = response
        .data
        .ok_or_else(|| "Prometheus query result has no data".to_string())?;
    if data.result_type != "vector" {
        return Err(format!(
            "expected an instant vector from Prometheus, got {}",
            data.result_type
        ));
    }
    data.result
        .into_iter()
        .map(|v| {
            let value = v
                .value
                .1
                .parse::<f64>()
                .map_err(|e| format!("bad sample value {:?}: {e}", v.value.1))?;
            let mut labels = v.metric;
            let name = labels
                .remove("__name__")
                .unwrap_or_else(|| metric_name.to_string());
            Ok(Sample {
                name,
                labels,
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: REQUESTS_TOTAL.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn success_rates_single_out_the_failing_destination() {
        let samples = vec![
            sample(
                &[
                    ("reporter", "source"),
                    ("source_workload", "service-a"),
                    ("destination_service_name", "service-b"),
                    ("response_code", "200"),
                ],
                40.0,
            ),
            sample(
                &[
                    ("reporter", "source"),
                    ("source_workload", "service-a"),
                    ("destination_service_name", "service-c"),
                    ("response_code", "200"),
                ],
                20.0,
            ),
            sample(
                &[
                    ("reporter", "source"),
                    ("source_workload", "service-a"),
                    ("destination_service_name", "service-c"),
                    ("response_code", "500"),
                ],
                20.0,
            ),
            sample(
                &[
                    ("reporter", "destination"),
                    ("source_workload", "service-a"),
                    ("destination_service_name", "service-c"),
                    ("response_code", "500"),
                ],
                20.0,
            ),
        ];
        let rates = success_rates(&samples, "service-a");
        assert_eq!(rates["service-b"], (1.0, 40.0));
        assert_eq!(rates["service-c"], (0.5, 40.0));
    }

    #[test]
    fn growth_counts_only_what_came_after_and_survives_resets() {
        let key = |d: &str, c: &str| (d.to_string(), c.to_string());
        let before = BTreeMap::from([
            (key("service-b", "503"), 1.0),
            (key("service-b", "200"), 10.0),
        ]);
        let after = BTreeMap::from([
            (key("service-b", "503"), 1.0),
            (key("service-b", "200"), 41.0),
            (key("service-c", "500"), 15.0),
        ]);
        let grown = growth(&before, &after);
        assert_eq!(grown[&key("service-b", "503")], 0.0);
        assert_eq!(grown[&key("service-b", "200")], 31.0);
        assert_eq!(grown[&key("service-c", "500")], 15.0);
        // An old 503 (an earlier scenario's, or a reused cluster's) no longer spoils the rate
        // of the requests just sent.
        let rates = success_rates_of(&grown);
        assert_eq!(rates["service-b"], (1.0, 31.0));
        // A counter that went down was reset: everything it holds is new.
        let reset = growth(
            &BTreeMap::from([(key("a", "200"), 50.0)]),
            &BTreeMap::from([(key("a", "200"), 4.0)]),
        );
        assert_eq!(reset[&key("a", "200")], 4.0);
    }

    #[test]
    fn series_growth_matches_series_by_their_labels() {
        let five_hundreds = |v: f64| {
            sample(
                &[
                    ("reporter", "destination"),
                    ("response_code", "500"),
                    ("source_workload", "x"),
                ],
                v,
            )
        };
        let before = vec![five_hundreds(3.0)];
        assert_eq!(
            requests_growth(&before, &[five_hundreds(3.0)], &[("response_code", "500")]),
            0.0
        );
        assert_eq!(
            requests_growth(&before, &[five_hundreds(5.0)], &[("response_code", "500")]),
            2.0
        );
        assert_eq!(
            requests_growth(&[], &[five_hundreds(5.0)], &[("response_code", "500")]),
            5.0
        );
    }

    #[test]
    fn received_and_security_policies_use_the_destination_reporter() {
        let samples = vec![
            sample(
                &[
                    ("reporter", "destination"),
                    ("destination_workload", "service-c-v2"),
                    ("source_workload", "service-a"),
                    ("connection_security_policy", "mutual_tls"),
                ],
                7.0,
            ),
            sample(
                &[
                    ("reporter", "source"),
                    ("destination_workload", "service-c-v2"),
                    ("source_workload", "service-a"),
                ],
                100.0,
            ),
            sample(
                &[
                    ("reporter", "destination"),
                    ("destination_workload", "service-c-v1"),
                    ("source_workload", "service-a"),
                    ("connection_security_policy", "none"),
                ],
                3.0,
            ),
        ];
        assert_eq!(received_by(&samples, "service-c-v2"), 7.0);
        let policies = security_policies_from(&samples, "service-a");
        assert_eq!(policies["mutual_tls"], 7.0);
        assert_eq!(policies["none"], 3.0);
    }

    #[test]
    fn parses_a_query_vector() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"destination_service_name":"service-c","response_code":"500"},"value":[1700000000.1,"12"]}]}}"#;
        let samples = parse_query_vector(body, REQUESTS_TOTAL).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].name, REQUESTS_TOTAL);
        assert_eq!(samples[0].value, 12.0);
        assert!(parse_query_vector(r#"{"status":"error","error":"parse error"}"#, "x").is_err());
        assert!(parse_query_vector("<html>", "x").is_err());
    }
}
