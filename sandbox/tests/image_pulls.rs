//! Image pulls on the real runtime, as on the pinned kind node's containerd 2.3: the
//! workshop's legacy client image radial/busyboxplus:curl is Docker schema 1 and is refused
//! with containerd's message, ErrImagePull then ImagePullBackOff with the kubelet's events;
//! Istio's sample client image runs as the curl client; and the test-only knob lets the
//! schema-1 image pull.

mod common;

use std::time::Duration;

use common::{client, eventually, install_crypto, is_ready};
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
        backoff.message.as_deref(),
        Some("Back-off pulling image \"radial/busyboxplus:curl\"")
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
