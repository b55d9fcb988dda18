//! The run's image pulls per registry, counted from the kubelet's Events on every cluster kind
//! through the same watch: how many pulls each registry (docker.io, ghcr.io, quay.io, …) got —
//! what its pull limit counts — and which failed and were retried.
//!
//! What the kubelet records for a pull (kubernetes `pkg/kubelet/images/image_manager.go`,
//! v1.32+): `Pulling` "Pulling image %q" when it asks the runtime, then `Pulled` "Successfully
//! pulled image %q in …" or `Failed` "Failed to pull image %q: <error>", and `BackOff`
//! "Back-off pulling image %q" while the image waits out its back-off; an image already on the
//! node is `Pulled` "Container image %q already present on machine" with no `Pulling` (no
//! registry request).
//!
//! The same event repeated is one Event object whose `count` grows (client-go
//! `tools/record/events_cache.go` `EventCorrelator`: identical source, object, type, reason
//! and message → `count`+1 and `lastTimestamp`); an event written through `events.k8s.io`
//! carries the repeats in `series.count`; and after 10 similar events with different messages
//! the correlator merges them into one whose message starts `(combined from similar events): `
//! (`EventAggregator`). Every Event is counted by its largest count seen.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use crate::error::pod_failure::{PullErrorClass, classify_pull_error};

/// The image pulls of one registry in one run (`run.json` `pulls`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryPulls {
    /// Pull attempts: the kubelet's `Pulling` events (an aggregated event counts `count`
    /// times). Each asks the registry for the manifest, which is what a registry's pull limit
    /// counts.
    pub pulls: u64,
    /// Attempts that failed (`Failed` "Failed to pull image …").
    pub failed: u64,
    /// Of the failed ones, those with a transient error (timeouts, resets, 5xx, 429), which the
    /// kubelet retries after its back-off.
    pub transient: u64,
    /// The images asked for, sorted.
    pub images: Vec<String>,
    /// The distinct pull errors seen, the first few.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// How many distinct pull errors a registry's count keeps.
pub(crate) const ERRORS_KEPT: usize = 5;

/// The message prefix of events the correlator merged (client-go
/// `tools/record/events_cache.go`, `EventAggregatorByReasonMessageFunc`).
const COMBINED: &str = "(combined from similar events): ";

/// The registry an image is pulled from, after Docker's defaults (distribution/reference
/// `ParseNormalizedNamed`: a first path element with a `.` or `:`, or `localhost`, is a
/// registry; anything else is Docker Hub, `docker.io`; `index.docker.io` is `docker.io`).
pub(crate) fn registry_of(image: &str) -> String {
    crate::image_ref::normalize_image(image)
        .split('/')
        .next()
        .unwrap_or("docker.io")
        .to_string()
}

/// What one kubelet image Event says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PullEvent {
    /// An attempt (`Pulling`).
    Pulling(String),
    /// A failed attempt, with the runtime's error (`Failed` "Failed to pull image …: …").
    Failed(String, String),
}

/// The first Go-quoted string of `text` (`"…"` with `\"` and `\\` escapes) and the rest.
fn quoted(text: &str) -> Option<(String, &str)> {
    let start = text.find('"')? + 1;
    let mut out = String::new();
    let mut chars = text[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(|(_, c)| c)),
            '"' => return Some((out, &text[start + i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn parse_event(reason: &str, message: &str) -> Option<PullEvent> {
    let message = message.strip_prefix(COMBINED).unwrap_or(message);
    match reason {
        "Pulling" if message.starts_with("Pulling image ") => {
            quoted(message).map(|(image, _)| PullEvent::Pulling(image))
        }
        "Failed" if message.starts_with("Failed to pull image ") => {
            let (image, rest) = quoted(message)?;
            let error = rest.strip_prefix(": ").unwrap_or(rest).to_string();
            Some(PullEvent::Failed(image, error))
        }
        _ => None,
    }
}

/// One Event as counted: what it says, its count when the run began (none of which are this
/// run's) and the largest count seen.
#[derive(Debug, Clone)]
struct Seen {
    what: PullEvent,
    baseline: u64,
    count: u64,
}

/// Every pull Event seen, by uid.
#[derive(Debug, Default)]
pub struct PullTally {
    since: Option<jiff::Timestamp>,
    seen: HashMap<String, Seen>,
}

/// How many times an Event happened: `count`, or `series.count`, at least 1.
fn occurrences(e: &Event) -> u64 {
    let count = e.count.unwrap_or(0);
    let series = e.series.as_ref().and_then(|s| s.count).unwrap_or(0);
    u64::try_from(count.max(series)).unwrap_or(0).max(1)
}

/// When an Event last happened: `series.lastObservedTime`, `lastTimestamp` or `eventTime`.
fn last_seen(e: &Event) -> Option<jiff::Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
}

impl PullTally {
    /// Count the pulls of events that happened from `since` on: an Event that last happened
    /// before it (a reused or existing cluster's history) counts only what is added to it
    /// later. `since` is taken to the whole second, as core/v1 Event times are. An Event that
    /// began before `since` and goes on after it counts whole (its split is not known).
    pub fn new(since: jiff::Timestamp) -> Self {
        let since = jiff::Timestamp::from_second(since.as_second()).unwrap_or(since);
        Self {
            since: Some(since),
            seen: HashMap::new(),
        }
    }

    /// Take in one Event (a new one or an update of one seen).
    pub fn observe(&mut self, e: &Event) {
        let Some(what) = parse_event(
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default(),
        ) else {
            return;
        };
        let uid = e.metadata.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                e.metadata.namespace.as_deref().unwrap_or_default(),
                e.metadata.name.as_deref().unwrap_or_default()
            )
        });
        let count = occurrences(e);
        let entry = self.seen.entry(uid).or_insert_with(|| {
            let before = match (self.since, last_seen(e)) {
                (Some(since), Some(last)) => last < since,
                _ => false,
            };
            Seen {
                what,
                baseline: if before { count } else { 0 },
                count,
            }
        });
        entry.count = entry.count.max(count);
    }

    /// The counts per registry.
    pub fn by_registry(&self) -> BTreeMap<String, RegistryPulls> {
        let mut out: BTreeMap<String, RegistryPulls> = BTreeMap::new();
        let mut images: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut seen: Vec<&Seen> = self.seen.values().collect();
        // Errors in a stable order: by text.
        seen.sort_by(|a, b| format!("{:?}", a.what).cmp(&format!("{:?}", b.what)));
        for s in seen {
            let n = s.count.saturating_sub(s.baseline);
            if n == 0 {
                continue;
            }
            let image = match &s.what {
                PullEvent::Pulling(i) | PullEvent::Failed(i, _) => i,
            };
            let registry = registry_of(image);
            let r = out.entry(registry.clone()).or_default();
            match &s.what {
                PullEvent::Pulling(_) => {
                    r.pulls += n;
                    images.entry(registry).or_default().insert(image.clone());
                }
                PullEvent::Failed(_, error) => {
                    r.failed += n;
                    if classify_pull_error("ErrImagePull", error) == PullErrorClass::Transient {
                        r.transient += n;
                    }
                    if r.errors.len() < ERRORS_KEPT && !r.errors.contains(error) {
                        r.errors.push(error.clone());
                    }
                }
            }
        }
        for (registry, set) in images {
            if let Some(r) = out.get_mut(&registry) {
                r.images = set.into_iter().collect();
            }
        }
        out
    }
}

/// The one line a run ends with: `registry pulls: docker.io 11 (2 failed, retried), ghcr.io 1`.
pub fn describe(pulls: &BTreeMap<String, RegistryPulls>) -> String {
    if pulls.is_empty() {
        return "registry pulls: none seen".into();
    }
    let parts: Vec<String> = pulls
        .iter()
        .map(|(registry, r)| {
            let failed = match (r.failed, r.transient) {
                (0, _) => String::new(),
                (f, t) if f == t => format!(" ({f} failed, retried)"),
                (f, 0) => format!(" ({f} failed)"),
                (f, t) => format!(" ({f} failed, {t} of them transient and retried)"),
            };
            format!("{registry} {}{failed}", r.pulls)
        })
        .collect();
    format!("registry pulls: {}", parts.join(", "))
}

/// Counts the run's pulls in the background: a watch on every namespace's Events from when it
/// starts (its first list brings the Events still kept, an hour's by default — kube-apiserver
/// `--event-ttl` — so pulls made while the cluster was provisioned are in it).
pub struct PullCounter {
    tally: Arc<Mutex<PullTally>>,
    error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PullCounter {
    /// Start watching; `since` is when the run began.
    pub fn start(client: Client, since: jiff::Timestamp) -> Self {
        let tally = Arc::new(Mutex::new(PullTally::new(since)));
        let error = Arc::new(Mutex::new(None));
        let events: Api<Event> = Api::all(client);
        let task = {
            let tally = Arc::clone(&tally);
            let error = Arc::clone(&error);
            tokio::spawn(async move {
                let mut stream =
                    pin!(watcher(events, watcher::Config::default()).default_backoff());
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => tally
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .observe(&e),
                        Ok(_) => {}
                        // The watcher retries with back-off; the last error is said if the
                        // counts stay empty.
                        Err(e) => {
                            *error.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some(e.to_string())
                        }
                    }
                }
            })
        };
        Self { tally, error, task }
    }

    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<String, RegistryPulls> {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_registry()
    }

    /// Stop watching; the counts and, if the watch failed at some point, its last error.
    pub fn finish(self) -> (BTreeMap<String, RegistryPulls>, Option<String>) {
        self.task.abort();
        let counts = self.counts();
        let error = self
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|e| format!("the watch of the cluster's Events failed at some point: {e}"));
        (counts, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uid: &str, reason: &str, message: &str, count: i32, last: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p.{uid}"), "namespace": "istioinaction", "uid": uid},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": reason, "message": message, "count": count,
            "firstTimestamp": last, "lastTimestamp": last,
            "source": {"component": "kubelet"}
        }))
        .unwrap()
    }

    const RATE_LIMITED: &str = "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/rinormaloku/happy-service:latest\": failed to resolve reference \"docker.io/rinormaloku/happy-service:latest\": unexpected status from HEAD request to https://registry-1.docker.io/v2/rinormaloku/happy-service/manifests/latest: 429 Too Many Requests";
    const NOT_FOUND: &str = "rpc error: code = NotFound desc = failed to pull and unpack image \"ghcr.io/x/y:1\": failed to resolve reference \"ghcr.io/x/y:1\": ghcr.io/x/y:1: not found";

    #[test]
    fn registries_follow_dockers_defaults() {
        for (image, registry) in [
            ("rinormaloku/happy-service:latest", "docker.io"),
            ("nginx", "docker.io"),
            ("docker.io/istio/proxyv2:1.31.1", "docker.io"),
            ("index.docker.io/library/nginx:1", "docker.io"),
            (
                "ghcr.io/prometheus-operator/prometheus-config-reloader:v0.85.0",
                "ghcr.io",
            ),
            ("quay.io/kiali/kiali:v2.27", "quay.io"),
            (
                "registry.istio.io/release/pilot:1.30.3",
                "registry.istio.io",
            ),
            ("localhost:5000/a:1", "localhost:5000"),
            ("localhost/a:1", "localhost"),
            ("gcr.io/istio-testing/pilot:1.32-dev@sha256:abc", "gcr.io"),
        ] {
            assert_eq!(registry_of(image), registry, "{image}");
        }
    }

    #[test]
    fn counts_pulls_failures_and_aggregated_events_per_registry() {
        let now = "2026-12-06T10:00:00Z";
        let since: jiff::Timestamp = "2026-12-06T09:59:00.400Z".parse().unwrap();
        let mut t = PullTally::new(since);
        let happy = "rinormaloku/happy-service:latest";
        // service-a: two failed pulls then one that worked; the kubelet's repeats aggregate.
        t.observe(&event(
            "1",
            "Pulling",
            &format!("Pulling image \"{happy}\""),
            1,
            now,
        ));
        t.observe(&event(
            "1",
            "Pulling",
            &format!("Pulling image \"{happy}\""),
            3,
            now,
        ));
        // A stale, lower count (a relist) does not lower it.
        t.observe(&event(
            "1",
            "Pulling",
            &format!("Pulling image \"{happy}\""),
            2,
            now,
        ));
        t.observe(&event(
            "2",
            "Failed",
            &format!("Failed to pull image \"{happy}\": {RATE_LIMITED}"),
            2,
            now,
        ));
        t.observe(&event(
            "3",
            "BackOff",
            &format!("Back-off pulling image \"{happy}\""),
            2,
            now,
        ));
        t.observe(&event("4", "Failed", "Error: ErrImagePull", 2, now));
        t.observe(&event(
            "5",
            "Pulled",
            &format!("Successfully pulled image \"{happy}\" in 1.2s (1.2s including waiting). Image size: 10 bytes."),
            1,
            now,
        ));
        // Another pod of the same image: one more pull.
        t.observe(&event(
            "6",
            "Pulling",
            &format!("Pulling image \"{happy}\""),
            1,
            now,
        ));
        // An image already on the node is no pull.
        t.observe(&event(
            "7",
            "Pulled",
            "Container image \"docker.io/istio/proxyv2:1.31.1\" already present on machine",
            1,
            now,
        ));
        // ghcr.io: a combined event and a deterministic failure.
        t.observe(&event(
            "8",
            "Pulling",
            &format!("{COMBINED}Pulling image \"ghcr.io/x/y:1\""),
            1,
            now,
        ));
        t.observe(&event(
            "9",
            "Failed",
            &format!("Failed to pull image \"ghcr.io/x/y:1\": {NOT_FOUND}"),
            1,
            now,
        ));
        // Before the run: not counted; a later repeat of it is.
        t.observe(&event(
            "10",
            "Pulling",
            "Pulling image \"quay.io/a/b:1\"",
            4,
            "2026-12-06T09:58:59Z",
        ));
        t.observe(&event(
            "10",
            "Pulling",
            "Pulling image \"quay.io/a/b:1\"",
            5,
            now,
        ));
        t.observe(&event(
            "11",
            "Pulling",
            "Pulling image \"quay.io/c/d:1\"",
            7,
            "2026-12-06T09:58:00Z",
        ));
        // In the run's first second (times are whole seconds): counted.
        t.observe(&event(
            "12",
            "Pulling",
            "Pulling image \"quay.io/e/f:1\"",
            1,
            "2026-12-06T09:59:00Z",
        ));

        let counts = t.by_registry();
        let docker = &counts["docker.io"];
        assert_eq!(docker.pulls, 4);
        assert_eq!(docker.failed, 2);
        assert_eq!(docker.transient, 2);
        assert_eq!(docker.images, vec![happy.to_string()]);
        assert_eq!(docker.errors, vec![RATE_LIMITED.to_string()]);
        let ghcr = &counts["ghcr.io"];
        assert_eq!((ghcr.pulls, ghcr.failed, ghcr.transient), (1, 1, 0));
        let quay = &counts["quay.io"];
        assert_eq!(quay.pulls, 2);
        assert_eq!(quay.images, vec!["quay.io/a/b:1", "quay.io/e/f:1"]);
        assert_eq!(counts.len(), 3);
        assert_eq!(
            describe(&counts),
            "registry pulls: docker.io 4 (2 failed, retried), ghcr.io 1 (1 failed), quay.io 2"
        );
        assert_eq!(describe(&BTreeMap::new()), "registry pulls: none seen");
    }

    #[test]
    fn series_counts_and_quoted_images() {
        let mut t = PullTally::new("2026-12-06T09:00:00Z".parse().unwrap());
        let e: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "default", "uid": "s"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Pulling", "message": "Pulling image \"docker.io/a/b:1\"",
            "eventTime": "2026-12-06T10:00:00.000000Z",
            "series": {"count": 6, "lastObservedTime": "2026-12-06T10:05:00.000000Z"}
        }))
        .unwrap();
        t.observe(&e);
        assert_eq!(t.by_registry()["docker.io"].pulls, 6);
        assert_eq!(
            quoted(r#"Pulling image "a\"b" rest"#),
            Some(("a\"b".to_string(), " rest"))
        );
        assert_eq!(quoted("no quotes"), None);
    }
}
