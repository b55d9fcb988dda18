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

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::error::FailureClass;

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

/// Whether retrying a failed image pull can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullErrorClass {
    /// The same pull will fail again: fail the wait at once.
    Deterministic,
    /// The registry or the network may answer differently on the kubelet's next try.
    Transient,
}

/// Texts of pull errors that retrying cannot cure, lower-cased, each with the upstream source
/// of its shape (containerd v2.2.0 unless said otherwise; the kubelet passes containerd's gRPC
/// error text through, `pkg/kubelet/images/image_manager.go` `evalCRIPullErr`).
const DETERMINISTIC_PULL_TEXTS: &[&str] = &[
    // 404 on the manifest: `core/remotes/docker/resolver.go` `fmt.Errorf("%s: %w", ref,
    // errdefs.ErrNotFound)` → "REF: not found"; a blob: "content at URL not found: not found";
    // the gRPC code `errgrpc.ToGRPC` gives errdefs.ErrNotFound.
    ": not found",
    "code = notfound",
    // The distribution spec's error codes as containerd prints a registry's error body
    // (`core/remotes/docker/errcode.go` `Error.Error`: "manifest unknown: …").
    "manifest unknown",
    "name unknown",
    // 401/403: `resolver.go` "pull access denied, repository does not exist or may require
    // authorization"; `errdesc.go` UNAUTHORIZED "authentication required", DENIED "requested
    // access to the resource is denied"; a status line "401 Unauthorized" / "403 Forbidden".
    "pull access denied",
    "unauthorized",
    "authentication required",
    "access to the resource is denied",
    "403 forbidden",
    // A malformed reference (distribution/reference `ErrReferenceInvalidFormat`).
    "invalid reference format",
    // No image for the node's platform: `core/images/handlers.go` "no match for platform in
    // manifest".
    "no match for platform in manifest",
];

/// How a pull error in a container's waiting state will go: deterministic for the reasons the
/// kubelet gives for a name it cannot use (`InvalidImageName`, `ErrImageNeverPull`,
/// `ImageInspectError`; kubernetes `pkg/kubelet/images/types.go`), for a Docker schema-1
/// image and for the texts in [`DETERMINISTIC_PULL_TEXTS`]; transient for everything else —
/// `RegistryUnavailable`, timeouts (`i/o timeout`, `context deadline exceeded`), refused or
/// reset connections, 5xx, 429 `toomanyrequests`, and a back-off message that does not carry
/// the error (kubelets before v1.32 say only "Back-off pulling image …").
pub fn classify_pull_error(reason: &str, message: &str) -> PullErrorClass {
    if matches!(
        reason,
        "InvalidImageName" | "ErrImageNeverPull" | "ImageInspectError"
    ) || is_schema1(message)
    {
        return PullErrorClass::Deterministic;
    }
    let m = message.to_ascii_lowercase();
    if DETERMINISTIC_PULL_TEXTS.iter().any(|t| m.contains(t)) {
        PullErrorClass::Deterministic
    } else {
        PullErrorClass::Transient
    }
}

/// What kind of failure the cluster reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// The image could not be pulled (or named, or inspected).
    ImagePull {
        /// The registry refused: HTTP 429 `toomanyrequests` (its pull rate limit).
        rate_limited: bool,
        /// The image is a Docker schema-1 manifest, which containerd 2.1+ refuses
        /// (containerd `client/pull.go`: "... is no longer supported since containerd v2.1").
        schema1: bool,
    },
    /// The container was created but exits: terminated with non-zero, or crash-looping.
    Exited {
        /// The exit code of its last run, if known.
        exit_code: Option<i32>,
    },
    /// The container could not be created or started (its configuration, hooks, runtime).
    NotStarted,
    /// No node can take the pod.
    Unschedulable,
}

/// A pod that cannot start, in the cluster's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container at fault (none for scheduling).
    pub container: Option<String>,
    /// Its image, as the pod spec names it.
    pub image: Option<String>,
    /// The cluster's reason (`ErrImagePull`, `CrashLoopBackOff`, `Error`, `Unschedulable`).
    pub reason: String,
    /// The cluster's message (for a crash, the last run's termination message as well).
    pub message: String,
    /// What kind of failure it is.
    pub kind: StartFailure,
}

impl PodFailure {
    /// Whether this is a pull error the kubelet may yet get past (see
    /// [`classify_pull_error`]); such a failure is never returned by [`pod_failure`].
    pub fn is_transient_pull(&self) -> bool {
        matches!(self.kind, StartFailure::ImagePull { .. })
            && classify_pull_error(&self.reason, &self.message) == PullErrorClass::Transient
    }

    /// Every pod that cannot start is the environment failing: the claims are about what the
    /// mesh does once the workshop's workloads run, and these never ran (an image that cannot
    /// be pulled, a proxy or tool that exits, no node to run on).
    pub fn class(&self) -> FailureClass {
        FailureClass::Environment
    }
}

impl fmt::Display for PodFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod {}/{}", self.namespace, self.pod)?;
        if let Some(c) = &self.container {
            write!(f, ": container {c}")?;
        }
        if let Some(i) = &self.image {
            write!(f, " (image {i})")?;
        }
        let message = if self.message.is_empty() {
            String::new()
        } else {
            format!(": {}", self.message)
        };
        match &self.kind {
            StartFailure::ImagePull {
                rate_limited,
                schema1,
            } => {
                if self.is_transient_pull() {
                    write!(
                        f,
                        " has not been pulled yet, the kubelet retries: {}{message}",
                        self.reason
                    )?;
                } else {
                    write!(f, " cannot be pulled: {}{message}", self.reason)?;
                }
                if *rate_limited {
                    f.write_str(
                        " — this is the registry's pull rate limit (HTTP 429 Too Many \
                         Requests): authenticate the pulls (README \"Docker Hub login\") or \
                         wait for the limit to reset",
                    )?;
                }
                if *schema1 {
                    f.write_str(
                        " — this is a Docker image manifest schema 1 image, which containerd \
                         2.1 and later no longer pull: the image must be rebuilt or replaced",
                    )?;
                }
                Ok(())
            }
            StartFailure::Exited { exit_code } => {
                let code = exit_code.map_or_else(String::new, |c| format!(" with code {c}"));
                write!(f, " exited{code} ({}){message}", self.reason)
            }
            StartFailure::NotStarted => write!(f, " cannot start: {}{message}", self.reason),
            StartFailure::Unschedulable => {
                write!(f, " cannot be scheduled: {}{message}", self.reason)
            }
        }
    }
}

/// Why `pod` will not start without a change, or `None` while it may still start. `now`
/// decides whether a crashed container has stayed down longer than [`FIRST_RESTART_GRACE`].
/// A transient image pull error is not final (the kubelet retries it): see [`pull_retrying`]
/// to name it when a wait ends at its limit.
pub fn pod_failure(pod: &Pod, now: jiff::Timestamp) -> Option<PodFailure> {
    assess(pod, now, false)
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

/// A registry's rate limit: HTTP 429. containerd v2.2.0 prints the status line
/// (`core/remotes/errors/errors.go` `ErrUnexpectedStatus`: "unexpected status from HEAD request
/// to URL: 429 Too Many Requests") and, when the answer has a body (a GET), Docker Hub's error
/// code after it (`core/remotes/docker/errcode.go`, `errdesc.go` `TOOMANYREQUESTS` →
/// "toomanyrequests: You have reached your … pull rate limit …",
/// docs.docker.com/docker-hub/usage/pulls/).
pub fn is_rate_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("toomanyrequests") || m.contains("429 too many requests")
}

/// containerd 2.1+ refuses schema-1 manifests: "media type
/// \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported since
/// containerd v2.1" (containerd `client/pull.go`, v2.1.0; `core/remotes/docker/resolver.go`
/// says the same "since containerd v2.0" for the unsigned v1+json type).
fn is_schema1(message: &str) -> bool {
    message.contains("application/vnd.docker.distribution.manifest.v1")
        || (message.contains("schema 1") && message.contains("no longer supported"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Real texts of deterministic pull errors, as the kubelet shows containerd 2.2's (see
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
                text.contains("authenticate the pulls (README \"Docker Hub login\")"),
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
