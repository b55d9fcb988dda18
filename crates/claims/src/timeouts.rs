//! The one timeout table: every wait of the suite is bounded by an entry here.
//!
//! Each entry can be overridden by an environment variable `HAPPY_TIMEOUT_<NAME>` whose value
//! is a duration such as `90s`, `2m`, `500ms`, `1h` or a bare number of seconds (`45`).
//! `HAPPY_CONSECUTIVE` sets how many consecutive successes an eventual assertion needs.
//! A bad value is an error naming the variable and the value, never a silent default. An empty
//! (or all-blank) value counts as unset, as it does for every other setting (see
//! `settings`). The poll interval must be shorter than every limit it paces (the assertion
//! and metrics limits): otherwise a check would give up after one try while saying it waited.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::retry::Convergence;

/// Limits for every wait the suite performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Creating (or reusing) the cluster.
    pub cluster_create: Duration,
    /// `istioctl install` until the control plane is ready.
    pub istio_install: Duration,
    /// Downloading one tool or archive.
    pub download: Duration,
    /// A Deployment rollout until every replica is new and ready.
    pub rollout: Duration,
    /// Pods matching a selector until they are Ready.
    pub pod_ready: Duration,
    /// How long a pod's image pull may keep failing with an error the kubelet retries (a
    /// timeout, a refused connection, a 5xx, a 429) before a wait takes it as final (see
    /// [`crate::cluster::startup::pod_failure`]).
    pub pull_retry: Duration,
    /// Deleting objects until they are gone.
    pub delete: Duration,
    /// One eventually-consistent assertion (retried until it holds).
    pub assertion: Duration,
    /// One HTTP request or exec.
    pub request: Duration,
    /// The time budgeted for each request of a batch sent straight to a pod: fake-service
    /// closes every connection, so each request opens a port-forward of its own, and batches
    /// that hold may go on as long as their size needs (see
    /// [`crate::checks::batch::pod_route_holding_limit`]).
    pub pod_request: Duration,
    /// The pause between two attempts of a retried check.
    pub poll_interval: Duration,
    /// How long a change may take to reach every sidecar. istiod pushes a change once no other
    /// has come for `PILOT_DEBOUNCE_AFTER` (100 ms), or after `PILOT_DEBOUNCE_MAX` (10 s) of
    /// steady changes (istio/istio `pilot/pkg/features/tuning.go`); the suite's changes come in
    /// short bursts, so a push follows the last one within a fraction of a second, and Envoy
    /// then swaps the changed clusters and listeners. Checks that judge a few seconds of
    /// traffic (packet captures) count only traffic that starts this long after the change.
    pub propagation: Duration,
    /// The observability addons until Ready.
    pub addons_ready: Duration,
    /// Metrics until they show what is expected (scrape intervals are long).
    pub metrics: Duration,
    /// Kiali's graph until it shows the traffic: Kiali drops edges whose
    /// `rate(istio_requests_total[…])` is 0, and `rate()` needs two scrapes with an increase
    /// (15 s apart with the addon's Prometheus, istio/istio `samples/addons/prometheus.yaml`
    /// 1.28–1.31 `scrape_interval: 15s`), plus Kiali's own queries.
    pub kiali: Duration,
    /// Headless Chromium in the browser test (tests/it/browser.rs): its start, and each page
    /// load or DevTools request.
    pub browser: Duration,
    /// Consecutive successes an eventual assertion needs.
    pub consecutive: u32,
}

/// One entry of the table, for the README and `--help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutDoc {
    /// The entry's name in [`Timeouts`], e.g. `rollout`.
    pub name: &'static str,
    /// The environment variable overriding it.
    pub env_var: String,
    /// The default, as written in the environment (`3m`).
    pub default: String,
    /// What the entry bounds.
    pub bounds: &'static str,
}

/// Variable setting [`Timeouts::consecutive`].
pub(crate) const CONSECUTIVE_VAR: &str = "HAPPY_CONSECUTIVE";

/// Prefix of every timeout variable.
pub(crate) const TIMEOUT_VAR_PREFIX: &str = "HAPPY_TIMEOUT_";

/// (name, default, what it bounds), in the order of the struct.
const TABLE: [(&str, Duration, &str); 16] = [
    (
        "cluster_create",
        Duration::from_secs(600),
        "creating or reusing the cluster",
    ),
    (
        "istio_install",
        Duration::from_secs(600),
        "installing Istio until its control plane is ready",
    ),
    (
        "download",
        Duration::from_secs(300),
        "downloading one tool or release archive",
    ),
    (
        "rollout",
        Duration::from_secs(180),
        "a Deployment rollout until every replica is new and ready",
    ),
    (
        "pod_ready",
        Duration::from_secs(180),
        "pods until they are Ready",
    ),
    (
        "pull_retry",
        Duration::from_secs(75),
        "how long an image pull may keep failing with an error the kubelet retries (timeout, refused or reset connection, 5xx, 429) before a wait gives up on the pod: the kubelet's back-off (10 s, doubling) tries it 4 times in 75 s",
    ),
    (
        "delete",
        Duration::from_secs(120),
        "deleting objects until they are gone",
    ),
    (
        "assertion",
        Duration::from_secs(30),
        "one eventually-consistent assertion, retried until it holds",
    ),
    (
        "request",
        Duration::from_secs(10),
        "one HTTP request or exec",
    ),
    (
        "pod_request",
        Duration::from_millis(500),
        "each request of a batch sent straight to a pod, which opens a port-forward per request: batches that hold may go on past the assertion limit up to consecutive × batch size × this",
    ),
    (
        "poll_interval",
        Duration::from_millis(100),
        "the pause between two attempts of a retried check",
    ),
    (
        "propagation",
        Duration::from_secs(3),
        "how long a change to the cluster may take to reach every sidecar: a check that judges a short stretch of traffic (a packet capture) counts only traffic that starts at least this long after the suite last changed an object",
    ),
    (
        "addons_ready",
        Duration::from_secs(300),
        "the observability addons until Ready",
    ),
    (
        "metrics",
        Duration::from_secs(90),
        "metrics until they show what is expected",
    ),
    (
        "kiali",
        Duration::from_secs(180),
        "Kiali's graph until it shows the traffic (two Prometheus scrapes and Kiali's queries)",
    ),
    (
        "browser",
        Duration::from_secs(60),
        "headless Chromium in the browser test: its start, each page load or DevTools request",
    ),
];

const DEFAULT_CONSECUTIVE: u32 = 3;

impl Default for Timeouts {
    fn default() -> Self {
        // `from_lookup` with nothing set cannot fail; building the defaults directly keeps
        // `Default` infallible without an `expect`.
        let d = |name: &str| {
            TABLE
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or(Duration::ZERO, |(_, d, _)| *d)
        };
        Timeouts {
            cluster_create: d("cluster_create"),
            istio_install: d("istio_install"),
            download: d("download"),
            rollout: d("rollout"),
            pod_ready: d("pod_ready"),
            pull_retry: d("pull_retry"),
            delete: d("delete"),
            assertion: d("assertion"),
            request: d("request"),
            pod_request: d("pod_request"),
            poll_interval: d("poll_interval"),
            propagation: d("propagation"),
            addons_ready: d("addons_ready"),
            metrics: d("metrics"),
            kiali: d("kiali"),
            browser: d("browser"),
            consecutive: DEFAULT_CONSECUTIVE,
        }
    }
}

impl Timeouts {
    /// The table with the process environment's overrides.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// The table with overrides from `lookup` (variable name → value), so tests need no
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut t = Timeouts::default();
        for (name, _, _) in TABLE {
            let var = env_var(name);
            let Some(value) = lookup(&var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let parsed = parse_duration(&value).map_err(|reason| Error::InvalidSetting {
                var: var.clone(),
                value: value.clone(),
                reason,
            })?;
            if parsed.is_zero() {
                return Err(Error::InvalidSetting {
                    var,
                    value,
                    reason: "a timeout must be longer than zero".into(),
                });
            }
            *t.entry_mut(name) = parsed;
        }
        if let Some(value) = lookup(CONSECUTIVE_VAR).filter(|v| !v.trim().is_empty()) {
            t.consecutive = match value.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(Error::InvalidSetting {
                        var: CONSECUTIVE_VAR.into(),
                        value,
                        reason: "expected a whole number of at least 1".into(),
                    });
                }
            };
        }
        for (paced, limit) in [("assertion", t.assertion), ("metrics", t.metrics)] {
            if t.poll_interval >= limit {
                return Err(Error::InvalidSetting {
                    var: env_var("poll_interval"),
                    value: format_duration(t.poll_interval),
                    reason: format!(
                        "the poll interval must be shorter than the {paced} limit {} ({}), or a \
                         check would try only once",
                        format_duration(limit),
                        env_var(paced)
                    ),
                });
            }
        }
        Ok(t)
    }

    /// Every entry with its variable, default and purpose.
    pub fn describe() -> Vec<TimeoutDoc> {
        let mut docs: Vec<TimeoutDoc> = TABLE
            .iter()
            .map(|(name, default, bounds)| TimeoutDoc {
                name,
                env_var: env_var(name),
                default: format_duration(*default),
                bounds,
            })
            .collect();
        docs.push(TimeoutDoc {
            name: "consecutive",
            env_var: CONSECUTIVE_VAR.into(),
            default: DEFAULT_CONSECUTIVE.to_string(),
            bounds: "consecutive successes an eventually-consistent assertion needs",
        });
        docs
    }

    /// `describe()` as a Markdown table (the README's timeout table is this, verbatim).
    pub fn markdown_table() -> String {
        let mut out = String::from("| variable | default | bounds |\n|---|---|---|\n");
        for doc in Self::describe() {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                doc.env_var, doc.default, doc.bounds
            ));
        }
        out
    }

    /// The retry policy of eventually-consistent assertions.
    pub fn convergence(&self) -> Convergence {
        Convergence {
            limit: self.assertion,
            interval: self.poll_interval,
            consecutive: self.consecutive,
        }
    }

    fn entry_mut(&mut self, name: &str) -> &mut Duration {
        match name {
            "cluster_create" => &mut self.cluster_create,
            "istio_install" => &mut self.istio_install,
            "download" => &mut self.download,
            "rollout" => &mut self.rollout,
            "pod_ready" => &mut self.pod_ready,
            "pull_retry" => &mut self.pull_retry,
            "delete" => &mut self.delete,
            "assertion" => &mut self.assertion,
            "request" => &mut self.request,
            "pod_request" => &mut self.pod_request,
            "propagation" => &mut self.propagation,
            "addons_ready" => &mut self.addons_ready,
            "metrics" => &mut self.metrics,
            "kiali" => &mut self.kiali,
            "browser" => &mut self.browser,
            // TABLE and this match list the same names; poll_interval is the only one left.
            _ => &mut self.poll_interval,
        }
    }
}

fn env_var(name: &str) -> String {
    format!("{TIMEOUT_VAR_PREFIX}{}", name.to_ascii_uppercase())
}

/// Parses `90s`, `2m`, `500ms`, `1h`, `1.5s`, `1m 30s` (humantime's grammar restricted to the
/// units `ms`, `s`, `m` and `h`: a timeout of days is a typo) or a bare number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let expected = "expected a duration such as 90s, 2m, 500ms, 1h or a number of seconds";
    if let Ok(seconds) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("{e}; {expected}"));
    }
    let units = t.split(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace());
    if let Some(other) = units
        .filter(|u| !u.is_empty())
        .find(|u| !matches!(*u, "ms" | "s" | "m" | "h"))
    {
        return Err(format!("unknown unit {other:?}; {expected}"));
    }
    humantime::parse_duration(t).map_err(|e| format!("{e}; {expected}"))
}

/// The shortest way to write a duration in the form `parse_duration` reads (`3m`, `1m 15s`).
pub(crate) fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_defaults_are_pinned() {
        let t = Timeouts::from_lookup(|_| None).unwrap();
        assert_eq!(t.cluster_create, Duration::from_secs(600));
        assert_eq!(t.istio_install, Duration::from_secs(600));
        assert_eq!(t.download, Duration::from_secs(300));
        assert_eq!(t.rollout, Duration::from_secs(180));
        assert_eq!(t.pod_ready, Duration::from_secs(180));
        assert_eq!(t.pull_retry, Duration::from_secs(75));
        assert_eq!(t.delete, Duration::from_secs(120));
        assert_eq!(t.assertion, Duration::from_secs(30));
        assert_eq!(t.request, Duration::from_secs(10));
        assert_eq!(t.pod_request, Duration::from_millis(500));
        assert_eq!(t.poll_interval, Duration::from_millis(100));
        assert_eq!(t.addons_ready, Duration::from_secs(300));
        assert_eq!(t.metrics, Duration::from_secs(90));
        assert_eq!(t.kiali, Duration::from_secs(180));
        assert_eq!(t.consecutive, 3);
        assert_eq!(t, Timeouts::default());
    }

    #[test]
    fn every_unit_overrides() {
        let t = Timeouts::from_lookup(lookup(&[
            ("HAPPY_TIMEOUT_ROLLOUT", "90s"),
            ("HAPPY_TIMEOUT_ASSERTION", "2m"),
            ("HAPPY_TIMEOUT_POLL_INTERVAL", "500ms"),
            ("HAPPY_TIMEOUT_REQUEST", "45"),
            ("HAPPY_TIMEOUT_CLUSTER_CREATE", "1h"),
            ("HAPPY_TIMEOUT_METRICS", " 1.5s "),
            ("HAPPY_CONSECUTIVE", "5"),
        ]))
        .unwrap();
        assert_eq!(t.rollout, Duration::from_secs(90));
        assert_eq!(t.assertion, Duration::from_secs(120));
        assert_eq!(t.poll_interval, Duration::from_millis(500));
        assert_eq!(t.request, Duration::from_secs(45));
        assert_eq!(t.cluster_create, Duration::from_secs(3600));
        assert_eq!(t.metrics, Duration::from_millis(1500));
        assert_eq!(t.consecutive, 5);
        // untouched entries keep their defaults
        assert_eq!(t.delete, Duration::from_secs(120));
        let c = t.convergence();
        assert_eq!(
            (c.limit, c.interval, c.consecutive),
            (Duration::from_secs(120), Duration::from_millis(500), 5)
        );
    }

    #[test]
    fn each_entry_has_its_own_variable() {
        for doc in Timeouts::describe()
            .iter()
            .filter(|d| d.name != "consecutive")
        {
            let t = Timeouts::from_lookup(lookup(&[(doc.env_var.as_str(), "7s")])).unwrap();
            let changed: Vec<Duration> = [
                t.cluster_create,
                t.istio_install,
                t.download,
                t.rollout,
                t.pod_ready,
                t.pull_retry,
                t.delete,
                t.assertion,
                t.request,
                t.pod_request,
                t.poll_interval,
                t.propagation,
                t.addons_ready,
                t.metrics,
                t.kiali,
                t.browser,
            ]
            .into_iter()
            .filter(|d| *d == Duration::from_secs(7))
            .collect();
            assert_eq!(changed.len(), 1, "{} changed {changed:?}", doc.env_var);
        }
    }

    #[test]
    fn durations_read_and_print_in_humantime_form() {
        for (text, ms) in [
            ("45", 45_000),
            ("1.5", 1_500),
            ("1.5s", 1_500),
            ("90s", 90_000),
            ("1m 30s", 90_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("2h", 7_200_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for text in ["10d", "3 weeks", "1M", "5 sec", "-5", "-5s", "inf", "", "s"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("expected a duration such as"), "{text}: {err}");
        }
        assert_eq!(format_duration(Duration::from_secs(75)), "1m 15s");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn bad_values_name_variable_and_value() {
        for (var, value) in [
            ("HAPPY_TIMEOUT_ROLLOUT", "soon"),
            ("HAPPY_TIMEOUT_ROLLOUT", "3 weeks"),
            ("HAPPY_TIMEOUT_ROLLOUT", "10d"),
            ("HAPPY_TIMEOUT_ROLLOUT", "-5s"),
            ("HAPPY_TIMEOUT_DELETE", "0s"),
            ("HAPPY_CONSECUTIVE", "0"),
            ("HAPPY_CONSECUTIVE", "three"),
        ] {
            let err = Timeouts::from_lookup(lookup(&[(var, value)])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(var), "{msg}");
            assert!(msg.contains(&format!("{value:?}")), "{msg}");
        }
    }

    #[test]
    fn describe_lists_every_entry_with_parseable_defaults() {
        let docs = Timeouts::describe();
        assert_eq!(docs.len(), 17);
        let defaults = Timeouts::default();
        for doc in &docs {
            assert!(doc.env_var.starts_with("HAPPY_"), "{doc:?}");
            assert!(!doc.bounds.is_empty());
            if doc.name != "consecutive" {
                // the documented default reads back to the same table
                let t =
                    Timeouts::from_lookup(lookup(&[(doc.env_var.as_str(), &doc.default)])).unwrap();
                assert_eq!(t, defaults, "{doc:?}");
            }
        }
        assert_eq!(
            docs.iter()
                .find(|d| d.name == "poll_interval")
                .unwrap()
                .default,
            "100ms"
        );
        assert_eq!(
            docs.iter().find(|d| d.name == "rollout").unwrap().default,
            "3m"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let t = Timeouts::from_lookup(lookup(&[
            ("HAPPY_TIMEOUT_ROLLOUT", ""),
            ("HAPPY_TIMEOUT_ASSERTION", "  "),
            ("HAPPY_CONSECUTIVE", ""),
        ]))
        .unwrap();
        assert_eq!(t, Timeouts::default());
    }

    #[test]
    fn a_poll_interval_not_shorter_than_the_limits_it_paces_is_refused() {
        for (vars, names) in [
            (
                vec![("HAPPY_TIMEOUT_POLL_INTERVAL", "30s")],
                "HAPPY_TIMEOUT_ASSERTION",
            ),
            (
                vec![
                    ("HAPPY_TIMEOUT_POLL_INTERVAL", "5s"),
                    ("HAPPY_TIMEOUT_ASSERTION", "2s"),
                ],
                "HAPPY_TIMEOUT_ASSERTION",
            ),
            (
                vec![
                    ("HAPPY_TIMEOUT_POLL_INTERVAL", "5s"),
                    ("HAPPY_TIMEOUT_METRICS", "5s"),
                ],
                "HAPPY_TIMEOUT_METRICS",
            ),
        ] {
            let msg = Timeouts::from_lookup(lookup(&vars))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("HAPPY_TIMEOUT_POLL_INTERVAL") && msg.contains(names),
                "{msg}"
            );
        }
        assert!(Timeouts::from_lookup(lookup(&[("HAPPY_TIMEOUT_POLL_INTERVAL", "29s")])).is_ok());
    }
}
