//! A step's failure and its class: the claim failed (the cluster answered, not as the workshop
//! says) or the environment did (the question could not be asked). A leaf of the step layer:
//! every other module of it may use this one.

use std::fmt;

use happy_istio::error::FailureClass;

/// A failed step: what was expected and what was seen, and who is at fault — the claim (the
/// cluster answered, not as the workshop says) or the environment (the question could not be
/// asked). Its message always begins with `claim failed: ` or `environment failed: `, which
/// is what the runner and the reports read the class from.
#[derive(Debug)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    /// The claim failed: the cluster answered, not as the workshop says.
    pub fn claim(message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Claim,
            message: message.into(),
        }
    }

    /// The environment failed: the cluster, a tool or a setting could not be used.
    pub fn environment(message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Environment,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.class.prefix(), self.message)
    }
}

impl std::error::Error for Failure {}

/// Classified by the error's variant ([`happy_istio::Error::class`]).
impl From<happy_istio::Error> for Failure {
    fn from(e: happy_istio::Error) -> Self {
        Failure {
            class: e.class(),
            message: e.to_string(),
        }
    }
}

/// Provisioning's error (an Istio install, istioctl, the addons), classified the same way: a
/// claim-path error inside it keeps its class ([`happy_istio::ProvisionError::class`]).
impl From<happy_istio::ProvisionError> for Failure {
    fn from(e: happy_istio::ProvisionError) -> Self {
        Failure {
            class: e.class(),
            message: e.to_string(),
        }
    }
}

/// A bare message is the claim failing, as with [`fail!`].
impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::claim(s)
    }
}

/// A step's outcome.
pub type Step = Result<(), Failure>;

/// Fail a step with a formatted message: the claim failed. `fail!(environment, "…")` when it
/// is the environment.
macro_rules! fail {
    (environment, $($arg:tt)*) => {
        return Err($crate::definitions::failure::Failure::environment(format!($($arg)*)))
    };
    ($($arg:tt)*) => {
        return Err($crate::definitions::failure::Failure::claim(format!($($arg)*)))
    };
}
pub(crate) use fail;

#[cfg(test)]
mod tests {
    use super::*;

    /// An Istio install that fails by the claim path (an answer it cannot use) fails the step
    /// as the claim; one that fails by provisioning proper (istioctl cannot be downloaded) as
    /// the environment. Both say so in the prefix the runner and the reports read.
    #[test]
    fn provisioning_errors_fail_a_step_with_their_class() {
        let claim_path = happy_istio::ProvisionError::from(happy_istio::Error::Unexpected {
            what: "Service istio-ingressgateway in istio-system".into(),
            message: "it has no spec".into(),
        });
        let failure = Failure::from(claim_path);
        assert_eq!(failure.class, FailureClass::Claim);
        assert_eq!(
            failure.to_string(),
            "claim failed: Service istio-ingressgateway in istio-system: it has no spec"
        );
        let download = Failure::from(happy_istio::ProvisionError::Download {
            url: "https://github.com/istio/istio/releases/download/1.31.1/istioctl".into(),
            reason: "HTTP 404 Not Found".into(),
        });
        assert_eq!(download.class, FailureClass::Environment);
        assert_eq!(
            download.to_string(),
            "environment failed: download of \
             https://github.com/istio/istio/releases/download/1.31.1/istioctl failed: \
             HTTP 404 Not Found"
        );
    }
}
