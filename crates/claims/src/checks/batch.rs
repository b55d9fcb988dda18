//! How many requests a statistical claim needs, and when a batch of responses proves it.
//!
//! Through service-a with service-c v2 deployed, a request fails with probability 1/2 (one
//! endpoint of two, and v2 fails every request). The batch sizes below keep the probability of
//! a wrong verdict under [`MAX_FALSE_VERDICT`] (1e-9):
//!
//! - "every response is 200": a configuration that still fails at least half of the requests
//!   passes a batch of n with probability at most 0.5^n; n = 30 gives 9.3e-10.
//! - "some responses are 500 and some are 200": a correct system misses one of the two outcomes
//!   with probability at most 2 · 0.5^n (union bound); n = 31 gives 9.3e-10.
//!
//! Batches are retried until they hold for `consecutive` attempts in a row (see
//! [`crate::retry::eventually`]): that absorbs configuration still propagating to the proxies,
//! and only lowers the chance of a wrong "every response" verdict further.
//!
//! A batch sent straight to a pod needs a port-forward per request (fake-service closes every
//! connection), so while its batches hold it may go on past the assertion limit, for as long
//! as its size needs: [`pod_route_holding_limit`].

use std::future::Future;
use std::time::Duration;

use crate::Result;
use crate::cluster::HttpResponse;
use crate::probes::{MAX_FALSE_VERDICT, StatusTally, requests_to_observe};
use crate::retry::{Convergence, eventually_holding};

/// The probability that a request through service-a fails while service-c v2 is an endpoint.
pub(crate) const P_FAILURE_WITH_V2: f64 = 0.5;

/// Requests in a batch that must all answer 200: at least [`requests_to_observe`] for a
/// failure rate of one half, so a half-broken configuration passes with p < 1e-9.
pub fn all_succeed_batch() -> u32 {
    requests_to_observe(P_FAILURE_WITH_V2, MAX_FALSE_VERDICT)
}

/// Requests in a batch that must show both a 500 and a 200: each outcome has probability one
/// half, so missing either has probability at most 2 · 0.5^n (union bound) < 1e-9.
pub(crate) fn both_outcomes_batch() -> u32 {
    requests_to_observe(P_FAILURE_WITH_V2, MAX_FALSE_VERDICT / 2.0)
}

/// Requests in each batch the workshop's "I request …" sends: enough for either verdict a
/// scenario then reads from it, [`all_succeed_batch`] or [`both_outcomes_batch`], so the bound
/// of each holds for every batch judged.
pub fn request_batch() -> u32 {
    all_succeed_batch().max(both_outcomes_batch())
}

/// HTTP requests one browser page load makes on the workshop's pages: fake-service answers
/// `/ui` with `301 Location: /ui/` (Go's ServeMux; README, "Reading the reports"), and the
/// load follows it. An allowance for [`pod_route_holding_limit`], not a check: a load with
/// fewer hops only finishes sooner.
pub const BROWSER_REQUESTS_PER_LOAD: u32 = 2;

/// How long batches sent straight to a pod through a port-forward may go on while they hold.
///
/// fake-service answers every request with `Connection: close` (its `HTTP_SERVER_KEEP_ALIVES`
/// defaults to false: nicholasjackson/fake-service `main.go`), so each request of such a batch
/// opens a port-forward of its own (`cluster::forward`): an upgrade through the API server and
/// the kubelet, an estimated 20–50 ms on an idle kind cluster
/// (an SPDY or WebSocket upgrade through two hops, not measured here), much more on a loaded
/// runner. `consecutive` batches of 30 or 31 requests (twice that for browser
/// page loads) are 90–186 port-forwards, which a slow API server cannot open within the fixed
/// assertion limit although nothing is wrong. So a streak of batches that hold may go on past
/// the assertion limit up to `consecutive × batch size × requests per send × per_request`
/// (`per_request` is the timeout table's `pod_request`, `HAPPY_TIMEOUT_POD_REQUEST`), while a
/// batch that fails still ends the check at the assertion limit
/// ([`crate::retry::eventually_holding`]). The request counts, and so the bound on a wrong
/// verdict, are unchanged: only the waiting is.
pub fn pod_route_holding_limit(
    policy: &Convergence,
    expectation: Expectation,
    requests_per_send: u32,
    per_request: Duration,
) -> Duration {
    let requests = policy
        .consecutive
        .max(1)
        .saturating_mul(expectation.batch_size())
        .saturating_mul(requests_per_send.max(1));
    policy.limit.max(per_request.saturating_mul(requests))
}

/// What a batch must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// Every response has this status.
    Every(u16),
    /// At least one response of each of the two statuses, and no other status.
    Both(u16, u16),
}

/// In words, as failure messages and reports print it: "every response 200", "both 500 and 200,
/// nothing else".
impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expectation::Every(status) => write!(f, "every response {status}"),
            Expectation::Both(a, b) => write!(f, "both {a} and {b}, nothing else"),
        }
    }
}

impl Expectation {
    /// The number of requests this expectation needs for a verdict below 1e-9.
    pub fn batch_size(self) -> u32 {
        match self {
            Expectation::Every(_) => all_succeed_batch(),
            Expectation::Both(_, _) => both_outcomes_batch(),
        }
    }

    /// Whether a complete batch meets the expectation; the error says what was seen.
    pub fn judge(self, responses: &[HttpResponse]) -> std::result::Result<(), String> {
        let mut tally = StatusTally::default();
        for response in responses {
            tally.record(response.status);
        }
        match self {
            Expectation::Every(status) => {
                if tally.total() > 0 && tally.count(status) == tally.total() {
                    Ok(())
                } else {
                    Err(format!(
                        "expected every response to be {status}, got {} ({})",
                        tally.summary(),
                        first_other(responses, &[status])
                    ))
                }
            }
            Expectation::Both(a, b) => {
                let others = tally.total() - tally.count(a) - tally.count(b);
                if tally.count(a) > 0 && tally.count(b) > 0 && others == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "expected both {a} and {b} (and nothing else) in {} requests, got {} ({})",
                        tally.total(),
                        tally.summary(),
                        first_other(responses, &[a, b])
                    ))
                }
            }
        }
    }

    /// Whether one response already rules the batch out, so sending more is pointless.
    fn rules_out(self, response: &HttpResponse) -> bool {
        match self {
            Expectation::Every(status) => response.status != status,
            Expectation::Both(a, b) => response.status != a && response.status != b,
        }
    }
}

fn first_other(responses: &[HttpResponse], expected: &[u16]) -> String {
    match responses.iter().find(|r| !expected.contains(&r.status)) {
        Some(r) if !r.redirects.is_empty() => format!(
            "first unexpected: {} {} (reached by {})",
            r.status,
            excerpt(&r.body),
            crate::cluster::describe_chain(r)
        ),
        Some(r) => format!("first unexpected: {} {}", r.status, excerpt(&r.body)),
        None => "no unexpected status".to_string(),
    }
}

/// The first line of a body, shortened, for error messages.
pub fn excerpt(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("");
    let mut out: String = line.chars().take(120).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty body)");
    }
    out
}

/// Send batches of `expectation.batch_size()` requests until a batch meets the expectation
/// for `policy.consecutive` batches in a row, within `policy.limit`, or, while they hold,
/// within `holding_limit` ([`pod_route_holding_limit`]; `policy.limit` where a batch is not
/// slowed by its size). Returns the last batch,
/// which later checks (the JSON chain, the HTML page) inspect. A batch stops early at the first
/// response that rules it out.
///
/// Each attempt calls `open` once — resolving the route (the Service or Deployment, its Ready
/// pod, one port-forward to it) — and sends all of its requests with the sender it returns, one
/// after another. An attempt that cannot open its route fails like a failed request.
///
/// # Why the requests of a batch are sent one after another on one connection
///
/// The bounds above need each request to meet v2 with probability (at least) one half,
/// whatever the other requests met. The choice between service-c's endpoints is made by
/// service-a's sidecar for each HTTP request it forwards, not for each connection into
/// service-a:
///
/// - The suite's connection (a port-forward to service-a's pod, or to the ingress gateway's
///   pod) ends at service-a's application or at the gateway's Envoy. fake-service makes a new
///   upstream request to service-c for every request it serves, and Envoy chooses the upstream
///   host for each request, then takes a connection to that host from the host's own pool:
///   "When a filter needs to acquire a connection to a host in an upstream cluster, the
///   cluster manager uses a load balancing policy to determine which host is selected" and
///   "The HTTP/1.1 connection pool acquires connections as needed to an upstream host"
///   (Envoy docs, intro/arch_overview/upstream/load_balancing/load_balancers.rst, latest, and
///   …/upstream/connection_pooling.rst, v1.18–v1.38).
///   A downstream connection therefore fixes no upstream host: keeping the suite's connection
///   alive pins nothing, and a new port-forward per request bought no independence.
/// - Istio's default load balancer is LEAST_REQUEST since 1.14 (istio/istio 1.14.0
///   releasenotes/notes/new_lb_algorithm_default.yaml: "Updated Istio's default load balancing
///   algorithm from ROUND_ROBIN to LEAST_REQUEST"; 1.28.0–1.30.3
///   pilot/pkg/networking/core/cluster_traffic_policy.go `defaultLBAlgorithm` returns
///   `Cluster_LEAST_REQUEST`), and the workshop's DestinationRule sets no `loadBalancer`. With
///   equal weights Envoy's least-request balancer "randomly picks up N healthy hosts ... and
///   compares number of active requests" (P2C, N = 2; envoyproxy/envoy v1.35.0
///   source/extensions/load_balancing_policies/least_request/least_request_lb.h). With one
///   request at a time none of the suite's requests is active when the next is balanced, so
///   the draw is symmetric between v1 and v2: each request meets v2 with probability one half,
///   independently of the others, and the bounds hold as stated.
/// - Concurrent requests would break that: a request balanced while another is still active on
///   one endpoint goes to the other with probability 3/4 (two draws out of two endpoints), so
///   the outcomes would depend on each other and on timing; with requests in flight on v2, a
///   half-broken configuration would meet v2 on as few as a quarter of them, and "every
///   response is 200" could pass far more often than 0.5^30. Batches are therefore sent
///   serially; they are fast once no request pays for a lookup and a port-forward of its own.
/// - A route that balances per connection (kube-proxy behind a ClusterIP or LoadBalancer
///   address, Envoy's TCP proxy) would pin the choice on a kept connection: the
///   LoadBalancer-address route of D-ingress-address opens one connection per request for
///   that reason. fake-service itself answers with `Connection: close` (its keep-alives are
///   off by default), so a port-forward straight to service-a's pod carries one request, and
///   the next opens a new one (without looking the target up again).
pub async fn converge<O, OFut, S, SFut>(
    what: &str,
    policy: &Convergence,
    holding_limit: Duration,
    expectation: Expectation,
    open: &O,
) -> Result<Vec<HttpResponse>>
where
    O: Fn() -> OFut,
    OFut: Future<Output = Result<S>>,
    S: Fn() -> SFut,
    SFut: Future<Output = Result<HttpResponse>>,
{
    let size = expectation.batch_size() as usize;
    eventually_holding(what, policy, holding_limit, || async move {
        let send = open().await.map_err(|e| format!("request failed: {e}"))?;
        let mut responses = Vec::with_capacity(size);
        while responses.len() < size {
            let response = send().await.map_err(|e| format!("request failed: {e}"))?;
            let decisive = expectation.rules_out(&response);
            responses.push(response);
            if decisive {
                break;
            }
        }
        expectation.judge(&responses)?;
        Ok(responses)
    })
    .await
}

/// Calls in a batch that must hold one answering 200 through service-a while service-c v2 is
/// an endpoint (service-b's call to service-a or to service-c, the legacy client's to
/// service-a): each answers 200 with probability at least one half ([`P_FAILURE_WITH_V2`]),
/// independently (one call at a time: see [`converge`]), so a working path misses a 200 in a
/// whole batch with probability at most 0.5^n; n = 30 gives 9.3e-10 < [`MAX_FALSE_VERDICT`].
pub fn one_answer_batch() -> u32 {
    requests_to_observe(P_FAILURE_WITH_V2, MAX_FALSE_VERDICT)
}

/// How one call of a [`calls_until_answered`] batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// It answered the status the claim needs.
    Answered,
    /// It was let through but answered something else (service-a's 500 when its own call to
    /// service-c met v2).
    Other,
    /// It was not let through (a 403 denial, a reset, a refusal): the path is closed.
    Refused,
}

/// What a batch of calls showed, for deciding when batches agree
/// ([`crate::retry::settled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallsShow {
    /// A call answered the status, and every call before it was let through.
    Answered,
    /// A call was not let through.
    Refused,
    /// [`one_answer_batch`] calls were let through and none answered the status.
    NoAnswer,
}

/// In words, as a failure message lists what batches showed.
impl std::fmt::Display for CallsShow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallsShow::Answered => "a call answered",
            CallsShow::Refused => "a call was not let through",
            CallsShow::NoAnswer => "every call let through, none answered",
        })
    }
}

/// One batch of calls for a claim "X's call to Y answers 200": calls one at a time until one
/// answers (`judge` says [`Call::Answered`]), one is refused, or `size` were let through without
/// an answer; returns what the batch showed and its calls. A caller repeats batches until
/// `consecutive` in a row, each begun once the last change has reached the sidecars, agree
/// ([`crate::retry::settled`]) and passes only if they agree on [`CallsShow::Answered`]: a
/// single 200 seen before a denying policy arrives is followed by refused batches, and the
/// streak that decides is theirs. A working path fails a batch with probability at most
/// 0.5^[`one_answer_batch`] < 1e-9, and must fail `consecutive` of them in a row to fail the
/// claim; a closed path never answers, so it cannot pass. A call that cannot be made at all
/// (`Err`) ends the batch with that error.
pub async fn calls_until_answered<T, E, F, Fut>(
    size: u32,
    call: F,
    judge: impl Fn(&T) -> Call,
) -> std::result::Result<(CallsShow, Vec<T>), E>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let mut calls = Vec::new();
    for _ in 0..size.max(1) {
        let made = call().await?;
        let verdict = judge(&made);
        calls.push(made);
        match verdict {
            Call::Answered => return Ok((CallsShow::Answered, calls)),
            Call::Refused => return Ok((CallsShow::Refused, calls)),
            Call::Other => {}
        }
    }
    Ok((CallsShow::NoAnswer, calls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn response(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            headers: http::HeaderMap::new(),
            body: String::new(),
            redirects: Vec::new(),
        }
    }

    #[test]
    fn batch_sizes_meet_the_bound() {
        let every = all_succeed_batch();
        assert_eq!(every, 30);
        assert!(0.5f64.powi(every as i32) < 1e-9);
        assert!(0.5f64.powi(every as i32 - 1) >= 1e-9);
        let both = both_outcomes_batch();
        assert_eq!(both, 31);
        assert!(2.0 * 0.5f64.powi(both as i32) < 1e-9);
        assert!(2.0 * 0.5f64.powi(both as i32 - 1) >= 1e-9);
    }

    #[test]
    fn every_rejects_a_single_other_status() {
        let mut batch: Vec<_> = (0..29).map(|_| response(200)).collect();
        assert!(Expectation::Every(200).judge(&batch).is_ok());
        batch.push(response(500));
        let err = Expectation::Every(200).judge(&batch).unwrap_err();
        assert!(err.contains("500"), "{err}");
        assert!(Expectation::Every(200).judge(&[]).is_err());
    }

    #[test]
    fn both_needs_each_status_and_nothing_else() {
        let only_ok: Vec<_> = (0..31).map(|_| response(200)).collect();
        assert!(Expectation::Both(500, 200).judge(&only_ok).is_err());
        let mut mixed = only_ok.clone();
        mixed.push(response(500));
        assert!(Expectation::Both(500, 200).judge(&mixed).is_ok());
        // Messages say it in words, not as Rust's debug text (`Both(500, 200)`).
        assert_eq!(
            Expectation::Both(500, 200).to_string(),
            "both 500 and 200, nothing else"
        );
        assert_eq!(Expectation::Every(200).to_string(), "every response 200");
        mixed.push(response(503));
        assert!(Expectation::Both(500, 200).judge(&mixed).is_err());
    }

    /// A route whose every attempt opens to `send`.
    fn opened<'a, F: Fn() -> Fut, Fut: Future<Output = Result<HttpResponse>>>(
        send: &'a F,
    ) -> impl Fn() -> std::future::Ready<Result<&'a F>> {
        move || std::future::ready(Ok(send))
    }

    fn policy(consecutive: u32) -> Convergence {
        Convergence {
            limit: Duration::from_secs(5),
            interval: Duration::from_millis(100),
            consecutive,
        }
    }

    fn assertion_policy() -> Convergence {
        Convergence {
            limit: Duration::from_secs(30),
            interval: Duration::from_millis(100),
            consecutive: 3,
        }
    }

    #[test]
    fn a_pod_route_holding_limit_grows_with_the_batch() {
        let assertion = assertion_policy();
        let half = Duration::from_millis(500);
        let limit = |policy: &Convergence, expectation, per_send| {
            pod_route_holding_limit(policy, expectation, per_send, half)
        };
        // 3 × 30 × 0.5 s and 3 × 31 × 0.5 s; page loads of two requests each, twice that.
        assert_eq!(
            limit(&assertion, Expectation::Every(200), 1),
            Duration::from_secs(45)
        );
        assert_eq!(
            limit(&assertion, Expectation::Both(500, 200), 1),
            Duration::from_millis(46_500)
        );
        assert_eq!(
            limit(
                &assertion,
                Expectation::Every(200),
                BROWSER_REQUESTS_PER_LOAD
            ),
            Duration::from_secs(90)
        );
        // A precondition needs one batch: the assertion limit is already enough.
        let once = Convergence {
            consecutive: 1,
            ..assertion
        };
        assert_eq!(
            limit(&once, Expectation::Every(200), 1),
            Duration::from_secs(30)
        );
        // A longer assertion limit is kept.
        let long = Convergence {
            limit: Duration::from_secs(120),
            ..assertion
        };
        assert_eq!(
            limit(&long, Expectation::Every(200), 1),
            Duration::from_secs(120)
        );
    }

    /// A request that takes `delay` (its port-forward) and answers `status`.
    fn slow(
        delay_ms: u64,
        status: u16,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse>>>> {
        move || {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok(response(status))
            })
        }
    }

    /// 400 ms per port-forwarded request: three batches of 30 take 36 s, past the 30 s
    /// assertion limit, and hold within the pod-route holding limit (45 s at 500 ms a request).
    #[tokio::test(start_paused = true)]
    async fn a_slow_pod_route_converges_while_its_batches_hold() {
        let send = slow(400, 200);
        let assertion = assertion_policy();
        let fixed = converge(
            "all 200",
            &assertion,
            assertion.limit,
            Expectation::Every(200),
            &opened(&send),
        )
        .await;
        assert!(fixed.is_err(), "90 requests at 400 ms do not fit in 30 s");
        let holding = pod_route_holding_limit(
            &assertion,
            Expectation::Every(200),
            1,
            Duration::from_millis(500),
        );
        let started = tokio::time::Instant::now();
        let batch = converge(
            "all 200",
            &assertion,
            holding,
            Expectation::Every(200),
            &opened(&send),
        )
        .await
        .unwrap();
        assert_eq!(batch.len(), 30);
        assert!(started.elapsed() >= Duration::from_secs(36));
    }

    /// A pod route that answers wrongly still fails at the assertion limit (and the attempt
    /// under way then), not at the longer holding limit: a broken claim fails as fast as before.
    #[tokio::test(start_paused = true)]
    async fn a_failing_pod_route_fails_at_the_assertion_limit() {
        let send = slow(400, 404);
        let assertion = assertion_policy();
        let holding = pod_route_holding_limit(
            &assertion,
            Expectation::Every(200),
            BROWSER_REQUESTS_PER_LOAD,
            Duration::from_millis(500),
        );
        assert_eq!(holding, Duration::from_secs(90));
        let started = tokio::time::Instant::now();
        let err = converge(
            "all 200",
            &assertion,
            holding,
            Expectation::Every(200),
            &opened(&send),
        )
        .await
        .unwrap_err();
        // The attempt under way at 30 s may finish (one 400 ms request: a 404 rules it out).
        assert!(
            started.elapsed() <= Duration::from_millis(30_400),
            "{:?}: {err}",
            started.elapsed()
        );
        assert!(err.to_string().contains("within 30s"), "{err}");
        assert!(err.to_string().contains("404"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn converge_returns_a_full_batch_once_it_holds() {
        let send = || async { Ok(response(200)) };
        let batch = converge(
            "all 200",
            &policy(3),
            policy(3).limit,
            Expectation::Every(200),
            &opened(&send),
        )
        .await
        .unwrap();
        assert_eq!(batch.len(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_opens_its_route_once_and_a_failed_open_fails_it() {
        let opens = Cell::new(0u32);
        let sends = Cell::new(0u32);
        let send = || {
            sends.set(sends.get() + 1);
            async { Ok(response(200)) }
        };
        let open = || {
            opens.set(opens.get() + 1);
            std::future::ready(if opens.get() == 1 {
                Err(crate::Error::Other("no Ready pod".into()))
            } else {
                Ok(&send)
            })
        };
        let batch = converge(
            "all 200",
            &policy(3),
            policy(3).limit,
            Expectation::Every(200),
            &open,
        )
        .await
        .unwrap();
        assert_eq!(batch.len(), 30);
        assert_eq!(opens.get(), 4, "one failed attempt, then three that held");
        assert_eq!(sends.get(), 90, "every request of every batch was sent");
    }

    #[tokio::test(start_paused = true)]
    async fn converge_fails_when_half_the_requests_fail() {
        let n = Cell::new(0u32);
        let send = || {
            n.set(n.get() + 1);
            let status = if n.get().is_multiple_of(2) { 500 } else { 200 };
            async move { Ok(response(status)) }
        };
        let result = converge(
            "all 200",
            &policy(3),
            policy(3).limit,
            Expectation::Every(200),
            &opened(&send),
        )
        .await;
        assert!(result.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn converge_sees_both_outcomes_when_they_alternate() {
        let n = Cell::new(0u32);
        let send = || {
            n.set(n.get() + 1);
            let status = if n.get().is_multiple_of(2) { 500 } else { 200 };
            async move { Ok(response(status)) }
        };
        let batch = converge(
            "500 and 200",
            &policy(3),
            policy(3).limit,
            Expectation::Both(500, 200),
            &opened(&send),
        )
        .await
        .unwrap();
        assert_eq!(batch.len(), 31);
    }

    #[tokio::test(start_paused = true)]
    async fn converge_fails_when_one_outcome_never_shows() {
        let send = || async { Ok(response(200)) };
        let result = converge(
            "500 and 200",
            &policy(1),
            policy(1).limit,
            Expectation::Both(500, 200),
            &opened(&send),
        )
        .await;
        assert!(result.is_err());
    }

    #[test]
    fn one_answer_batch_meets_the_bound() {
        let n = one_answer_batch();
        assert_eq!(n, 30);
        assert!(P_FAILURE_WITH_V2.powi(n as i32) < MAX_FALSE_VERDICT);
    }

    fn judge_status(status: &u16) -> Call {
        match status {
            200 => Call::Answered,
            403 => Call::Refused,
            _ => Call::Other,
        }
    }

    #[tokio::test]
    async fn a_call_batch_stops_at_the_first_answer_or_refusal() {
        let script = |statuses: Vec<u16>| {
            let i = Cell::new(0usize);
            move || {
                let s = statuses[i.get() % statuses.len()];
                i.set(i.get() + 1);
                std::future::ready(Ok::<u16, String>(s))
            }
        };
        let (shows, calls) = calls_until_answered(30, script(vec![500, 500, 200]), judge_status)
            .await
            .unwrap();
        assert_eq!((shows, calls.len()), (CallsShow::Answered, 3));
        let (shows, calls) = calls_until_answered(30, script(vec![500, 403, 200]), judge_status)
            .await
            .unwrap();
        assert_eq!((shows, calls.len()), (CallsShow::Refused, 2));
        let (shows, calls) = calls_until_answered(30, script(vec![500]), judge_status)
            .await
            .unwrap();
        assert_eq!((shows, calls.len()), (CallsShow::NoAnswer, 30));
        let failed: std::result::Result<(CallsShow, Vec<u16>), String> = calls_until_answered(
            30,
            || std::future::ready(Err("exec failed".into())),
            judge_status,
        )
        .await;
        assert_eq!(failed.unwrap_err(), "exec failed");
    }

    /// Item 3 of issue 19, C20's example: a policy that denies the call reaches the sidecar
    /// just after the first 200. The old check (settled "let through", then one 200) could
    /// pass on that 200; batches that must agree `consecutive` times do not: the streak that
    /// decides is the refused one.
    #[tokio::test(start_paused = true)]
    async fn a_denial_arriving_after_a_200_fails_the_converged_check() {
        let started = tokio::time::Instant::now();
        let denied_from = started + Duration::from_millis(250);
        let call = || {
            let now = tokio::time::Instant::now();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<u16, crate::Error>(if now >= denied_from { 403 } else { 200 })
            }
        };
        let streak = crate::retry::settled(
            "service-b's calls to service-a",
            &policy(3),
            started,
            || calls_until_answered(one_answer_batch(), call, judge_status),
            |(shows, _)| *shows,
        )
        .await
        .unwrap();
        assert_eq!(streak.len(), 3);
        assert!(streak.iter().all(|(shows, _)| *shows == CallsShow::Refused));
        // A path that stays open passes with three answered batches.
        let open = || std::future::ready(Ok::<u16, crate::Error>(200));
        let streak = crate::retry::settled(
            "service-b's calls to service-a",
            &policy(3),
            tokio::time::Instant::now(),
            || calls_until_answered(one_answer_batch(), open, judge_status),
            |(shows, _)| *shows,
        )
        .await
        .unwrap();
        assert!(
            streak
                .iter()
                .all(|(shows, _)| *shows == CallsShow::Answered)
        );
    }
}
