//! Steps about traffic management: what the DestinationRule and VirtualServices of service-c
//! do to the requests.

use cucumber::then;
use happy_istio::checks::batch::{all_succeed_batch, excerpt};
use happy_istio::checks::metrics::received_by;
use happy_istio::retry::{Convergence, eventually};

use super::world::{HappyWorld, Step, fail};

/// The deployment that receives the mirrored copies.
const MIRROR_TARGET: &str = "service-c-v2";

#[then("service-c v2 receives a mirrored copy of every request")]
async fn mirrored(world: &mut HappyWorld) -> Step {
    let env = world.env();
    let target = world.target()?;
    let before = received_by(&env.sidecar_metrics(MIRROR_TARGET).await?, MIRROR_TARGET);
    // The same batch size as "every response is 200": a configuration that still routes half
    // of the requests to v2 shows a 500 here with probability > 1 - 1e-9.
    let sent = all_succeed_batch();
    // One route for the batch, as in "every response is 200" (see `checks::batch::converge`
    // for why its kept connection pins no endpoint choice).
    let opened = target.open(&env).await?;
    for i in 1..=sent {
        let response = target.send_on(&env, &opened).await?;
        if response.status != 200 {
            fail!(
                "request {i} of {sent} answered {} while mirroring: {}",
                response.status,
                excerpt(&response.body)
            );
        }
    }
    let policy = Convergence {
        limit: env.timeouts.metrics,
        ..env.once()
    };
    let env_ref = &env;
    let received = eventually(
        &format!("{MIRROR_TARGET}'s sidecar to count {sent} mirrored requests"),
        &policy,
        || async move {
            let samples = env_ref
                .sidecar_metrics(MIRROR_TARGET)
                .await
                .map_err(|e| e.message)?;
            let grown = received_by(&samples, MIRROR_TARGET) - before;
            if grown >= f64::from(sent) {
                Ok(grown)
            } else {
                Err(format!(
                    "its inbound count grew by {grown}, not yet by {sent}"
                ))
            }
        },
    )
    .await?;
    tracing::debug!(received, sent, "mirrored requests counted");
    Ok(())
}
