//! Benchmark of the sandbox's control plane on the real runtime, as the suite meets it through
//! kube-rs: start to first API answer (target < 200 ms), and server-side apply of the workshop's
//! service-a, service-b and service-c-v1 to all their pods Ready (target < 1 s). Figures are
//! printed as p50 / p95 / max over the trials; nothing is asserted (speed is measured, not
//! tested).
//!
//! Run: `cargo bench -p happy-sandbox-cli --bench sandbox -- control_plane` (env BENCH_TRIALS,
//! default 20).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{apply_yaml, client, install_crypto, is_ready, workshop_yaml};
use futures::StreamExt;
use happy_sandbox::{Sandbox, SandboxOptions};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::discovery::Discovery;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:>7.1?}  p95 {:>7.1?}  max {:>7.1?}  (n = {})",
        at(0.5),
        at(0.95),
        at(1.0),
        samples.len()
    )
}

/// Wait, by watching (not polling), until `count` live pods of `namespace` are Ready.
async fn all_ready(pods: Api<Pod>, count: usize) {
    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
    let limit = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(limit);
    loop {
        tokio::select! {
            _ = &mut limit => panic!("pods not Ready within 60 s: {ready:?}"),
            event = events.next() => {
                match event.expect("watch ended").expect("watch failed") {
                    Event::Apply(p) | Event::InitApply(p) => {
                        let live = p.metadata.deletion_timestamp.is_none();
                        ready.insert(p.name_any(), live && is_ready(&p));
                    }
                    Event::Delete(p) => {
                        ready.remove(&p.name_any());
                    }
                    Event::Init | Event::InitDone => {}
                }
                if ready.values().filter(|r| **r).count() == count {
                    return;
                }
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn run() {
    install_crypto();
    let trials: usize = std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);

    let mut start_to_answer = Vec::new();
    for _ in 0..trials {
        let began = Instant::now();
        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox starts");
        let kube = client(&sandbox).await;
        kube.apiserver_version().await.expect("first API answer");
        start_to_answer.push(began.elapsed());
        sandbox.shutdown().await;
    }
    println!(
        "sandbox start to first API answer:       {}",
        percentiles(start_to_answer)
    );

    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let kube = client(&sandbox).await;
    let discovery = Discovery::new(kube.clone()).run().await.expect("discovery");
    let yaml = ["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"]
        .map(workshop_yaml)
        .join("\n---\n");
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    let mut apply_to_ready = Vec::new();
    for trial in 0..trials {
        let ns = format!("bench-{trial}");
        let object = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("namespace created");
        let began = Instant::now();
        apply_yaml(&kube, &discovery, &ns, &yaml).await;
        all_ready(Api::namespaced(kube.clone(), &ns), 3).await;
        apply_to_ready.push(began.elapsed());
    }
    println!(
        "apply a + b + c-v1 to all pods Ready:    {}",
        percentiles(apply_to_ready)
    );
    sandbox.shutdown().await;
}
