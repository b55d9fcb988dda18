//! Steps about traffic management: what the DestinationRule and VirtualServices of service-c
//! do to the requests.

use cucumber::then;
use happy_istio::checks::batch::{all_succeed_batch, excerpt};
use happy_istio::retry::{Convergence, settled};

use super::readings::SidecarCounts;
use super::world::{Failure, HappyWorld, Step, fail};

/// The deployment that receives the mirrored copies.
const MIRROR_TARGET: &str = "service-c-v2";

/// The mirrored copies of the kept batches: every kept response was 200, so none of those
/// requests went to v2 itself (v2 fails every request), and what v2's sidecar recorded as
/// received since the batches began is mirrored traffic: it must have grown by one for each
/// kept request.
#[then("service-c v2 receives a mirrored copy of every request")]
async fn mirrored(world: &mut HappyWorld) -> Step {
    let env = world.env();
    let before = world.sidecar_counts_before.as_ref().ok_or_else(|| {
        Failure::claim(
            "no sidecar counters were read before the requests: a step \"I request …\" must come first",
        )
    })?;
    let before = before.received_by(MIRROR_TARGET);
    let sent = world.responses.len();
    if let Some(r) = world.responses.iter().find(|r| r.status != 200) {
        fail!(
            "a request answered {} while mirroring, so it may have reached v2 itself: {}",
            r.status,
            excerpt(&r.body)
        );
    }
    if sent < all_succeed_batch() as usize {
        fail!("only {sent} requests were kept: too few to judge every request");
    }
    // The sidecar's stats endpoint shows the live counters, with no scrape in between (Envoy's
    // admin `/stats/prometheus` reads the server's stats store on each request:
    // envoyproxy/envoy source/server/admin/stats_handler.cc; pilot-agent's :15020 passes
    // Envoy's through), and Istio's stats filter counts a request as it completes (its
    // recording point in istio/proxy was not re-read here). So a mirrored copy of a request that
    // ended a while ago has been counted: counts read from HAPPY_TIMEOUT_PROPAGATION after the
    // last request on, `consecutive` of them agreeing, are the verdict either way — a
    // configuration that mirrors nothing fails in seconds instead of at the metrics limit.
    let policy = Convergence {
        limit: env.timeouts.metrics,
        ..env.convergence()
    };
    let env_ref = &env;
    let streak = settled(
        &format!("{MIRROR_TARGET}'s sidecar count of received requests to settle"),
        &policy,
        tokio::time::Instant::now() + env.timeouts.propagation,
        || async move {
            let now = SidecarCounts::read(env_ref).await?;
            Ok::<_, Failure>(now.received_by(MIRROR_TARGET) - before)
        },
        |grown| *grown as u64,
    )
    .await?;
    let received = streak.last().copied().unwrap_or_default();
    happy_istio::evidence::record(
        &format!(
            "{MIRROR_TARGET}'s istio-proxy: requests received (istio_requests_total, reporter=destination)"
        ),
        &format!(
            "{received} received since the {sent} requests to service-a began, every one of which answered 200"
        ),
    );
    if received < sent as f64 {
        fail!(
            "{MIRROR_TARGET}'s sidecar counted {received} requests received since the {sent} \
             requests began, not a mirrored copy of each (unchanged in {} reads from {:?} \
             after the last request)",
            streak.len(),
            env.timeouts.propagation
        );
    }
    tracing::debug!(received, sent, "mirrored requests counted");
    Ok(())
}
