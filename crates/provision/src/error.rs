//! Provisioning's error type: what can go wrong making the cluster and its Istio — settings,
//! downloads, release archives, local files, tools (kind, istioctl, docker) and the
//! provisioners themselves — each naming the setting, URL, file, command or cluster at fault.
//!
//! Provisioning calls the claim path (applying Istio's manifests, waiting for rollouts), so a
//! claim-path error passes through unchanged in [`Error::Claims`] (`?` converts it) and keeps
//! its own class; every failure of provisioning proper is the environment's: the question the
//! workshop asks could not even be put to a cluster.

pub use happy_claims::error::FailureClass;

/// Errors of provisioning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error of the claim path, as it was (message and class).
    #[error(transparent)]
    Claims(#[from] happy_claims::Error),

    /// Anything not yet given its own variant; the message says what and where.
    #[error("{0}")]
    Other(String),

    /// A setting of the run (`HAPPY_*`, `ISTIO_VERSION`) could not be used. Its text is the
    /// claim path's `InvalidSetting` (a timeout override) word for word: both are a variable
    /// of the run's environment, and a test keeps them alike.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    InvalidSetting {
        /// The variable at fault, e.g. `HAPPY_CLUSTER`.
        var: String,
        /// Its value as given.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
    },

    // --- downloads, Istio tooling, provisioners ----------------------------------------
    /// A download failed (connection, HTTP status, size, time limit).
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL at fault.
        url: String,
        /// What failed, e.g. `HTTP 404 Not Found`.
        reason: String,
    },
    /// A downloaded file does not have the digest it must have.
    #[error("sha256 mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The URL that was downloaded.
        url: String,
        /// The digest it must have (pinned or from its checksum file).
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A checksum file could not be understood.
    #[error("checksum file {url}: {reason}")]
    ChecksumFile {
        /// Where the checksum came from.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A release archive could not be unpacked.
    #[error("archive {path}: {reason}")]
    Archive {
        /// The archive at fault.
        path: std::path::PathBuf,
        /// What is wrong with it (including path-escape attempts).
        reason: String,
    },
    /// A local file operation of the downloader or a provisioner failed.
    #[error("{action} {path}: {source}")]
    LocalIo {
        /// What was being done, e.g. `create cache directory`.
        action: String,
        /// The file or directory at fault.
        path: std::path::PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// An external command (kind, istioctl, docker) failed or ran out of time.
    #[error("`{command}` {outcome}{}", stderr_suffix(.stderr_tail))]
    Command {
        /// The command line as it was run.
        command: String,
        /// What happened: `exited with status 1`, `could not start: …`, `timed out after 60s`.
        outcome: String,
        /// The last lines of its stderr (empty when it printed nothing).
        stderr_tail: String,
    },
    /// An Istio version (from `ISTIO_VERSION`, a release list or istiod's image) is not usable.
    #[error("Istio version {input:?}: {reason}")]
    IstioVersion {
        /// The version text at fault.
        input: String,
        /// What is wrong, and what is accepted.
        reason: String,
    },
    /// A cluster could not be provisioned or torn down.
    #[error("{cluster}: {reason}")]
    Provision {
        /// The cluster, e.g. `kind cluster happy-istio`, `k3s container 3f2a…`, `sandbox`.
        cluster: String,
        /// What failed and, where possible, what to do about it.
        reason: String,
    },
}

fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr ends with:\n{tail}")
    }
}

impl Error {
    /// Whether this error means the claim failed or the environment did: a claim-path error
    /// keeps its own class; everything provisioning itself does is the environment's.
    pub fn class(&self) -> FailureClass {
        match self {
            Error::Claims(e) => e.class(),
            Error::Other(_)
            | Error::InvalidSetting { .. }
            | Error::Download { .. }
            | Error::DigestMismatch { .. }
            | Error::ChecksumFile { .. }
            | Error::Archive { .. }
            | Error::LocalIo { .. }
            | Error::Command { .. }
            | Error::IstioVersion { .. }
            | Error::Provision { .. } => FailureClass::Environment,
        }
    }

    /// Wraps a kube-rs error with what was being done: the claim path's `Kube` error, whose
    /// class tells the cluster answering from the cluster not answering.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Claims(happy_claims::Error::kube(action, source))
    }
}

/// Result with provisioning's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What `?` does on a claim-path call inside provisioning.
    fn through_question_mark(e: happy_claims::Error) -> Result<()> {
        let claim_path_call: happy_claims::Result<()> = Err(e);
        claim_path_call?;
        Ok(())
    }

    #[test]
    fn a_claim_path_error_passes_through_with_its_message_and_class() {
        let verdict = happy_claims::Error::NotConverged {
            what: "rollout of istiod".into(),
            limit: Duration::from_secs(30),
            attempts: 10,
            consecutive: 3,
            last: "0/1 Ready".into(),
        };
        let timeout = happy_claims::Error::Timeout {
            what: "rollout of deployment istiod in istio-system".into(),
            limit: Duration::from_secs(180),
            detail: None,
        };
        for claims in [verdict, timeout] {
            let (message, class) = (claims.to_string(), claims.class());
            let wrapped = through_question_mark(claims).unwrap_err();
            assert!(matches!(wrapped, Error::Claims(_)), "{wrapped:?}");
            assert_eq!(wrapped.to_string(), message);
            assert_eq!(wrapped.class(), class, "{message}");
        }
        // Both classes occur, so the delegation is tested, not a constant.
        let kept = happy_claims::Error::Parse {
            what: "istioctl version".into(),
            message: "no JSON".into(),
        };
        assert_eq!(Error::from(kept).class(), FailureClass::Claim);
    }

    #[test]
    fn provisioning_itself_is_the_environment() {
        let failures = [
            Error::Download {
                url: "https://example.org/x".into(),
                reason: "HTTP 404".into(),
            },
            Error::Command {
                command: "kind create cluster".into(),
                outcome: "exited with status 1".into(),
                stderr_tail: String::new(),
            },
            Error::Provision {
                cluster: "kind cluster happy-istio".into(),
                reason: "no node became Ready".into(),
            },
            Error::IstioVersion {
                input: "1.x".into(),
                reason: "not a version".into(),
            },
        ];
        for e in failures {
            assert_eq!(e.class(), FailureClass::Environment, "{e}");
        }
    }

    #[test]
    fn a_setting_reads_as_a_timeout_override_does() {
        let (var, value, reason) = ("HAPPY_CLUSTER", "kinda", "expected kind, k3s, …");
        let setting = Error::InvalidSetting {
            var: var.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let timeout = happy_claims::Error::InvalidSetting {
            var: var.into(),
            value: value.into(),
            reason: reason.into(),
        };
        assert_eq!(setting.to_string(), timeout.to_string());
        assert_eq!(
            setting.to_string(),
            "environment variable HAPPY_CLUSTER=\"kinda\" is invalid: expected kind, k3s, …"
        );
        assert_eq!(setting.class(), timeout.class());
    }

    #[test]
    fn a_command_names_its_stderr_only_when_there_is_one() {
        let failed = |stderr_tail: &str| Error::Command {
            command: "istioctl install".into(),
            outcome: "exited with status 1".into(),
            stderr_tail: stderr_tail.into(),
        };
        assert_eq!(
            failed(" \n").to_string(),
            "`istioctl install` exited with status 1"
        );
        assert_eq!(
            failed("Error: no such image").to_string(),
            "`istioctl install` exited with status 1; stderr ends with:\nError: no such image"
        );
    }
}
