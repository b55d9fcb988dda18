//! Steps about Kubernetes itself: the namespace, applying and deleting the workshop's files,
//! and the pods they create.

use cucumber::{given, then, when};
use happy_istio::cluster::ready_containers;

use super::parameters::{Files, Name};
use super::world::{Env, HappyWorld, NAMESPACE, Step, fail, pod_name};

/// Apply files the way a reader does — `kubectl apply -f`, then wait until what they create is
/// Ready: every Deployment rolled out and every bare Pod Ready.
pub async fn apply_and_wait(env: &Env, files: &[String]) -> Step {
    for file in files {
        let manifests = env.load(file)?;
        env.cluster.apply(&manifests, NAMESPACE).await?;
        for manifest in &manifests {
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

#[given(expr = "the legacy client runs in the namespace {name}")]
async fn legacy_runs(world: &mut HappyWorld, namespace: Name) -> Step {
    let env = world.env();
    let manifests = env.load("legacy.yaml")?;
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
    apply_and_wait(&env, &["legacy.yaml".to_string()]).await
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

#[then(regex = r"^every pod in ([a-z0-9-]+) is Ready with (\d+)/(\d+) containers$")]
async fn every_pod_ready_with(
    world: &mut HappyWorld,
    namespace: String,
    ready: usize,
    total: usize,
) -> Step {
    let env = world.env();
    let pods = env
        .cluster
        .wait_pods_ready(&namespace, "", env.timeouts.pod_ready)
        .await?;
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
