//! Image pulls on the real runtime, as on the pinned kind node's containerd 2.3: the
//! workshop's legacy client image radial/busyboxplus:curl is Docker schema 1 and is refused
//! with containerd's message, ErrImagePull then ImagePullBackOff with the kubelet's events;
//! Istio's sample client image runs as the curl client; the test-only knob lets the schema-1
//! image pull; and `HAPPY_SANDBOX_FAULTS`' rules fail pulls with containerd's texts, then let
//! them through.

use crate::common;
use crate::pod_addresses;

use std::time::Duration;

use common::{client, eventually, install_crypto, is_ready};
use happy_sandbox::runtime::faults::PullFaults;
use happy_sandbox::{Sandbox, SandboxOptions};
use k8s_openapi::api::core::v1::{ContainerStateWaiting, Event, Pod};
use kube::api::{Api, AttachParams, ListParams, PostParams};
use serde_json::json;
use tokio::io::AsyncReadExt;

const LIMIT: Duration = Duration::from_secs(60);

/// The workshop's `kubectl -n default run legacy --image=IMAGE -- tail -f /dev/null`.
fn legacy_pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"run": name}},
        "spec": {"containers": [{"name": name, "image": image,
                                 "command": ["tail", "-f", "/dev/null"]}]}
    }))
    .expect("valid pod")
}

async fn waiting(pods: &Api<Pod>, name: &str, reason: &str) -> ContainerStateWaiting {
    eventually(&format!("{name} waiting with {reason}"), LIMIT, || async {
        let p = pods.get(name).await.ok()?;
        p.status?.container_statuses?[0]
            .state
            .clone()?
            .waiting
            .filter(|w| w.reason.as_deref() == Some(reason))
    })
    .await
}

async fn start() -> (Sandbox, kube::Client) {
    install_crypto();
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let client = client(&sandbox).await;
    (sandbox, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema1_image_is_refused_as_containerd_2_2_refuses_it() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &legacy_pod("legacy", "radial/busyboxplus:curl"),
    )
    .await
    .unwrap();

    let pull = waiting(&pods, "legacy", "ErrImagePull").await;
    let message = pull.message.unwrap_or_default();
    assert_eq!(
        message,
        "rpc error: code = Unimplemented desc = failed to pull and unpack image \
         \"docker.io/radial/busyboxplus:curl\": not implemented: media type \
         \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported \
         since containerd v2.1, please rebuild the image as \
         \"application/vnd.docker.distribution.manifest.v2+json\" or \
         \"application/vnd.oci.image.manifest.v1+json\""
    );
    let backoff = waiting(&pods, "legacy", "ImagePullBackOff").await;
    assert_eq!(
        backoff.message.unwrap_or_default(),
        format!("Back-off pulling image \"radial/busyboxplus:curl\": ErrImagePull: {message}")
    );
    let pod = pods.get("legacy").await.unwrap();
    assert!(!is_ready(&pod));
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));

    // The kubelet's events, as `kubectl describe pod legacy` shows them.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let seen = eventually("the pull and back-off events", LIMIT, || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=legacy"))
            .await
            .ok()?;
        let seen: Vec<(String, String, String)> = list
            .items
            .into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect();
        seen.iter()
            .any(|(_, r, m)| r == "Failed" && m == "Error: ImagePullBackOff")
            .then_some(seen)
    })
    .await;
    let has = |t: &str, r: &str, m: &str| seen.iter().any(|e| e == &(t.into(), r.into(), m.into()));
    assert!(
        has(
            "Normal",
            "Pulling",
            "Pulling image \"radial/busyboxplus:curl\""
        ),
        "{seen:#?}"
    );
    assert!(
        has(
            "Warning",
            "Failed",
            &format!("Failed to pull image \"radial/busyboxplus:curl\": {message}")
        ),
        "{seen:#?}"
    );
    assert!(has("Warning", "Failed", "Error: ErrImagePull"), "{seen:#?}");
    assert!(
        has(
            "Normal",
            "BackOff",
            "Back-off pulling image \"radial/busyboxplus:curl\""
        ),
        "{seen:#?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istios_sample_curl_image_runs_as_the_curl_client() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut pod = legacy_pod("legacy", "docker.io/curlimages/curl:8.16.0");
    pod.spec.as_mut().unwrap().containers[0].command =
        Some(vec!["/bin/sleep".into(), "infinity".into()]);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("legacy Ready", LIMIT, || async {
        pods.get("legacy").await.ok().filter(is_ready)
    })
    .await;
    let mut attached = pods
        .exec(
            "legacy",
            vec!["curl", "--version"],
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    attached
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
    assert!(out.starts_with("curl "), "{out}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_only_knob_lets_the_schema1_image_pull() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, client) = start().await;
    sandbox
        .local_runtime()
        .expect("the real runtime")
        .set_pull_schema1(true);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &legacy_pod("legacy", "radial/busyboxplus:curl"),
    )
    .await
    .unwrap();
    eventually("legacy Ready with the schema-1 image", LIMIT, || async {
        pods.get("legacy").await.ok().filter(is_ready)
    })
    .await;
    sandbox.shutdown().await;
}

/// Every event about pod `name`: (type, reason, message, count).
async fn events_of(client: &kube::Client, name: &str) -> Vec<(String, String, String, i32)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(1),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_rule_fails_the_first_pulls_as_containerd_does_then_lets_them_through() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, client) = start().await;
    // The rule a user writes in HAPPY_SANDBOX_FAULTS (Sandbox::start reads the variable; the
    // test sets the same rules on the runtime so parallel tests do not share them).
    sandbox
        .local_runtime()
        .expect("the real runtime")
        .set_pull_faults(
            PullFaults::parse("pull:docker.io/rinormaloku/happy-service:*=ratelimit:1").unwrap(),
        );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let image = "rinormaloku/happy-service:latest";
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "service-a", "namespace": "default"},
        "spec": {"containers": [{"name": "service-a", "image": image}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let pull = waiting(&pods, "service-a", "ErrImagePull").await;
    let message = pull.message.unwrap_or_default();
    assert_eq!(
        message,
        "rpc error: code = Unknown desc = failed to pull and unpack image \
         \"docker.io/rinormaloku/happy-service:latest\": failed to resolve reference \
         \"docker.io/rinormaloku/happy-service:latest\": unexpected status from HEAD request to \
         https://registry-1.docker.io/v2/rinormaloku/happy-service/manifests/latest: \
         429 Too Many Requests"
    );
    let backoff = waiting(&pods, "service-a", "ImagePullBackOff").await;
    assert_eq!(
        backoff.message.unwrap_or_default(),
        format!("Back-off pulling image \"{image}\": ErrImagePull: {message}")
    );
    // The kubelet's first back-off is 10 s; then the second pull goes through.
    let started = std::time::Instant::now();
    eventually("service-a Ready after its second pull", LIMIT, || async {
        pods.get("service-a").await.ok().filter(is_ready)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the retry came before the kubelet's back-off: {:?}",
        started.elapsed()
    );
    let seen = events_of(&client, "service-a").await;
    let count = |t: &str, r: &str, m: &dyn Fn(&str) -> bool| -> i32 {
        seen.iter()
            .filter(|e| e.0 == t && e.1 == r && m(&e.2))
            .map(|e| e.3)
            .sum()
    };
    let pulling = format!("Pulling image \"{image}\"");
    assert_eq!(
        count("Normal", "Pulling", &|m| m == pulling),
        2,
        "{seen:#?}"
    );
    // The repeat is aggregated into one Event, as the kubelet's recorder does.
    assert!(
        seen.iter().any(|e| e.1 == "Pulling" && e.3 == 2),
        "{seen:#?}"
    );
    let failed = format!("Failed to pull image \"{image}\": {message}");
    assert_eq!(count("Warning", "Failed", &|m| m == failed), 1, "{seen:#?}");
    assert_eq!(
        count("Normal", "BackOff", &|m| m
            == format!("Back-off pulling image \"{image}\"")),
        1,
        "{seen:#?}"
    );
    let pulled = format!("Successfully pulled image \"{image}\" in ");
    assert_eq!(
        count("Normal", "Pulled", &|m| m.starts_with(&pulled)
            && m.ends_with(" including waiting)")),
        1,
        "{seen:#?}"
    );

    // An image the node has, with a policy that does not pull: "already present", no pull
    // (and so no fault).
    sandbox
        .local_runtime()
        .unwrap()
        .set_pull_faults(PullFaults::parse("pull:*=notfound").unwrap());
    let mut again = pod.clone();
    again.metadata.name = Some("service-a-2".into());
    again.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("IfNotPresent".into());
    pods.create(&PostParams::default(), &again).await.unwrap();
    eventually("service-a-2 Ready from the node's image", LIMIT, || async {
        pods.get("service-a-2").await.ok().filter(is_ready)
    })
    .await;
    let seen = events_of(&client, "service-a-2").await;
    assert!(
        seen.iter().any(|e| e.1 == "Pulled"
            && e.2 == format!("Container image \"{image}\" already present on machine")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|e| e.1 == "Pulling"), "{seen:#?}");

    // With policy Always (the default for :latest), the same image is pulled, and the rule
    // now fails it as not found.
    let mut third = pod.clone();
    third.metadata.name = Some("service-a-3".into());
    pods.create(&PostParams::default(), &third).await.unwrap();
    let pull = waiting(&pods, "service-a-3", "ErrImagePull").await;
    assert_eq!(
        pull.message.as_deref(),
        Some(
            "rpc error: code = NotFound desc = failed to pull and unpack image \
             \"docker.io/rinormaloku/happy-service:latest\": failed to resolve reference \
             \"docker.io/rinormaloku/happy-service:latest\": \
             docker.io/rinormaloku/happy-service:latest: not found"
        )
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_apply_to_istios_control_plane_too() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, client) = start().await;
    sandbox
        .local_runtime()
        .expect("the real runtime")
        .set_pull_faults(PullFaults::parse("pull:docker.io/istio/pilot:*=unreachable").unwrap());
    sandbox.install_istio().await.expect("istio installs");
    let image = happy_sandbox::mesh::pilot_image(happy_sandbox::mesh::DEFAULT_HUB);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "istio-system");
    let message = eventually("istiod waiting with ErrImagePull", LIMIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=istiod"))
            .await
            .ok()?;
        let waiting = list.items.first()?.status.clone()?.container_statuses?[0]
            .state
            .clone()?
            .waiting?;
        (waiting.reason.as_deref() == Some("ErrImagePull")).then_some(waiting.message?)
    })
    .await;
    let reference = happy_sandbox::runtime::pull::docker_ref(&image);
    assert!(
        message.starts_with(&format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{reference}\""
        )),
        "{message}"
    );
    assert!(
        message.ends_with("dial tcp 192.0.2.1:443: connect: connection refused"),
        "{message}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rule_makes_the_pull_take_that_long_then_succeed() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, client) = start().await;
    sandbox
        .local_runtime()
        .expect("the real runtime")
        .set_pull_faults(PullFaults::parse("pull:docker.io/curlimages/*=slow:2").unwrap());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let image = "docker.io/curlimages/curl:8.16.0";
    let mut pod = legacy_pod("legacy", image);
    pod.spec.as_mut().unwrap().containers[0].command =
        Some(vec!["/bin/sleep".into(), "infinity".into()]);
    let started = std::time::Instant::now();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("legacy Ready after its slow pull", LIMIT, || async {
        pods.get("legacy").await.ok().filter(is_ready)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Ready before the pull's 2 s: {:?}",
        started.elapsed()
    );
    let seen = events_of(&client, "legacy").await;
    let pulled = seen
        .iter()
        .find(|e| e.1 == "Pulled")
        .map(|e| e.2.clone())
        .unwrap_or_default();
    // "in 2s" or "in 2.001s": the modelled time, truncated to ms as the kubelet prints it.
    assert!(
        pulled.starts_with(&format!("Successfully pulled image \"{image}\" in 2")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|e| e.1 == "Failed"), "{seen:#?}");
    sandbox.shutdown().await;
}
