//! The claim path's error type, and the class every failure of the suite has. Every failure
//! names the file, object, option or command at fault, and says by [`Error::class`] whether
//! the claim failed or the environment did.
//!
//! Each crate of the workspace has its own error type, as kube-rs's crates do: provisioning's
//! (downloads, tools, provisioners, the run's settings) is `happy_provision::Error`, the
//! reports' `happy_report::Error`; each wraps this one where it calls the claim path and gives
//! the same [`FailureClass`]. This module knows nothing of them.

pub mod pod_failure;

/// Errors of the claim path: the timeout table, the workshop's manifests, the cluster's API,
/// the probes and checks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Anything not yet given its own variant; the message says what and where.
    #[error("{0}")]
    Other(String),

    // --- timeouts: the timeout table and its environment overrides -----------------------
    /// An environment override of the timeout table could not be read.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    InvalidSetting {
        /// The variable at fault, e.g. `HAPPY_TIMEOUT_ROLLOUT`.
        var: String,
        /// Its value as given.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
    },

    // --- manifests: the workshop's YAML files -------------------------------------------
    /// A manifest file could not be read.
    #[error("cannot read manifest file {path}: {source}")]
    ManifestRead {
        /// The file at fault.
        path: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A document of a manifest file is malformed or lacks what every object needs.
    #[error("{path}, document {document}: {message}")]
    Manifest {
        /// The file at fault.
        path: std::path::PathBuf,
        /// The 1-based document number within the file.
        document: usize,
        /// What is wrong (with line and column when the YAML parser knows them).
        message: String,
    },

    // --- cluster: everything said to the Kubernetes API --------------------------------
    /// The cluster does not serve a kind a manifest uses (for example Istio CRDs missing).
    #[error("{object}: the cluster does not serve kind {kind} of apiVersion {api_version}")]
    UnknownKind {
        /// The object, as `Manifest::describe` or `"<kind> in <namespace>"` puts it.
        object: String,
        /// The apiVersion asked for.
        api_version: String,
        /// The kind asked for.
        kind: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {}", kube_message(.source))]
    Kube {
        /// What was being done, naming the object, e.g. `apply Deployment service-a in istioinaction`.
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A wait ran out of time.
    #[error("timed out after {limit:?} waiting for {what}{}", detail_suffix(.detail))]
    Timeout {
        /// What was awaited, naming the object.
        what: String,
        /// The limit that ran out (an entry of the timeout table).
        limit: std::time::Duration,
        /// The last state seen, if any, to explain why it never held.
        detail: Option<String>,
    },
    /// A pod cannot start, as the cluster says (image pull errors, a container that exits or
    /// crash-loops, an unschedulable pod): the wait gives up at once instead of at its limit.
    #[error("{what}: {}", .failure)]
    PodFailed {
        /// What was awaited, naming the object, e.g. `rollout of deployment service-b in istioinaction`.
        what: String,
        /// The pod, container, image and the cluster's own reason and message.
        failure: Box<pod_failure::PodFailure>,
    },
    /// Nothing to talk to: no Ready pod behind a deployment or Service (a port-forward or exec
    /// cannot even be opened).
    #[error("{what}: {message}")]
    NotReady {
        /// The deployment or Service, e.g. `deployment service-a in istioinaction`.
        what: String,
        /// What was found instead, e.g. `no Ready pod (service-a-1 0/2 Pending)`.
        message: String,
    },
    /// The cluster answered, but with something the suite cannot use.
    #[error("{what}: {message}")]
    Unexpected {
        /// The object or exchange at fault.
        what: String,
        /// What was wrong with it.
        message: String,
    },

    // --- probes: observing what a reader would see -------------------------------------
    /// An `eventually` check never held `consecutive` times in a row within its limit.
    #[error(
        "{what} did not hold {consecutive} times in a row within {limit:?} ({attempts} attempts); last failure: {last}"
    )]
    NotConverged {
        /// What was awaited.
        what: String,
        /// The limit that ran out.
        limit: std::time::Duration,
        /// How many times the check ran.
        attempts: u32,
        /// How many consecutive successes were needed.
        consecutive: u32,
        /// The last failure's message.
        last: String,
    },
    /// An `eventually_or_decided` check failed `consecutive` times in a row after its outcome
    /// could no longer change: it will not hold, however long one waits.
    #[error(
        "{what} does not hold: {consecutive} attempts in a row failed once {why} ({attempts} attempts); last failure: {last}"
    )]
    Decided {
        /// What was awaited.
        what: String,
        /// How many failures in a row decided it.
        consecutive: u32,
        /// Why the outcome could no longer change when those attempts began.
        why: String,
        /// How many times the check ran.
        attempts: u32,
        /// The last failure's message.
        last: String,
    },
    /// Output of a workload or tool (JSON, metrics, logs) could not be parsed.
    #[error("cannot parse {what}: {message}")]
    Parse {
        /// What was being parsed, e.g. `fake-service JSON from service-a`.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// An HTTP exchange through a port-forward failed.
    #[error("HTTP GET {target}: {message}")]
    Http {
        /// The target, e.g. `istioinaction/service-a-5d4f:8080/ui`.
        target: String,
        /// What failed.
        message: String,
    },
    /// A port-forward to a pod could not be opened (the exchange never started).
    #[error("port-forward to {target}: {message}")]
    PortForward {
        /// The target, e.g. `istioinaction/service-a-5d4f:8080/ui`.
        target: String,
        /// What failed.
        message: String,
    },
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!("; last seen: {d}"),
        None => String::new(),
    }
}

/// Who is at fault when something fails: the workshop's claim, or the environment it ran in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// The cluster answered, and not as the workshop says.
    Claim,
    /// The question could not be asked: image pulls, nodes, provisioning, downloads, tools that
    /// could not be started, an API server that did not answer, a wait that never ended.
    Environment,
}

impl FailureClass {
    /// `claim` or `environment`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Claim => "claim",
            FailureClass::Environment => "environment",
        }
    }

    /// What every failed step's message begins with: `claim failed: ` or `environment failed: `.
    pub fn prefix(self) -> &'static str {
        match self {
            FailureClass::Claim => "claim failed: ",
            FailureClass::Environment => "environment failed: ",
        }
    }

    /// The class a message carries in its prefix, if it has one.
    pub fn of_message(message: &str) -> Option<FailureClass> {
        [FailureClass::Claim, FailureClass::Environment]
            .into_iter()
            .find(|c| message.starts_with(c.prefix()))
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Whether this error means the claim failed (the cluster answered otherwise) or the
    /// environment did (the cluster, a tool or a setting could not be used).
    pub fn class(&self) -> FailureClass {
        use FailureClass::{Claim, Environment};
        match self {
            // The cluster answered: a kind it does not serve, an object it refused (4xx), an
            // answer the suite cannot use, an assertion that never held, output that is not
            // what the workload should print, an HTTP exchange that went wrong in the mesh,
            // a workshop file that is malformed.
            Error::UnknownKind { .. }
            | Error::Unexpected { .. }
            | Error::NotConverged { .. }
            | Error::Decided { .. }
            | Error::Parse { .. }
            | Error::Http { .. }
            | Error::Manifest { .. } => Claim,
            Error::Kube { source, .. } => kube_class(source),
            // A pod that cannot start, nothing Ready to talk to, a wait that never ended,
            // a timeout override or a manifest file that cannot be read.
            Error::PodFailed { .. }
            | Error::NotReady { .. }
            | Error::PortForward { .. }
            | Error::Timeout { .. }
            | Error::Other(_)
            | Error::InvalidSetting { .. }
            | Error::ManifestRead { .. } => Environment,
        }
    }

    /// Wraps a kube-rs error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// The API server's own words for an API error (`pods "x" not found (NotFound, 404)`),
/// the client's message otherwise.
fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} ({}, {})", status.message, status.reason, status.code)
        }
        other => other.to_string(),
    }
}

/// An API server's 4xx answer (404 NotFound, 409 Conflict, 422 Invalid) is the cluster
/// answering; 401/403 (the credentials the suite was given), 429 (the server is overloaded),
/// 5xx, and anything that never reached or never came
/// back from the server (connection, TLS, auth set-up, a broken body) is the environment.
fn kube_class(error: &kube::Error) -> FailureClass {
    match error {
        kube::Error::Api(status)
            if (400..500).contains(&status.code) && ![401, 403, 429].contains(&status.code) =>
        {
            FailureClass::Claim
        }
        _ => FailureClass::Environment,
    }
}

/// True when a kube-rs error is the API server's 404.
pub(crate) fn is_kube_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Result with the claim path's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::kube(
            "apply Deployment service-a in istioinaction",
            kube::Error::Api(
                kube::core::Status::failure("m", "Reason")
                    .with_code(code)
                    .boxed(),
            ),
        )
    }

    #[test]
    fn the_cluster_answering_is_the_claim_anything_else_the_environment() {
        assert_eq!(api(422).class(), FailureClass::Claim);
        assert_eq!(api(404).class(), FailureClass::Claim);
        for code in [401, 403, 429, 500, 503] {
            assert_eq!(api(code).class(), FailureClass::Environment, "{code}");
        }
        let timeout = Error::Timeout {
            what: "rollout of deployment service-b in istioinaction".into(),
            limit: std::time::Duration::from_secs(180),
            detail: None,
        };
        assert_eq!(timeout.class(), FailureClass::Environment);
        let not_ready = Error::NotReady {
            what: "deployment service-a in istioinaction".into(),
            message: "no Ready pod".into(),
        };
        assert_eq!(not_ready.class(), FailureClass::Environment);
        let verdict = Error::NotConverged {
            what: "GET / through the ingress gateway".into(),
            limit: std::time::Duration::from_secs(30),
            attempts: 10,
            consecutive: 3,
            last: "status 503, expected 200".into(),
        };
        assert_eq!(verdict.class(), FailureClass::Claim);
    }

    #[test]
    fn prefixes_round_trip() {
        for c in [FailureClass::Claim, FailureClass::Environment] {
            assert_eq!(
                FailureClass::of_message(&format!("{}x", c.prefix())),
                Some(c)
            );
        }
        assert_eq!(FailureClass::of_message("timed out"), None);
    }
}
