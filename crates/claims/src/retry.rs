//! Retrying an eventually-consistent check: [`eventually`] runs a whole check again until it
//! holds several times in a row, within a limit from the timeout table (`crate::timeouts`);
//! [`eventually_or_decided`] also ends it as soon as its failures are final; [`settled`]
//! returns agreeing observations whatever they say.
//! A leaf module: the claim path (cluster, checks, steps) and the timeout table use it, and it
//! uses only the crate's error type.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How an eventually-consistent assertion is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Convergence {
    /// Give up after this long.
    pub limit: Duration,
    /// Pause between attempts.
    pub interval: Duration,
    /// Successes in a row needed before the check counts as holding.
    pub consecutive: u32,
}

/// Retries the whole `check` until it succeeds `policy.consecutive` times in a row (a failure
/// resets the count) and returns the last success's value.
///
/// Config reaches Envoy proxies one by one, so a single success may be a proxy that already
/// has it next to one that does not; consecutive successes make that unlikely. On timeout the
/// error names `what`, the number of attempts and the last failure. A single attempt that is
/// still running when the limit is reached is abandoned and counts as a failure.
pub async fn eventually<T, F, Fut>(what: &str, policy: &Convergence, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    eventually_holding(what, policy, policy.limit, check).await
}

/// [`eventually`] for a check whose attempts are slow when the system is merely slow (a batch
/// of requests each opening a port-forward): past `policy.limit` it goes on while the check
/// holds, up to `holding_limit`. The attempt under way at `policy.limit` may finish, and after
/// it a new attempt starts only while the streak of successes is unbroken; a failure past
/// `policy.limit` ends it at once. So a check that fails still fails at `policy.limit`, and
/// one that holds gets the time its `consecutive` attempts need. With `holding_limit` not
/// longer than `policy.limit` this is exactly [`eventually`].
pub(crate) async fn eventually_holding<T, F, Fut>(
    what: &str,
    policy: &Convergence,
    holding_limit: Duration,
    check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    retry(what, policy, holding_limit, None, check).await
}

/// From when a check's outcome can no longer change, and why: its failures from then on are the
/// verdict as much as its successes are.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Attempts begun at or after this instant judge what is final.
    pub from: Instant,
    /// Why nothing changes after `from`, for the failure message (e.g. "4s after the
    /// requests, Envoy has flushed their access-log entries").
    pub why: String,
}

/// [`eventually`] for a check about something that stops changing at a known moment — the
/// entries or counts of requests that have ended, once the proxy has written or counted them —
/// so a failure is as final as a success: it holds once `policy.consecutive` attempts in a row
/// succeed, as [`eventually`] does, and it fails as soon as `policy.consecutive` attempts in a
/// row, each begun at or after `decided.from`, have failed, instead of waiting out the limit
/// (which still ends it if neither streak comes). A check for what converges with no such
/// moment (a configuration still reaching the sidecars) must use [`eventually`].
pub async fn eventually_or_decided<T, F, Fut>(
    what: &str,
    policy: &Convergence,
    decided: &Decided,
    check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    retry(what, policy, policy.limit, Some(decided), check).await
}

async fn retry<T, F, Fut>(
    what: &str,
    policy: &Convergence,
    holding_limit: Duration,
    decided: Option<&Decided>,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let needed = policy.consecutive.max(1);
    let start = Instant::now();
    let deadline = start + policy.limit;
    let holding_limit = holding_limit.max(policy.limit);
    let hard_deadline = start + holding_limit;
    let mut attempts = 0u32;
    let mut streak = 0u32;
    let mut last_failure: Option<String> = None;
    // Failures in a row among the attempts begun once the outcome was final.
    let mut final_failures = 0u32;
    loop {
        attempts += 1;
        let began = Instant::now();
        let remaining = hard_deadline.saturating_duration_since(began);
        match tokio::time::timeout(remaining, check()).await {
            Ok(Ok(value)) => {
                streak += 1;
                final_failures = 0;
                if streak >= needed {
                    return Ok(value);
                }
            }
            Ok(Err(failure)) => {
                streak = 0;
                last_failure = Some(failure);
            }
            Err(_) => {
                streak = 0;
                last_failure = Some(format!(
                    "the attempt was still running when the limit of {holding_limit:?} was reached"
                ));
            }
        }
        if let Some(decided) = decided.filter(|d| streak == 0 && began >= d.from) {
            final_failures += 1;
            if final_failures >= needed {
                return Err(Error::Decided {
                    what: what.to_string(),
                    consecutive: needed,
                    why: decided.why.clone(),
                    attempts,
                    last: last_failure.unwrap_or_default(),
                });
            }
        }
        let next = Instant::now() + policy.interval;
        let past_holding = next > hard_deadline;
        if past_holding || (next > deadline && streak == 0) {
            let last = match last_failure {
                Some(f) => f,
                None => format!("none, but only {streak} of {needed} successes in a row"),
            };
            return Err(Error::NotConverged {
                what: what.to_string(),
                limit: if past_holding {
                    holding_limit
                } else {
                    policy.limit
                },
                attempts,
                consecutive: needed,
                last,
            });
        }
        tokio::time::sleep(policy.interval).await;
    }
}

/// Repeats `observe` until its last `policy.consecutive` observations, each begun no earlier
/// than `not_before`, say the same thing (`says` maps an observation to what it says), and
/// returns those observations in order — whatever they say: the caller judges them.
///
/// This is for observations whose outcome is the verdict either way, such as a packet capture
/// that shows plaintext or does not: a single capture taken while a change is still reaching
/// the sidecars can show the old configuration, so one capture must not decide. Observations
/// begun before `not_before` (the suite's last change plus the time a change takes to reach
/// the sidecars) do not count. An observation that fails (`Err`) ends it with that error: it
/// is the environment's failure, not an observation. If the observations have not agreed
/// `policy.consecutive` times in a row `policy.limit` after `not_before` (or after the start,
/// whichever is later), the error names `what` and the last observations.
pub async fn settled<T, K, E, F, Fut>(
    what: &str,
    policy: &Convergence,
    not_before: Instant,
    mut observe: F,
    says: impl Fn(&T) -> K,
) -> std::result::Result<Vec<T>, E>
where
    K: PartialEq + std::fmt::Display,
    E: From<Error>,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let needed = policy.consecutive.max(1);
    let deadline = Instant::now().max(not_before) + policy.limit;
    let mut attempts = 0u32;
    let mut streak: Vec<(K, T)> = Vec::new();
    let mut history: Vec<K> = Vec::new();
    loop {
        let began = Instant::now();
        attempts += 1;
        let observed = observe().await?;
        if began >= not_before {
            let said = says(&observed);
            if streak.last().is_some_and(|(last, _)| *last != said) {
                history.extend(streak.drain(..).map(|(k, _)| k));
            }
            streak.push((said, observed));
            if streak.len() >= needed as usize {
                return Ok(streak.into_iter().map(|(_, t)| t).collect());
            }
        }
        if Instant::now() + policy.interval > deadline {
            history.extend(streak.drain(..).map(|(k, _)| k));
            let tail = history.len().saturating_sub(6);
            return Err(Error::NotConverged {
                what: what.to_string(),
                limit: policy.limit,
                attempts,
                consecutive: needed,
                last: format!(
                    "no {needed} observations in a row agreed; the last ones said: {}",
                    history[tail..]
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }
            .into());
        }
        tokio::time::sleep(policy.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy(limit_ms: u64, interval_ms: u64, consecutive: u32) -> Convergence {
        Convergence {
            limit: Duration::from_millis(limit_ms),
            interval: Duration::from_millis(interval_ms),
            consecutive,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn converges_after_n_consecutive_successes() {
        let calls = Cell::new(0u32);
        let start = Instant::now();
        let value = eventually("always fine", &policy(30_000, 100, 3), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Ok::<_, String>(n) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3, "returns the value of the last (third) success");
        assert_eq!(calls.get(), 3);
        // two pauses between three attempts, on the paused clock
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_resets_the_count() {
        // success, success, failure, then successes: needs attempts 4, 5, 6 to hold
        let calls = Cell::new(0u32);
        let value = eventually("flaky", &policy(30_000, 100, 3), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 3 {
                    Err(format!("attempt {n} failed"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 6);
        assert_eq!(calls.get(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_failure() {
        let calls = Cell::new(0u32);
        let start = Instant::now();
        let err = eventually("service-a answers 200", &policy(1_000, 100, 3), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err::<(), _>(format!("status 503 on attempt {n}")) }
        })
        .await
        .unwrap_err();
        let attempts = calls.get();
        let msg = err.to_string();
        assert!(msg.contains("service-a answers 200"), "{msg}");
        assert!(msg.contains(&format!("({attempts} attempts)")), "{msg}");
        assert!(
            msg.contains(&format!("last failure: status 503 on attempt {attempts}")),
            "{msg}"
        );
        assert!(
            (10..=11).contains(&attempts),
            "{attempts} attempts in 1s at 100ms"
        );
        assert!(start.elapsed() <= Duration::from_millis(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn alternating_results_never_converge() {
        let calls = Cell::new(0u32);
        let err = eventually("alternating", &policy(2_000, 100, 2), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n.is_multiple_of(2) {
                    Err("odd one out".to_string())
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::NotConverged { consecutive: 2, .. }),
            "{err}"
        );
    }

    fn decided_after(ms: u64) -> Decided {
        Decided {
            from: Instant::now() + Duration::from_millis(ms),
            why: "the requests' entries were flushed".to_string(),
        }
    }

    /// A check that never holds ends once `consecutive` attempts begun at or after
    /// `decided.from` have failed, not at the limit; earlier failures do not count.
    #[tokio::test(start_paused = true)]
    async fn a_decided_failure_ends_it_before_the_limit() {
        let start = Instant::now();
        let decided = decided_after(1_000);
        let calls = Cell::new(0u32);
        let err = eventually_or_decided("entry", &policy(30_000, 100, 3), &decided, || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>("no entry".to_string()) }
        })
        .await
        .unwrap_err();
        // Attempts at 0, 100, …, 900 ms do not count; those at 1000, 1100 and 1200 ms decide.
        assert_eq!(start.elapsed(), Duration::from_millis(1_200), "{err}");
        assert_eq!(calls.get(), 13);
        assert_eq!(err.class(), crate::error::FailureClass::Claim);
        let msg = err.to_string();
        assert!(
            msg.contains("entry does not hold: 3 attempts in a row failed once the requests' entries were flushed (13 attempts); last failure: no entry"),
            "{msg}"
        );
    }

    /// Successes hold as with `eventually`, before or after `decided.from`; a success breaks
    /// a streak of final failures.
    #[tokio::test(start_paused = true)]
    async fn a_decided_check_still_holds_on_successes() {
        let start = Instant::now();
        let value = eventually_or_decided(
            "early",
            &policy(30_000, 100, 3),
            &decided_after(5_000),
            || async { Ok::<_, String>(7) },
        )
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // Past `from`: fail, fail, succeed, fail, fail, then successes — never 3 failures in
        // a row, so it holds at attempts 6, 7, 8.
        let calls = Cell::new(0u32);
        let value =
            eventually_or_decided("mixed", &policy(30_000, 100, 3), &decided_after(0), || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if [1, 2, 4, 5].contains(&n) {
                        Err(format!("attempt {n}"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(value, 8);
    }

    /// Without a streak either way the limit still ends it.
    #[tokio::test(start_paused = true)]
    async fn a_decided_check_that_alternates_ends_at_the_limit() {
        let start = Instant::now();
        let calls = Cell::new(0u32);
        let err = eventually_or_decided(
            "alternating",
            &policy(2_000, 100, 2),
            &decided_after(0),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n.is_multiple_of(2) {
                        Err("odd one out".to_string())
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::NotConverged { .. }), "{err}");
        assert!(start.elapsed() <= Duration::from_millis(2_000));
    }

    /// Attempts of 400 ms, three in a row needed, a 1 s limit: the streak started before the
    /// limit goes on past it, within the holding limit.
    #[tokio::test(start_paused = true)]
    async fn a_streak_under_way_goes_on_past_the_limit() {
        let calls = Cell::new(0u32);
        let slow = || {
            calls.set(calls.get() + 1);
            async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok::<_, String>(())
            }
        };
        let start = Instant::now();
        eventually_holding("slow", &policy(1_000, 100, 3), Duration::from_secs(3), slow)
            .await
            .unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(1_400));
        // Without the holding limit the same check gives up at the limit.
        calls.set(0);
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok::<_, String>(())
        };
        assert!(
            eventually("slow", &policy(1_000, 100, 3), slow)
                .await
                .is_err()
        );
    }

    /// Past the limit, a failure ends it at once, and so does the holding limit.
    #[tokio::test(start_paused = true)]
    async fn past_the_limit_a_failure_or_the_holding_limit_ends_it() {
        // Fails from the start: ends at the limit, not the holding limit.
        let start = Instant::now();
        let err = eventually_holding(
            "never",
            &policy(1_000, 100, 3),
            Duration::from_secs(60),
            || async { Err::<(), _>("503".to_string()) },
        )
        .await
        .unwrap_err();
        assert!(start.elapsed() <= Duration::from_millis(1_000), "{err}");
        assert!(
            matches!(err, Error::NotConverged { limit, .. } if limit == Duration::from_secs(1)),
            "{err}"
        );
        // Holds twice, then fails past the limit: ends with that failure.
        let calls = Cell::new(0u32);
        let start = Instant::now();
        let err = eventually_holding(
            "breaks",
            &policy(1_000, 100, 3),
            Duration::from_secs(60),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    if n <= 2 {
                        Ok(())
                    } else {
                        Err(format!("attempt {n} failed"))
                    }
                }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(calls.get(), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(1_400));
        assert!(err.to_string().contains("attempt 3 failed"), "{err}");
        // Holds but too slowly: ends at the holding limit, naming it.
        let start = Instant::now();
        let err = eventually_holding(
            "too slow",
            &policy(1_000, 100, 3),
            Duration::from_millis(1_500),
            || async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                Ok::<_, String>(())
            },
        )
        .await
        .unwrap_err();
        assert!(start.elapsed() <= Duration::from_millis(1_500), "{err}");
        assert!(
            matches!(err, Error::NotConverged { limit, .. } if limit == Duration::from_millis(1_500)),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_at_the_limit() {
        let err = eventually("hangs", &policy(500, 100, 1), || async {
            std::future::pending::<std::result::Result<(), String>>().await
        })
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("still running"), "{msg}");
        assert!(msg.contains("(1 attempts)"), "{msg}");
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Encrypted,
        Plaintext,
    }

    impl std::fmt::Display for Seen {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(match self {
                Seen::Encrypted => "only ciphertext",
                Seen::Plaintext => "plaintext HTTP",
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_still_reaching_the_sidecars_does_not_decide() {
        // The first captures show the old configuration (encrypted), the later ones the new
        // (plaintext): the verdict is the new one, once it has been seen three times in a row.
        let calls = Cell::new(0u32);
        let observed: std::result::Result<Vec<(u32, Seen)>, Error> = settled(
            "a capture",
            &policy(30_000, 100, 3),
            Instant::now(),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    let seen = if n <= 2 {
                        Seen::Encrypted
                    } else {
                        Seen::Plaintext
                    };
                    Ok((n, seen))
                }
            },
            |(_, seen)| {
                if *seen == Seen::Encrypted {
                    Seen::Encrypted
                } else {
                    Seen::Plaintext
                }
            },
        )
        .await;
        let streak = observed.unwrap();
        assert_eq!(
            streak,
            vec![
                (3, Seen::Plaintext),
                (4, Seen::Plaintext),
                (5, Seen::Plaintext)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn observations_begun_before_the_change_has_spread_do_not_count() {
        let start = Instant::now();
        let calls = Cell::new(0u32);
        let observed: std::result::Result<Vec<u32>, Error> = settled(
            "a capture",
            &policy(30_000, 100, 3),
            start + Duration::from_secs(3),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Ok(n) }
            },
            |_| "anything",
        )
        .await;
        // attempts at 0, 0.1, …, 2.9 s do not count; 3.0, 3.1 and 3.2 s do
        assert_eq!(observed.unwrap(), vec![31, 32, 33]);
        assert_eq!(start.elapsed(), Duration::from_millis(3_200));
    }

    #[tokio::test(start_paused = true)]
    async fn observations_that_never_agree_fail_naming_what_they_said() {
        let calls = Cell::new(0u32);
        let err: Error = settled(
            "the capture into service-c-v1",
            &policy(1_000, 100, 3),
            Instant::now(),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Ok::<_, Error>(n) }
            },
            |n| {
                if n % 2 == 0 {
                    Seen::Plaintext
                } else {
                    Seen::Encrypted
                }
            },
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("the capture into service-c-v1"), "{msg}");
        assert!(
            msg.contains("the last ones said: plaintext HTTP; only ciphertext"),
            "{msg}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_observation_ends_it_at_once() {
        let calls = Cell::new(0u32);
        let err: Error = settled(
            "a capture",
            &policy(30_000, 100, 3),
            Instant::now(),
            || {
                calls.set(calls.get() + 1);
                async move {
                    Err::<u32, Error>(Error::Other("tcpdump exited 1: permission denied".into()))
                }
            },
            |_| "anything",
        )
        .await
        .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert!(err.to_string().contains("permission denied"), "{err}");
    }
}
