//! A pod that cannot start, as a value: what the cluster said (pod, container, image, reason,
//! message) and what kind of failure it is. It is the payload of [`crate::Error::PodFailed`], so
//! it lives with the error type; reading it off a pod's status is `crate::cluster`'s work
//! (`cluster/startup.rs`, whose module comment says where each judgement comes from).
//!
//! Here too are the facts its message and its class need: which image pull errors retrying
//! cannot cure ([`classify_pull_error`]) and `runc init`'s exit code ([`RUNC_INIT_EXIT`]).

use std::fmt;

use super::FailureClass;

/// The exit code of `runc init` when it cannot exec the container's entrypoint
/// (opencontainers/runc v1.4.3 `libcontainer/init_linux.go`: `os.Exit(255)` after printing the
/// error to stderr).
pub(crate) const RUNC_INIT_EXIT: i32 = 255;

/// Whether retrying a failed image pull can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullErrorClass {
    /// The same pull will fail again: fail the wait at once.
    Deterministic,
    /// The registry or the network may answer differently on the kubelet's next try.
    Transient,
}

/// Texts of pull errors that retrying cannot cure, lower-cased, each with the upstream source
/// of its shape (containerd v2.2.0 unless said otherwise, the same in v2.3.4, the pinned kind
/// node's; the kubelet passes containerd's gRPC error text through,
/// `pkg/kubelet/images/image_manager.go` `evalCRIPullErr`).
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
    /// The node the pod was scheduled to, if any.
    pub node: Option<String>,
    /// The node's CPU architecture (`status.nodeInfo.architecture`), when the caller read it.
    pub node_architecture: Option<String>,
    /// The end of the container's log, when the caller read it because the cluster's status
    /// does not say why the container exited ([`PodFailure::wants_runtime_detail`]).
    pub runtime_detail: Option<String>,
    /// For a transient pull error made final by [`crate::cluster::pod_failure_within`]: how long it had been
    /// failing since the pod was scheduled, and the limit it passed (whole seconds).
    pub pull_given_up: Option<(i64, u64)>,
}

impl PodFailure {
    /// True when the status alone does not say why a container exited and runc may have said
    /// it on the container's stderr: an exit with [`RUNC_INIT_EXIT`] and no message.
    pub fn wants_runtime_detail(&self) -> bool {
        matches!(
            self.kind,
            StartFailure::Exited {
                exit_code: Some(RUNC_INIT_EXIT)
            }
        ) && !self.exec_format_error()
    }

    /// The failure with what the caller read: the end of the container's log and the node's
    /// architecture (either may be missing).
    pub fn with_runtime_detail(mut self, log_tail: Option<String>, arch: Option<String>) -> Self {
        self.runtime_detail = log_tail
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        self.node_architecture = arch;
        self
    }

    /// True when the cluster's words show the image is for another CPU architecture: runc's
    /// `exec … : exec format error` (`cluster/startup.rs`'s module comment cites runc).
    pub fn exec_format_error(&self) -> bool {
        matches!(self.kind, StartFailure::Exited { .. })
            && [Some(&self.message), self.runtime_detail.as_ref()]
                .into_iter()
                .flatten()
                .any(|t| t.contains("exec format error"))
    }

    /// Whether this is a pull error the kubelet may yet get past (see
    /// [`classify_pull_error`]); such a failure is never returned by [`crate::cluster::pod_failure`].
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
                if let Some((waited, limit)) = self.pull_given_up {
                    write!(
                        f,
                        " cannot be pulled: {}{message} — the kubelet has retried it since the \
                         pod was scheduled {waited}s ago, past the pull retry limit \
                         (HAPPY_TIMEOUT_PULL_RETRY={limit}s)",
                        self.reason
                    )?;
                } else if self.is_transient_pull() {
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
                         Requests): authenticate the pulls (on kind: HAPPY_KIND_REGISTRY_AUTH, README \
                         \"Docker Hub login\") or wait for the limit to reset",
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
                write!(f, " exited{code} ({}){message}", self.reason)?;
                if let Some(detail) = &self.runtime_detail {
                    write!(f, "; its log ends: {detail}")?;
                }
                if self.exec_format_error() {
                    let image = self.image.as_deref().unwrap_or("its image");
                    let arch = self.node_architecture.as_deref().unwrap_or("unknown");
                    let node = self
                        .node
                        .as_deref()
                        .map_or_else(String::new, |n| format!(" of node {n}"));
                    write!(
                        f,
                        " — exec format error: {image} has no build for this node's CPU \
                         architecture ({arch}{node}) and the node does not emulate one it has \
                         (runc could not exec the entrypoint); use a multi-arch image or one \
                         built for {arch}, a node of the image's architecture, or emulation \
                         of that architecture in the container engine (binfmt_misc with QEMU \
                         or Rosetta)"
                    )?;
                } else if *exit_code == Some(RUNC_INIT_EXIT) && self.runtime_detail.is_none() {
                    f.write_str(
                        " (255 is also runc's exit when it cannot start the entrypoint, e.g. \
                         `exec format error` for an image of another CPU architecture: \
                         `kubectl logs` of the container says which)",
                    )?;
                }
                Ok(())
            }
            StartFailure::NotStarted => write!(f, " cannot start: {}{message}", self.reason),
            StartFailure::Unschedulable => {
                write!(f, " cannot be scheduled: {}{message}", self.reason)
            }
        }
    }
}

/// containerd 2.1+ refuses schema-1 manifests: "media type
/// \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported since
/// containerd v2.1" (containerd `client/pull.go`, v2.1.0; `core/remotes/docker/resolver.go`
/// says the same "since containerd v2.0" for the unsigned v1+json type).
pub(crate) fn is_schema1(message: &str) -> bool {
    message.contains("application/vnd.docker.distribution.manifest.v1")
        || (message.contains("schema 1") && message.contains("no longer supported"))
}
