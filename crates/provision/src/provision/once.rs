//! Once per run, failure included: the Istio install runs at most once in a run, and when it
//! fails every later caller gets that first failure at once instead of installing again
//! (`tokio::sync::OnceCell::get_or_try_init` keeps only a success, so each of the ~22 Istio
//! scenarios would have retried a failed install and waited out its limit again).

use std::future::Future;

use tokio::sync::OnceCell;

use crate::{Error, Result};

/// The outcome of an action run at most once.
#[derive(Debug)]
pub struct Once<T> {
    /// What the action is, for the later callers' error ("Istio install").
    what: &'static str,
    outcome: OnceCell<std::result::Result<T, String>>,
}

impl<T> Once<T> {
    /// Not run yet.
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            outcome: OnceCell::new(),
        }
    }

    /// The value, once the action has succeeded.
    pub fn get(&self) -> Option<&T> {
        self.outcome.get().and_then(|o| o.as_ref().ok())
    }

    /// The first failure's message, once the action has failed.
    pub fn failure(&self) -> Option<&str> {
        self.outcome
            .get()
            .and_then(|o| o.as_ref().err())
            .map(String::as_str)
    }

    /// Runs `action` unless it ran before. The caller that runs it gets its own result (the
    /// error keeps its class); every later caller gets the value, or
    /// "<what> failed earlier in this run: <first error>", an environment failure, without
    /// the action running again. Concurrent callers wait for the one that runs it.
    pub async fn get_or_run<F, Fut>(&self, action: F) -> Result<&T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut first_error = None;
        let outcome = self
            .outcome
            .get_or_init(|| async {
                action().await.map_err(|e| {
                    let message = e.to_string();
                    first_error = Some(e);
                    message
                })
            })
            .await;
        if let Some(e) = first_error {
            return Err(e);
        }
        outcome.as_ref().map_err(|first| {
            Error::Other(format!("{} failed earlier in this run: {first}", self.what))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FailureClass;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_failure_is_kept_and_the_action_never_runs_again() {
        let once: Once<String> = Once::new("Istio install");
        let runs = AtomicUsize::new(0);
        let install = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err::<String, _>(Error::from(happy_claims::Error::Unexpected {
                what: "istiod".into(),
                message: "pull of docker.io/istio/pilot:1.31.1 failed".into(),
            }))
        };
        let first = once.get_or_run(install).await.unwrap_err();
        // The first caller keeps the error as it was, class included.
        assert_eq!(first.class(), FailureClass::Claim);
        assert_eq!(
            first.to_string(),
            "istiod: pull of docker.io/istio/pilot:1.31.1 failed"
        );
        for _ in 0..3 {
            let again = once.get_or_run(install).await.unwrap_err();
            assert_eq!(
                again.to_string(),
                "Istio install failed earlier in this run: istiod: pull of \
                 docker.io/istio/pilot:1.31.1 failed"
            );
            assert_eq!(again.class(), FailureClass::Environment);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the installer ran again");
        assert_eq!(once.get(), None);
        assert!(once.failure().unwrap().contains("docker.io/istio/pilot"));
    }

    #[tokio::test]
    async fn a_success_is_kept_too() {
        let once: Once<u32> = Once::new("Istio install");
        let runs = AtomicUsize::new(0);
        for _ in 0..2 {
            let v = once
                .get_or_run(|| async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(7)
                })
                .await
                .unwrap();
            assert_eq!(*v, 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(once.get(), Some(&7));
        assert_eq!(once.failure(), None);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let once: Once<u32> = Once::new("Istio install");
        let runs = AtomicUsize::new(0);
        let call = || {
            once.get_or_run(|| async {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Err::<u32, _>(Error::Other("no".into()))
            })
        };
        let (a, b) = tokio::join!(call(), call());
        assert!(a.is_err() && b.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
