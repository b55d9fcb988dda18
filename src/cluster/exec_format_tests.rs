//! A rollout whose image is built for another CPU architecture, on the sandbox: the container
//! ends as `runc init` ends it (its log `exec …: exec format error`, exit 255, then crash
//! loops), and the wait's failure names the image, runc's words and the node's architecture —
//! read with the same API calls (`pods/log` with `tailLines`, `GET node`) a real cluster gets.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use happy_sandbox::program::{ContainerContext, Exit, Program};
use happy_sandbox::{Sandbox, SandboxOptions};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Cluster;
use crate::error::Error;
use crate::timeouts::Timeouts;

const FOREIGN_IMAGE: &str = "example.test/amd64-only:1";

/// What runc does with an entrypoint the kernel cannot execute (opencontainers/runc v1.4.3
/// `libcontainer/init_linux.go` `Init`: the error on stderr, then `os.Exit(255)`).
struct ForeignArchitecture;

impl Program for ForeignArchitecture {
    fn matches(&self, image: &str) -> bool {
        image == FOREIGN_IMAGE
    }

    fn describe(&self) -> String {
        FOREIGN_IMAGE.into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        async move {
            ctx.log.write("exec /app/service: exec format error\n");
            Exit {
                code: crate::error::pod_failure::RUNC_INIT_EXIT,
                reason: "Error".into(),
                message: String::new(),
            }
        }
        .boxed()
    }
}

#[tokio::test]
async fn a_foreign_architecture_image_fails_the_rollout_naming_it_and_the_node() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    sandbox
        .local_runtime()
        .expect("a started sandbox has its runtime")
        .register_program(Arc::new(ForeignArchitecture));
    let kubeconfig = Kubeconfig::read_from(sandbox.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let cluster = Cluster::new(kube::Client::try_from(config).unwrap(), Timeouts::default());
    let manifests = crate::manifests::parse_documents(
        std::path::Path::new("foreign.yaml"),
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: foreign\nspec:\n  \
             replicas: 1\n  selector:\n    matchLabels: {{app: foreign}}\n  template:\n    \
             metadata:\n      labels: {{app: foreign}}\n    spec:\n      containers:\n      \
             - name: service\n        image: {FOREIGN_IMAGE}\n"
        ),
    )
    .unwrap();
    cluster.apply(&manifests, "default").await.unwrap();

    let started = std::time::Instant::now();
    let err = cluster
        .wait_rollout("default", "foreign")
        .await
        .expect_err("the rollout cannot complete");
    let elapsed = started.elapsed();
    println!("failed after {elapsed:?}: {err}");
    let Error::PodFailed { failure, .. } = &err else {
        panic!("not a pod failure: {err}")
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let text = err.to_string();
    for part in [
        format!("image {FOREIGN_IMAGE}"),
        "exited with code 255".to_string(),
        "its log ends: exec /app/service: exec format error".to_string(),
        format!("{FOREIGN_IMAGE} has no build for this node's CPU architecture ({arch} of node"),
    ] {
        assert!(text.contains(&part), "{part:?} missing in {text}");
    }
    assert!(failure.exec_format_error());
    // Fails fast: the kubelet restarts a first crash at once, so the failure is final within
    // the first back-off, far inside the rollout limit.
    assert!(
        elapsed < Timeouts::default().rollout / 2,
        "took {elapsed:?}"
    );
    sandbox.shutdown().await;
}
