//! Steps about Kubernetes itself: the namespace, applying and deleting the workshop's files,
//! and the pods they create.

use cucumber::{given, then, when};
use happy_istio::cluster::ready_containers;
use happy_istio::deviations;
use happy_istio::manifests::Manifest;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::parameters::{Files, Name};
use super::verbatim::{run_deviations, set_legacy_client};
use super::world::{Env, Failure, HappyWorld, NAMESPACE, Step, fail, pod_name};

/// Apply files the way a reader does — `kubectl apply -f`, then wait until what they create is
/// Ready: every Deployment rolled out and every bare Pod Ready.
pub(crate) async fn apply_and_wait(env: &Env, files: &[String]) -> Step {
    for file in files {
        let manifests = env.load(file)?;
        apply_manifests_and_wait(env, &manifests).await?;
    }
    Ok(())
}

/// [`apply_and_wait`] for objects already loaded (and possibly changed by a deviation).
pub(crate) async fn apply_manifests_and_wait(env: &Env, manifests: &[Manifest]) -> Step {
    env.cluster.apply(manifests, NAMESPACE).await?;
    for manifest in manifests {
        let object = &manifest.object;
        let namespace = object.metadata.namespace.as_deref().unwrap_or(NAMESPACE);
        let name = object.metadata.name.as_deref().unwrap_or_default();
        match object.types.as_ref().map(|t| t.kind.as_str()) {
            Some("Deployment") => env.cluster.wait_rollout(namespace, name).await?,
            Some("Pod") => {
                let labels = object.metadata.labels.clone().unwrap_or_default();
                if labels.is_empty() {
                    fail!("{} has no labels to wait for it by", manifest.describe());
                }
                let selector = labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                env.cluster
                    .wait_pods_ready(namespace, &selector, env.timeouts.pod_ready)
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[given(expr = "the namespace {name}")]
async fn namespace_exists(world: &mut HappyWorld, namespace: Name) -> Step {
    world.env().cluster.ensure_namespace(&namespace.0).await?;
    Ok(())
}

#[when(expr = "I apply {files}")]
async fn apply(world: &mut HappyWorld, files: Files) -> Step {
    apply_and_wait(&world.env(), &files.0).await
}

#[given(expr = "{files} is applied")]
#[given(expr = "{files} are applied")]
async fn applied(world: &mut HappyWorld, files: Files) -> Step {
    apply_and_wait(&world.env(), &files.0).await
}

#[given("service-c v2 is not deployed")]
async fn v2_not_deployed(world: &mut HappyWorld) -> Step {
    let env = world.env();
    let manifests = env.load("services-c-v2.yaml")?;
    env.cluster.delete(&manifests, NAMESPACE).await?;
    Ok(())
}

/// A pod's image and command cannot be applied over a running pod with other ones (pod specs
/// are immutable there): delete a leftover legacy pod that differs from what is wanted.
async fn delete_stale_pods(env: &Env, manifests: &[Manifest]) -> Step {
    for manifest in manifests.iter().filter(|m| m.kind() == "Pod") {
        let namespace = manifest.namespace().unwrap_or(NAMESPACE);
        let api: Api<Pod> = Api::namespaced(env.cluster.client().clone(), namespace);
        let existing = api.get_opt(manifest.name()).await.map_err(|e| {
            Failure::from(happy_istio::Error::kube(
                format!("get pod {namespace}/{}", manifest.name()),
                e,
            ))
        })?;
        let Some(existing) = existing else { continue };
        let wanted: Pod = serde_json::from_value(
            serde_json::to_value(&manifest.object)
                .map_err(|e| Failure::claim(format!("{}: {e}", manifest.describe())))?,
        )
        .map_err(|e| Failure::claim(format!("{} is not a valid Pod: {e}", manifest.describe())))?;
        // (name, image as Docker normalises it, command) of each container.
        let spec_of = |p: &Pod| -> Vec<(String, Option<String>, Option<Vec<String>>)> {
            p.spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .map(|c| {
                    let image = c.image.as_deref().map(deviations::normalize_image);
                    (c.name.clone(), image, c.command.clone())
                })
                .collect()
        };
        let same = spec_of(&existing) == spec_of(&wanted);
        if !same {
            env.cluster
                .delete(std::slice::from_ref(manifest), NAMESPACE)
                .await?;
        }
    }
    Ok(())
}

#[given(expr = "the legacy client runs in the namespace {name}")]
async fn legacy_runs(world: &mut HappyWorld, namespace: Name) -> Step {
    let env = world.env();
    let mut manifests = env.load("legacy.yaml")?;
    if let Some(m) = manifests
        .iter()
        .find(|m| m.object.metadata.namespace.as_deref() != Some(namespace.0.as_str()))
    {
        fail!(
            "{} is not in the namespace {}: the workshop's legacy client must be",
            m.describe(),
            namespace.0
        );
    }
    // The one place the workshop's legacy client is departed from (crates/claims/src/deviations.rs).
    let deviations = run_deviations()?;
    set_legacy_client(&mut manifests, deviations.legacy_client())?;
    delete_stale_pods(&env, &manifests).await?;
    let ran = apply_manifests_and_wait(&env, &manifests).await;
    match (ran, deviations.state("D-legacy-image")) {
        // Keeps the failure's class (a pull error is the environment failing).
        (Err(Failure { class, message }), Some(deviations::State::Off)) => Err(Failure {
            class,
            message: format!(
                "{message} — the deviation D-legacy-image is switched off (HAPPY_LEGACY_IMAGE / \
                 HAPPY_VERBATIM), so the legacy client runs the workshop's {}, which containerd \
                 ≥ 2.1 refuses to pull (Docker schema 1)",
                deviations::WORKSHOP_LEGACY_IMAGE
            ),
        }),
        (ran, _) => ran,
    }
}

#[then(expr = "every pod in {name} is Ready")]
async fn every_pod_ready(world: &mut HappyWorld, namespace: Name) -> Step {
    let env = world.env();
    let pods = env
        .cluster
        .wait_pods_ready(&namespace.0, "", env.timeouts.pod_ready)
        .await?;
    if pods.is_empty() {
        fail!("there are no pods in {}", namespace.0);
    }
    Ok(())
}

#[then(expr = "every pod in {name} is Ready with {int}\\/{int} containers")]
async fn every_pod_ready_with(
    world: &mut HappyWorld,
    namespace: Name,
    ready: usize,
    total: usize,
) -> Step {
    let namespace = namespace.0;
    let env = world.env();
    let pods = env
        .cluster
        .wait_pods_ready(&namespace, "", env.timeouts.pod_ready)
        .await?;
    happy_istio::evidence::record(
        &format!("kubectl get pods -n {namespace}"),
        &happy_istio::cluster::pod_table(&pods, &namespace, jiff::Timestamp::now()),
    );
    if pods.is_empty() {
        fail!("there are no pods in {namespace}");
    }
    for pod in &pods {
        let (r, t) = ready_containers(pod);
        if (r, t) != (ready, total) {
            fail!(
                "pod {} shows {r}/{t} containers ready, not {ready}/{total}",
                pod_name(pod)
            );
        }
    }
    Ok(())
}
