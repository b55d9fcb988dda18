//! Why a pod cannot start, read off its status as the kubelet and the scheduler write it, so a
//! wait for a rollout or for Ready pods gives up as soon as the cluster says it never will,
//! with the cluster's own reason and message, instead of at the end of its limit.
//!
//! What counts as final and what as a state a healthy pod passes through follows Kubernetes:
//! - Waiting reasons the kubelet sets (kubernetes/kubernetes, v1.33):
//!   `pkg/kubelet/images/types.go` — `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`,
//!   `InvalidImageName`, `ImageInspectError`, `RegistryUnavailable`;
//!   `pkg/kubelet/container/sync_result.go` — `CrashLoopBackOff`, `RunContainerError`;
//!   `pkg/kubelet/kuberuntime/kuberuntime_container.go` — `CreateContainerConfigError`,
//!   `CreateContainerError`, `PreStartHookError`, `PostStartHookError`.
//!   `ContainerCreating` and `PodInitializing` (`pkg/kubelet/kubelet_pods.go`) are passed
//!   through by every pod and never fail a wait.
//! - Restarts (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-restarts):
//!   the kubelet restarts a container's first crash at once and backs off (10 s, doubling to
//!   5 min) after later ones, showing `CrashLoopBackOff` while it waits. So one crash during
//!   start (restartCount 1, running again) is tolerated; a crash after a restart, a
//!   `CrashLoopBackOff`, a crash the pod's `restartPolicy` will not restart, or a crashed
//!   container still not restarted [`FIRST_RESTART_GRACE`] after it ended is final.
//! - Image pulls: the kubelet retries a failed pull with a back-off (10 s doubling to 300 s,
//!   `ImagePullBackOff` between tries), so a pull error is final only when retrying cannot
//!   help: the image or tag does not exist, the pull is not authorized, the reference is
//!   malformed, the image's format or platform cannot be run ([`classify_pull_error`]).
//!   Anything else (timeouts, refused or reset connections, 5xx, 429) is transient: the wait
//!   goes on, and names the last such error if it ends at its limit ([`pull_retrying`]).
//! - Scheduling: the scheduler sets condition `PodScheduled=False` with reason `Unschedulable`
//!   (`pkg/apis/core/types.go`, `PodReasonUnschedulable`). A node that is still coming up
//!   (taint `node.kubernetes.io/not-ready`, `pkg/apis/core/well_known_taints.go`) is transient.
//! - An image built for another CPU architecture: runc execs the entrypoint only after the
//!   container has been started, so the kernel's ENOEXEC comes back from `runc init`, which
//!   prints `exec <path>: exec format error` to the container's stderr and exits 255
//!   (opencontainers/runc v1.4.3 `internal/linux/linux.go` `Exec`, `libcontainer/init_linux.go`
//!   `Init`). The pod shows only a crash with exit code 255 ([`RUNC_INIT_EXIT`](crate::error::pod_failure::RUNC_INIT_EXIT)); the words are
//!   in the container's log (or in the termination message with `terminationMessagePolicy:
//!   FallbackToLogsOnError`), which [`PodFailure::with_runtime_detail`] adds, with the node's
//!   architecture, when the caller has read them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::error::pod_failure::{
    PodFailure, PullErrorClass, StartFailure, classify_pull_error, is_schema1,
};

/// How long a crashed container may stay down without a restart before the kubelet is taken
/// not to restart it: the kubelet restarts a first crash at once and waits at most its initial
/// back-off (10 s, `pkg/kubelet/kubelet.go` `backOffPeriod`, v1.33) before a second try.
pub const FIRST_RESTART_GRACE: Duration = Duration::from_secs(10);

/// Waiting reasons after which the container will not start without a change to the pod, its
/// image or the registry (see the module comment for where each comes from).
const FINAL_WAITING_REASONS: [&str; 12] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImageInspectError",
    "RegistryUnavailable",
    "CrashLoopBackOff",
    "RunContainerError",
    "CreateContainerConfigError",
    "CreateContainerError",
    "PreStartHookError",
    "PostStartHookError",
];

/// Why `pod` will not start without a change, or `None` while it may still start. `now`
/// decides whether a crashed container has stayed down longer than [`FIRST_RESTART_GRACE`].
/// A transient image pull error is not final (the kubelet retries it): see [`pull_retrying`]
/// to name it when a wait ends at its limit.
pub fn pod_failure(pod: &Pod, now: jiff::Timestamp) -> Option<PodFailure> {
    assess(pod, now, false)
}

/// As [`pod_failure`], and a transient image pull error is final too once the pod has been
/// scheduled for `pull_retry` (the timeout table's `pull_retry`) and its image still fails to
/// pull. The kubelet would retry it for ever, with its back-off (10 s doubling to 5 min,
/// kubernetes `pkg/kubelet/kubelet.go` `imageBackOffPeriod`/`MaxImageBackOff`); a registry
/// that has refused or timed out for that long (4 tries in 75 s) is not going to answer within
/// a wait of the suite's, and waiting out the whole rollout or install limit for it would turn
/// one unreachable registry into minutes per scenario.
pub fn pod_failure_within(
    pod: &Pod,
    now: jiff::Timestamp,
    pull_retry: std::time::Duration,
) -> Option<PodFailure> {
    if let Some(f) = assess(pod, now, false) {
        return Some(f);
    }
    let retrying = assess(pod, now, true)?;
    let since = pull_attempts_since(pod)?;
    let waited = now.duration_since(since);
    let limit = jiff::SignedDuration::try_from(pull_retry).ok()?;
    (waited >= limit).then(|| PodFailure {
        pull_given_up: Some((waited.as_secs(), pull_retry.as_secs())),
        ..retrying
    })
}

/// When the kubelet started pulling the pod's images: the pod's `PodScheduled` condition
/// turning true (the kubelet starts a pod once it is bound to its node), else its creation.
fn pull_attempts_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let scheduled = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    scheduled.or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// A transient image pull error `pod` shows now (the kubelet is retrying it), if any: what a
/// wait that ends at its limit names as the last pull error seen.
pub fn pull_retrying(pod: &Pod) -> Option<PodFailure> {
    assess(pod, jiff::Timestamp::now(), true)
}

/// The first final failure of `pod` (`transient` false) or its first transient pull error
/// (`transient` true).
fn assess(pod: &Pod, now: jiff::Timestamp, transient: bool) -> Option<PodFailure> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let base = |container: Option<&ContainerStatus>| PodFailure {
        namespace: namespace.clone(),
        pod: name.clone(),
        container: container.map(|c| c.name.clone()),
        image: container.map(|c| spec_image(pod, &c.name).unwrap_or_else(|| c.image.clone())),
        reason: String::new(),
        message: String::new(),
        kind: StartFailure::NotStarted,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        node_architecture: None,
        runtime_detail: None,
        pull_given_up: None,
    };
    let status = pod.status.as_ref()?;
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        !transient
            && c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    }) {
        let message = c.message.clone().unwrap_or_default();
        if !message.contains("node.kubernetes.io/not-ready") {
            return Some(PodFailure {
                reason: "Unschedulable".into(),
                message,
                kind: StartFailure::Unschedulable,
                ..base(None)
            });
        }
    }
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in statuses {
        let Some(state) = &c.state else { continue };
        if let Some(w) = &state.waiting {
            let reason = w.reason.clone().unwrap_or_default();
            if !FINAL_WAITING_REASONS.contains(&reason.as_str()) {
                continue;
            }
            let message = w.message.clone().unwrap_or_default();
            let retrying = is_pull_reason(&reason)
                && classify_pull_error(&reason, &message) == PullErrorClass::Transient;
            if retrying != transient {
                continue;
            }
            let kind = match reason.as_str() {
                "CrashLoopBackOff" => StartFailure::Exited {
                    exit_code: last_exit(c).map(|(code, _, _)| code),
                },
                r if is_pull_reason(r) => StartFailure::ImagePull {
                    rate_limited: is_rate_limit(&message),
                    schema1: is_schema1(&message),
                },
                _ => StartFailure::NotStarted,
            };
            let message = match (&kind, last_exit(c)) {
                (StartFailure::Exited { .. }, Some((code, r, m))) => {
                    let last = format!("it last exited with code {code} ({r}){}", colon(&m));
                    if message.is_empty() {
                        last
                    } else {
                        format!("{message}; {last}")
                    }
                }
                _ => message,
            };
            return Some(PodFailure {
                reason,
                message,
                kind,
                ..base(Some(c))
            });
        }
        if let Some(t) = &state.terminated {
            if transient || t.exit_code == 0 {
                continue;
            }
            // A native sidecar (an init container with `restartPolicy: Always`) is restarted
            // whatever the pod's policy says.
            let policy = if container_restart_policy(pod, &c.name) == Some("Always") {
                "Always"
            } else {
                restart_policy
            };
            let restarted = match policy {
                "Never" => false,
                _ => {
                    let down_since = t.finished_at.as_ref().map(|f| f.0);
                    let down_long = down_since.is_some_and(|f| {
                        now.duration_since(f)
                            .try_into()
                            .is_ok_and(|d: Duration| d >= FIRST_RESTART_GRACE)
                    });
                    c.restart_count == 0 && !down_long
                }
            };
            if restarted {
                continue;
            }
            return Some(PodFailure {
                reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                message: t.message.clone().unwrap_or_default(),
                kind: StartFailure::Exited {
                    exit_code: Some(t.exit_code),
                },
                ..base(Some(c))
            });
        }
    }
    None
}

fn colon(message: &str) -> String {
    if message.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", message.trim())
    }
}

/// The image the pod spec gives a container (status images may be resolved or normalised).
fn spec_image(pod: &Pod, container: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container)
        .and_then(|c| c.image.clone())
}

/// A container's own `restartPolicy` (only init containers have one).
fn container_restart_policy<'a>(pod: &'a Pod, container: &str) -> Option<&'a str> {
    pod.spec
        .as_ref()?
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == container)
        .and_then(|c| c.restart_policy.as_deref())
}

/// `(exit code, reason, message)` of the container's last run, from `lastState`.
fn last_exit(c: &ContainerStatus) -> Option<(i32, String, String)> {
    let t = c.last_state.as_ref()?.terminated.as_ref()?;
    Some((
        t.exit_code,
        t.reason.clone().unwrap_or_else(|| "Error".into()),
        t.message.clone().unwrap_or_default(),
    ))
}

fn is_pull_reason(reason: &str) -> bool {
    matches!(
        reason,
        "ErrImagePull"
            | "ImagePullBackOff"
            | "ErrImageNeverPull"
            | "InvalidImageName"
            | "ImageInspectError"
            | "RegistryUnavailable"
    )
}

/// A registry's rate limit: HTTP 429. containerd v2.2.0 (and v2.3.4) prints the status line
/// (`core/remotes/errors/errors.go` `ErrUnexpectedStatus`: "unexpected status from HEAD request
/// to URL: 429 Too Many Requests") and, when the answer has a body (a GET), Docker Hub's error
/// code after it (`core/remotes/docker/errcode.go`, `errdesc.go` `TOOMANYREQUESTS` →
/// "toomanyrequests: You have reached your … pull rate limit …",
/// docs.docker.com/docker-hub/usage/pulls/).
pub fn is_rate_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("toomanyrequests") || m.contains("429 too many requests")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FailureClass;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "service-b-1", "namespace": "istioinaction"},
            "spec": {
                "containers": [{"name": "service-b", "image": "nicholasjackson/fake-servic:v0.26.2"}],
                "initContainers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.29.0", "restartPolicy": "Always"}]
            },
            "status": status
        }))
        .unwrap()
    }

    fn waiting(container: &str, reason: &str, message: &str) -> Pod {
        pod(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{
                "name": container, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}}
            }]
        }))
    }

    fn now() -> jiff::Timestamp {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_transient_pull_error_is_final_after_the_pull_retry_limit() {
        let refused = "rpc error: code = Unknown desc = failed to pull and unpack image \
             \"docker.io/istio/pilot:1.31.1\": failed to resolve reference \
             \"docker.io/istio/pilot:1.31.1\": failed to do request: Head \
             \"https://registry-1.docker.io/v2/istio/pilot/manifests/1.31.1\": dial tcp \
             192.0.2.1:443: connect: connection refused";
        let limit = std::time::Duration::from_secs(75);
        let scheduled_at = |at: &str| {
            let mut p = waiting("istiod", "ImagePullBackOff", refused);
            p.status.as_mut().unwrap().conditions =
                Some(vec![k8s_openapi::api::core::v1::PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at.parse().unwrap()),
                    ),
                    ..Default::default()
                }]);
            p
        };
        // Retried for 10 s: the kubelet may still get it; never final for pod_failure.
        let young = scheduled_at("2026-12-01T09:59:50Z");
        assert_eq!(pod_failure_within(&young, now(), limit), None);
        assert!(pull_retrying(&young).is_some());
        // Retried for 80 s: final, naming the error, how long and the limit's variable.
        let old = scheduled_at("2026-12-01T09:58:40Z");
        assert_eq!(pod_failure(&old, now()), None);
        let f = pod_failure_within(&old, now(), limit).expect("final after the limit");
        let text = f.to_string();
        for part in [
            "connection refused",
            "cannot be pulled: ImagePullBackOff",
            "since the pod was scheduled 80s ago",
            "HAPPY_TIMEOUT_PULL_RETRY=75s",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        // A deterministic error needs no wait.
        let gone = waiting(
            "istiod",
            "ErrImagePull",
            "rpc error: code = NotFound desc = x: not found",
        );
        assert!(pod_failure_within(&gone, now(), limit).is_some());
    }

    #[test]
    fn transient_states_are_not_failures() {
        for reason in ["ContainerCreating", "PodInitializing"] {
            assert_eq!(
                pod_failure(&waiting("service-b", reason, ""), now()),
                None,
                "{reason}"
            );
        }
        assert_eq!(pod_failure(&pod(serde_json::json!({})), now()), None);
    }

    #[test]
    fn a_pull_error_names_pod_container_image_and_the_clusters_words() {
        let message = "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/nicholasjackson/fake-servic:v0.26.2\": not found";
        let f = pod_failure(&waiting("service-b", "ErrImagePull", message), now()).unwrap();
        assert_eq!(f.class(), FailureClass::Environment);
        let text = f.to_string();
        for part in [
            "pod istioinaction/service-b-1",
            "container service-b",
            "image nicholasjackson/fake-servic:v0.26.2",
            "ErrImagePull",
            message,
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        assert!(!text.contains("rate limit"), "{text}");
        assert!(text.contains("cannot be pulled"), "{text}");
        for reason in [
            "InvalidImageName",
            "CreateContainerConfigError",
            "ErrImageNeverPull",
        ] {
            let f = pod_failure(&waiting("service-b", reason, "m"), now());
            assert!(f.is_some_and(|f| f.reason == reason), "{reason}");
        }
        // The back-off keeps the error (kubelet ≥ 1.32): still deterministic.
        let backoff = format!(
            "Back-off pulling image \"nicholasjackson/fake-servic:v0.26.2\": ErrImagePull: {message}"
        );
        let f = pod_failure(&waiting("service-b", "ImagePullBackOff", &backoff), now());
        assert!(f.is_some_and(|f| f.reason == "ImagePullBackOff"));
    }

    /// Real texts of deterministic pull errors, as the kubelet shows containerd 2.2's and 2.3's (see
    /// `DETERMINISTIC_PULL_TEXTS` for the source of each shape).
    const DETERMINISTIC: &[&str] = &[
        // 404 on the tag (resolver.go).
        "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/rinormaloku/happy-service:nope\": failed to resolve reference \"docker.io/rinormaloku/happy-service:nope\": docker.io/rinormaloku/happy-service:nope: not found",
        // A registry's MANIFEST_UNKNOWN body (errcode.go).
        "rpc error: code = NotFound desc = failed to pull and unpack image \"ghcr.io/x/y:1\": failed to copy: httpReadSeeker: failed open: content at https://ghcr.io/v2/x/y/manifests/sha256:abc not found: not found",
        "rpc error: code = Unknown desc = failed to pull and unpack image \"quay.io/x/y:1\": failed to resolve reference \"quay.io/x/y:1\": unexpected status from GET request to https://quay.io/v2/x/y/manifests/1: 404 Not Found\nmanifest unknown: manifest unknown",
        // 401 from Docker Hub for a private or missing repository.
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/privat:1\": failed to resolve reference \"docker.io/library/privat:1\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed",
        "rpc error: code = Unknown desc = failed to pull and unpack image \"ghcr.io/x/y:1\": failed to resolve reference \"ghcr.io/x/y:1\": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Ax%2Fy%3Apull&service=ghcr.io: 401 Unauthorized",
        "rpc error: code = Unknown desc = failed to pull and unpack image \"ghcr.io/x/y:1\": failed to resolve reference \"ghcr.io/x/y:1\": unexpected status from GET request to https://ghcr.io/v2/x/y/manifests/1: 403 Forbidden\ndenied: requested access to the resource is denied",
        // No image for the node's platform (images/handlers.go).
        "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/x/y:1\": no match for platform in manifest: not found",
        "couldn't parse image name \"Docker.io/X\": invalid reference format: repository name (X) must be lowercase",
    ];

    /// Real texts of transient pull errors.
    const TRANSIENT: &[&str] = &[
        // 429 on the resolver's HEAD (errors.go; rapidsai/ci-imgs#427).
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/rinormaloku/happy-service:latest\": failed to resolve reference \"docker.io/rinormaloku/happy-service:latest\": unexpected status from HEAD request to https://registry-1.docker.io/v2/rinormaloku/happy-service/manifests/latest: 429 Too Many Requests",
        // 429 on a GET, with Docker Hub's body (errcode.go joins it on a new line).
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/busybox:1.36\": failed to copy: httpReadSeeker: failed open: unexpected status from GET request to https://registry-1.docker.io/v2/library/busybox/manifests/sha256:abc: 429 Too Many Requests\ntoomanyrequests: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit",
        // 429 on the token endpoint (docker/hub-feedback#2204).
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/nginx:latest\": failed to resolve reference \"docker.io/library/nginx:latest\": failed to authorize: failed to fetch oauth token: unexpected status from POST request to https://auth.docker.io/token: 429 Too Many Requests",
        // Dial failures (resolver.go "failed to do request", Go's net errors).
        "rpc error: code = Unknown desc = failed to pull and unpack image \"quay.io/kiali/kiali:v2.27\": failed to resolve reference \"quay.io/kiali/kiali:v2.27\": failed to do request: Head \"https://quay.io/v2/kiali/kiali/manifests/v2.27\": dial tcp 192.0.2.1:443: connect: connection refused",
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/istio/pilot:1.31.1\": failed to resolve reference \"docker.io/istio/pilot:1.31.1\": failed to do request: Head \"https://registry-1.docker.io/v2/istio/pilot/manifests/1.31.1\": dial tcp 54.236.113.205:443: i/o timeout",
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/istio/proxyv2:1.31.1\": failed to copy: read tcp 10.244.0.5:51234->104.16.1.1:443: read: connection reset by peer",
        // 5xx.
        "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/grafana/grafana:12.0.1\": failed to resolve reference \"docker.io/grafana/grafana:12.0.1\": unexpected status from HEAD request to https://registry-1.docker.io/v2/grafana/grafana/manifests/12.0.1: 503 Service Unavailable",
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        // A back-off message of a kubelet before 1.32, without the error.
        "Back-off pulling image \"docker.io/istio/pilot:1.31.1\"",
    ];

    #[test]
    fn deterministic_pull_errors_fail_at_once_transient_ones_wait() {
        for m in DETERMINISTIC {
            assert_eq!(
                classify_pull_error("ErrImagePull", m),
                PullErrorClass::Deterministic,
                "{m}"
            );
            let p = waiting("service-b", "ErrImagePull", m);
            assert!(pod_failure(&p, now()).is_some(), "{m}");
            assert_eq!(pull_retrying(&p), None, "{m}");
        }
        for m in TRANSIENT {
            assert_eq!(
                classify_pull_error("ErrImagePull", m),
                PullErrorClass::Transient,
                "{m}"
            );
            for reason in ["ErrImagePull", "ImagePullBackOff"] {
                let p = waiting("service-b", reason, m);
                assert_eq!(pod_failure(&p, now()), None, "{reason}: {m}");
                let f = pull_retrying(&p).unwrap();
                assert!(f.is_transient_pull());
                let text = f.to_string();
                assert!(text.contains("the kubelet retries"), "{text}");
                assert!(text.contains(m), "{text}");
                assert!(
                    text.contains("image nicholasjackson/fake-servic:v0.26.2"),
                    "{text}"
                );
            }
        }
        assert_eq!(
            classify_pull_error(
                "RegistryUnavailable",
                "image pull failed for x because the registry is unavailable"
            ),
            PullErrorClass::Transient
        );
        assert_eq!(
            classify_pull_error("InvalidImageName", "Failed to apply default image tag"),
            PullErrorClass::Deterministic
        );
        // A transient pull error does not hide a final failure of another container.
        let mut p = waiting("service-b", "ErrImagePull", TRANSIENT[0]);
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![
            serde_json::from_value(serde_json::json!({
                "name": "istio-proxy", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": DETERMINISTIC[0]}}
            }))
            .unwrap(),
        ]);
        let f = pod_failure(&p, now()).unwrap();
        assert_eq!(f.container.as_deref(), Some("istio-proxy"));
        assert_eq!(
            pull_retrying(&p).unwrap().container.as_deref(),
            Some("service-b")
        );
    }

    #[test]
    fn a_rate_limit_and_a_schema1_image_are_named() {
        for limited in &TRANSIENT[..3] {
            let text = pull_retrying(&waiting("service-b", "ErrImagePull", limited))
                .unwrap()
                .to_string();
            assert!(text.contains("the registry's pull rate limit"), "{text}");
            assert!(
                text.contains("authenticate the pulls (on kind: HAPPY_KIND_REGISTRY_AUTH, README \"Docker Hub login\")"),
                "{text}"
            );
            assert!(text.contains("wait for the limit to reset"), "{text}");
        }
        assert!(!is_rate_limit(TRANSIENT[3]));
        let old = "failed to pull and unpack image \"docker.io/library/old:1\": not implemented: media type \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported since containerd v2.1, please rebuild the image as \"application/vnd.docker.distribution.manifest.v2+json\" or \"application/vnd.oci.image.manifest.v1+json\"";
        let text = pod_failure(&waiting("service-b", "ImagePullBackOff", old), now())
            .unwrap()
            .to_string();
        assert!(text.contains("schema 1"), "{text}");
        assert!(!text.contains("rate limit"), "{text}");
    }

    /// An amd64-only image on an arm64 node without emulation: runc init prints
    /// `exec <entrypoint>: exec format error` and exits 255, and the kubelet shows a crash loop.
    fn exec_format_crash(message: Option<&str>) -> Pod {
        let mut terminated = serde_json::json!({"exitCode": 255, "reason": "Error",
            "finishedAt": "2026-12-01T09:59:00Z"});
        if let Some(m) = message {
            terminated["message"] = serde_json::json!(m);
        }
        let mut pod = pod(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "service-b", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 40s restarting failed container=service-b pod=service-b-1_istioinaction(uid)"}},
                "lastState": {"terminated": terminated}
            }]
        }));
        pod.spec.as_mut().unwrap().node_name = Some("happy-istio-control-plane".into());
        pod
    }

    #[test]
    fn an_image_for_another_cpu_architecture_is_named_with_the_nodes() {
        // The pod alone: exit 255 and no words; the failure asks for the log and says what
        // 255 can mean.
        let f = pod_failure(&exec_format_crash(None), now()).unwrap();
        assert_eq!(
            f.kind,
            StartFailure::Exited {
                exit_code: Some(255)
            }
        );
        assert_eq!(f.node.as_deref(), Some("happy-istio-control-plane"));
        assert!(f.wants_runtime_detail() && !f.exec_format_error());
        let text = f.to_string();
        assert!(
            text.contains("exited with code 255") && text.contains("runc's exit"),
            "{text}"
        );
        // With the log's last line (runc's words) and the node's architecture.
        let f = f.with_runtime_detail(
            Some("exec /app/fake-service: exec format error\n".into()),
            Some("arm64".into()),
        );
        assert!(f.exec_format_error() && !f.wants_runtime_detail());
        let text = f.to_string();
        for part in [
            "image nicholasjackson/fake-servic:v0.26.2",
            "its log ends: exec /app/fake-service: exec format error",
            "exec format error: nicholasjackson/fake-servic:v0.26.2 has no build for this node's CPU architecture (arm64 of node happy-istio-control-plane)",
            "multi-arch image",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        // terminationMessagePolicy: FallbackToLogsOnError puts the words in the status itself.
        let f = pod_failure(
            &exec_format_crash(Some("exec /app/fake-service: exec format error")),
            now(),
        )
        .unwrap();
        assert!(f.exec_format_error() && !f.wants_runtime_detail());
        assert!(
            f.to_string()
                .contains("(unknown of node happy-istio-control-plane)")
        );
        // Another crash with 255 and a log that says something else is not called one.
        let f = pod_failure(&exec_format_crash(None), now())
            .unwrap()
            .with_runtime_detail(Some("panic: config missing".into()), None);
        assert!(!f.exec_format_error());
        let text = f.to_string();
        assert!(
            text.contains("its log ends: panic: config missing") && !text.contains("CPU"),
            "{text}"
        );
    }

    fn crashed(restart_count: i32, finished: &str, running_again: bool) -> Pod {
        let state = if running_again {
            serde_json::json!({"running": {"startedAt": finished}})
        } else {
            serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error",
                "message": "envoy exited before it was ready (exit status: 1)", "finishedAt": finished}})
        };
        pod(serde_json::json!({
            "phase": "Running",
            "initContainerStatuses": [{
                "name": "istio-proxy", "image": "x", "imageID": "", "ready": false,
                "restartCount": restart_count, "state": state,
                "lastState": if restart_count > 0 { serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}}) } else { serde_json::json!({}) }
            }]
        }))
    }

    #[test]
    fn one_crash_during_start_is_tolerated_a_second_or_a_lasting_one_is_not() {
        // Just crashed, not yet restarted: the kubelet restarts a first crash at once.
        assert_eq!(
            pod_failure(&crashed(0, "2026-12-01T09:59:58Z", false), now()),
            None
        );
        // Restarted once and running again.
        assert_eq!(
            pod_failure(&crashed(1, "2026-12-01T09:59:58Z", true), now()),
            None
        );
        // Crashed again after a restart.
        let f = pod_failure(&crashed(1, "2026-12-01T09:59:58Z", false), now()).unwrap();
        assert_eq!(f.kind, StartFailure::Exited { exit_code: Some(1) });
        // Still down long after a first crash: nothing is restarting it.
        let f = pod_failure(&crashed(0, "2026-12-01T09:59:00Z", false), now()).unwrap();
        let text = f.to_string();
        for part in [
            "container istio-proxy",
            "exited with code 1",
            "envoy exited before it was ready",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
    }

    #[test]
    fn crash_loop_back_off_quotes_the_last_exit() {
        let p = pod(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "service-b", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=service-b pod=service-b-1_istioinaction(uid)"}},
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "message": "bad flag"}}
            }]
        }));
        let text = pod_failure(&p, now()).unwrap().to_string();
        for part in [
            "CrashLoopBackOff",
            "back-off 40s",
            "exited with code 2",
            "bad flag",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
    }

    #[test]
    fn unschedulable_unless_the_node_is_still_coming_up() {
        let sched = |message: &str| {
            pod(serde_json::json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
            }))
        };
        let f = pod_failure(
            &sched("0/1 nodes are available: 1 Insufficient cpu."),
            now(),
        )
        .unwrap();
        assert!(f.to_string().contains("Insufficient cpu"), "{f}");
        assert_eq!(
            pod_failure(
                &sched(
                    "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
                ),
                now()
            ),
            None
        );
    }

    #[test]
    fn a_pod_that_may_not_restart_fails_on_its_first_crash() {
        let mut p = crashed(0, "2026-12-01T09:59:59Z", false);
        p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        // The native sidecar is still restarted: its own policy is Always.
        assert_eq!(pod_failure(&p, now()), None);
        let spec = p.spec.as_mut().unwrap();
        spec.init_containers.as_mut().unwrap()[0].restart_policy = None;
        assert!(pod_failure(&p, now()).is_some());
    }
}
