//! Steps that re-check the suite's deviations from the workshop (`crates/claims/src/deviations.rs`): each
//! tries the workshop's original, in a scratch namespace it removes afterwards, and passes
//! only when the original fails for the reason the deviation states. When the original
//! works, the step fails saying the deviation is no longer needed.

use std::path::Path;
use std::time::Instant;

use cucumber::then;
use happy_istio::deviations::{self, PullVerdict, schema1_pull_verdict};
use happy_istio::manifests::{Manifest, parse_documents};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::ListParams;

use super::verbatim::{get_through_load_balancer, set_legacy_client, workshop_ingress_addresses};
use super::world::{Env, Failure, HappyWorld, NAMESPACE, Step, fail};

/// Where re-checks run the workshop's originals: never a namespace the workshop uses.
pub(crate) const SCRATCH_NAMESPACE: &str = "happy-deviation-check";

fn scratch_namespace() -> Result<Vec<Manifest>, Failure> {
    let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {SCRATCH_NAMESPACE}\n");
    Ok(parse_documents(
        Path::new("(the deviation check's scratch namespace)"),
        &yaml,
    )?)
}

#[then(
    "the workshop's legacy client, run as written in a scratch namespace, fails to pull its image because it is Docker schema 1"
)]
async fn legacy_image_still_refused(world: &mut HappyWorld) -> Step {
    let env = world.env();
    // The workshop's pod: legacy.yaml (its `kubectl run` as a file) with the workshop's image,
    // whatever HAPPY_LEGACY_IMAGE says — this checks the deviation's premise, not the run.
    let mut pod = env.load("legacy.yaml")?;
    set_legacy_client(
        &mut pod,
        &deviations::LegacyClient {
            image: deviations::WORKSHOP_LEGACY_IMAGE.to_string(),
            command: None,
        },
    )?;
    for m in &mut pod {
        m.object.metadata.namespace = Some(SCRATCH_NAMESPACE.to_string());
    }
    let namespace = scratch_namespace()?;
    // A leftover of an interrupted earlier check goes first (waits until it is gone).
    env.cluster.delete(&namespace, NAMESPACE).await?;
    env.cluster.ensure_namespace(SCRATCH_NAMESPACE).await?;
    let verdict = async {
        env.cluster.apply(&pod, SCRATCH_NAMESPACE).await?;
        observe_pull(&env, pod.first().map_or("legacy", |m| m.name())).await
    }
    .await;
    let cleanup = env.cluster.delete(&namespace, NAMESPACE).await;
    let verdict = verdict?;
    cleanup?;
    happy_istio::evidence::record(
        &format!(
            "kubectl run legacy --image={} -n {SCRATCH_NAMESPACE}: what the kubelet said",
            deviations::WORKSHOP_LEGACY_IMAGE
        ),
        &match &verdict {
            PullVerdict::Refused(what) => format!("refused: {what}"),
            PullVerdict::Pulled(what) => format!("pulled: {what}"),
            PullVerdict::Gone(what) => format!("gone from its registry: {what}"),
            PullVerdict::Pending(seen) => format!("neither, within the limit: {seen}"),
        },
    );
    match verdict {
        PullVerdict::Refused(_) => Ok(()),
        PullVerdict::Pulled(what) => fail!(
            "the deviation D-legacy-image is no longer needed on this cluster: the workshop's \
             `kubectl run legacy --image={}` works here ({what}). Remove the deviation from \
             crates/claims/src/deviations.rs, or run the workshop's pod with HAPPY_LEGACY_IMAGE={}",
            deviations::WORKSHOP_LEGACY_IMAGE,
            deviations::WORKSHOP_LEGACY_IMAGE
        ),
        PullVerdict::Gone(what) => fail!(
            "the deviation D-legacy-image is still needed, for a different reason: the \
             workshop's image {} can no longer be pulled at all, it is gone from its registry \
             ({what}); the workshop's `kubectl run legacy` fails on every cluster now, not only \
             on containerd ≥ 2.1. Update the deviation's reason in crates/claims/src/deviations.rs",
            deviations::WORKSHOP_LEGACY_IMAGE
        ),
        PullVerdict::Pending(seen) => fail!(
            "within {:?} (HAPPY_TIMEOUT_POD_READY) the workshop's legacy pod in {SCRATCH_NAMESPACE} \
             neither ran nor failed to pull for the stated reason (Docker schema 1 no longer \
             supported); last seen: {seen}",
            env.timeouts.pod_ready
        ),
    }
}

/// Poll the pod and its events until the verdict is decided or `pod_ready` has passed; the
/// last pending observation is the verdict then.
async fn observe_pull(env: &Env, name: &str) -> Result<PullVerdict, Failure> {
    let client = env.cluster.client().clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), SCRATCH_NAMESPACE);
    let events: Api<Event> = Api::namespaced(client, SCRATCH_NAMESPACE);
    let deadline = Instant::now() + env.timeouts.pod_ready;
    let by_pod = ListParams::default().fields(&format!("involvedObject.name={name}"));
    loop {
        let observed = async {
            let pod = pods
                .get(name)
                .await
                .map_err(|e| format!("get pod {SCRATCH_NAMESPACE}/{name}: {e}"))?;
            let events = events
                .list(&by_pod)
                .await
                .map_err(|e| format!("list the events of pod {SCRATCH_NAMESPACE}/{name}: {e}"))?;
            Ok::<_, String>(schema1_pull_verdict(&pod, &events.items))
        };
        let verdict = match tokio::time::timeout(env.timeouts.request, observed).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => PullVerdict::Pending(e),
            Err(_) => PullVerdict::Pending(format!(
                "reading pod {SCRATCH_NAMESPACE}/{name} took longer than {:?}",
                env.timeouts.request
            )),
        };
        match verdict {
            PullVerdict::Pending(_) if Instant::now() + env.timeouts.poll_interval < deadline => {
                tokio::time::sleep(env.timeouts.poll_interval).await;
            }
            decided => return Ok(decided),
        }
    }
}

#[then(
    "the workshop's ingress address, the gateway Service's LoadBalancer IP, does not reach the gateway from here"
)]
async fn ingress_address_still_unusable(world: &mut HappyWorld) -> Step {
    let env = world.env();
    let addresses = workshop_ingress_addresses(&env).await?;
    happy_istio::evidence::record(
        "kubectl get svc -n istio-system istio-ingressgateway -ojsonpath='{.status.loadBalancer.ingress[*].ip}'",
        &if addresses.is_empty() {
            "(empty: EXTERNAL-IP <pending>, no LoadBalancer implementation assigns one)".to_string()
        } else {
            addresses.join(" ")
        },
    );
    if addresses.is_empty() {
        // kind without Cloud Provider KIND: EXTERNAL-IP <pending>, the premise holds.
        return Ok(());
    }
    match get_through_load_balancer(&env, "/").await {
        Ok(response) => fail!(
            "the deviation D-ingress-address is no longer needed on this cluster: the workshop's \
             ISTIO_INGRESS_GW_IP ({}) answers HTTP {} from here. Run with \
             HAPPY_VERBATIM=D-ingress-address, or remove the deviation from crates/claims/src/deviations.rs",
            addresses.join(" "),
            response.status
        ),
        // An address the suite's machine cannot reach: the premise holds here too.
        Err(_) => Ok(()),
    }
}
