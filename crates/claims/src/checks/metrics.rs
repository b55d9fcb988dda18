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

/// How much each counter grew from `before` to `after`, key by key, both read from the same
/// source (a sidecar's stats endpoint twice). A key missing before counts from zero; a key that
/// shrank was reset (its pod restarted), so all of `after` counts — Prometheus's own rule for
/// counter resets in `increase()`. Against a view that lags the baseline's source, use
/// [`growth_past_baseline`]: there a drop is lag, not a reset.
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

/// How much each counter of a view that lags the baseline's source grew past that baseline:
/// Prometheus, which scrapes a sidecar every 15 s (istio/istio `samples/addons/prometheus.yaml`,
/// 1.28–1.31: `scrape_interval: 15s`), compared with the sidecar's own reading taken before a
/// batch. Until Prometheus has scraped past the baseline, its value of a key can be below the
/// baseline only because it lags; [`growth`] would read that as a counter reset and count the
/// key's whole history as the batch's growth. So here a drop is never a reset: while any key
/// of `baseline` is below it in `now` (or absent: not scraped yet), the answer is `Err` with
/// those keys and the caller waits for the next scrape. Once every key is at or past its
/// baseline, the growth is `now - baseline` key by key (keys new since the baseline count from
/// zero). A sidecar that really restarted after the baseline keeps Prometheus below it for
/// good, and the wait ends at its limit naming the keys — never with a verdict on history.
pub fn growth_past_baseline<K: Ord + Clone>(
    baseline: &BTreeMap<K, f64>,
    now: &BTreeMap<K, f64>,
) -> Result<BTreeMap<K, f64>, Vec<K>> {
    let lagging: Vec<K> = baseline
        .iter()
        .filter(|(k, then)| now.get(*k).copied().unwrap_or(0.0) < **then)
        .map(|(k, _)| k.clone())
        .collect();
    if !lagging.is_empty() {
        return Err(lagging);
    }
    Ok(now
        .iter()
        .map(|(k, v)| (k.clone(), v - baseline.get(k).copied().unwrap_or(0.0)))
        .collect())
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

    /// F5: a Prometheus that has not yet scraped past the sidecar's baseline is lagging, not
    /// reset: the growth waits for it instead of counting the whole history.
    #[test]
    fn a_lagging_prometheus_is_not_a_reset() {
        let key = |d: &str, c: &str| (d.to_string(), c.to_string());
        // The sidecar's reading before the batch: 500 earlier requests to service-c, all 200.
        let baseline = BTreeMap::from([
            (key("service-c", "200"), 500.0),
            (key("service-b", "200"), 500.0),
        ]);
        // Prometheus's last scrape is older than the baseline: 490, and the 500s are new.
        let lagging = BTreeMap::from([
            (key("service-c", "200"), 490.0),
            (key("service-c", "500"), 16.0),
            (key("service-b", "200"), 531.0),
        ]);
        assert_eq!(
            growth_past_baseline(&baseline, &lagging).unwrap_err(),
            vec![key("service-c", "200")]
        );
        // The reset rule would have counted all 490 old 200s as the batch's: a rate of 97%
        // instead of the batch's own. This is what F5 was about.
        let misread = success_rates_of(&growth(&baseline, &lagging));
        assert!(misread["service-c"].1 > 500.0, "{misread:?}");
        // A key Prometheus has not scraped at all yet is lagging too.
        let unscraped = BTreeMap::from([(key("service-b", "200"), 531.0)]);
        assert!(growth_past_baseline(&baseline, &unscraped).is_err());
        // After the next scrape: exactly the batch's requests.
        let scraped = BTreeMap::from([
            (key("service-c", "200"), 515.0),
            (key("service-c", "500"), 16.0),
            (key("service-b", "200"), 531.0),
        ]);
        let grown = growth_past_baseline(&baseline, &scraped).unwrap();
        assert_eq!(grown[&key("service-c", "200")], 15.0);
        assert_eq!(grown[&key("service-c", "500")], 16.0);
        assert_eq!(grown[&key("service-b", "200")], 31.0);
        let rates = success_rates_of(&grown);
        assert_eq!(rates["service-c"], (15.0 / 31.0, 31.0));
        assert_eq!(rates["service-b"], (1.0, 31.0));
    }

    /// A genuine reset (the sidecar restarted) is still one where both readings come from the
    /// same source: [`growth`] counts all of the new value. Against a lagging view it never
    /// becomes a verdict: the key stays below its baseline and is reported as such.
    #[test]
    fn a_genuine_reset_counts_where_both_readings_are_the_sidecars() {
        let key = |c: &str| ("service-c".to_string(), c.to_string());
        let before = BTreeMap::from([(key("200"), 500.0)]);
        let restarted = BTreeMap::from([(key("200"), 12.0)]);
        assert_eq!(growth(&before, &restarted)[&key("200")], 12.0);
        assert_eq!(
            growth_past_baseline(&before, &restarted).unwrap_err(),
            vec![key("200")]
        );
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
