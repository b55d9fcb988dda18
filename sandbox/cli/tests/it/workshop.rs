//! The workshop's first chapter on the real runtime (s2's `LocalRuntime`): through kube-rs as
//! the suite drives it, and through the real `kubectl` binary as a reader types it, asserting on
//! kubectl's output and exit codes (on a sandbox with the kubectl protocols, as `happy-sandbox up`
//! starts it).

use crate::common;
use crate::pod_addresses;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{apply_yaml, client, eventually, install_crypto, is_ready, workshop_yaml};
use happy_sandbox::{Sandbox, SandboxOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, AttachParams, ListParams, LogParams, PostParams};
use kube::discovery::Discovery;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(60);

async fn ready_pod(pods: &Api<Pod>, selector: &str, not: Option<&str>) -> Pod {
    eventually(&format!("a ready pod {selector}"), LIMIT, || async {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .ok()?;
        let live: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == 1 && is_ready(&live[0]) && Some(live[0].name_any().as_str()) != not)
            .then(|| live[0].clone())
    })
    .await
}

/// GET / on port 8080 of a pod through a kube-rs port-forward: (status line, body).
async fn get_through_port_forward(pods: &Api<Pod>, pod: &str, path: &str) -> (String, String) {
    let mut pf = pods.portforward(pod, &[8080]).await.unwrap();
    let mut s = pf.take_stream(8080).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: service-a\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workshop_through_kube_rs_on_the_real_runtime() {
    let pods_shared = pod_addresses::shared().await;
    install_crypto();
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let client = client(&sandbox).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "istioinaction"}})).unwrap(),
    )
    .await
    .unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for f in ["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"] {
        apply_yaml(&client, &discovery, "istioinaction", &workshop_yaml(f)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "istioinaction");
    for app in ["service-b", "service-c"] {
        ready_pod(&pods, &format!("app={app}"), None).await;
    }
    let a = ready_pod(&pods, "app=service-a", None).await;
    let (status, body) = get_through_port_forward(&pods, &a.name_any(), "/").await;
    assert!(status.contains(" 200 "), "{status}\n{body}");
    let reply: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(reply["name"], "service-a");
    for up in ["http://service-b", "http://service-c"] {
        assert_eq!(reply["upstream_calls"][up]["code"], 200, "{body}");
    }

    // exec: the host's curl inside the pod's network, exit code through the status channel.
    let mut curl = pods
        .exec(
            &a.name_any(),
            vec![
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://service-b",
            ],
            &AttachParams::default().stderr(true),
        )
        .await
        .unwrap();
    let mut out = String::new();
    curl.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let st = curl.take_status().unwrap().await.unwrap();
    assert_eq!(
        (out.as_str(), st.status.as_deref()),
        ("200", Some("Success"))
    );

    let logs = pods
        .logs(&a.name_any(), &LogParams::default())
        .await
        .unwrap();
    assert!(logs.contains("Handle inbound request"), "{logs}");

    // Rollout restart: a new pod answers.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "istioinaction");
    deploys.restart("service-a").await.unwrap();
    let a2 = ready_pod(&pods, "app=service-a", Some(&a.name_any())).await;
    let (status, _) = get_through_port_forward(&pods, &a2.name_any(), "/ui/").await;
    assert!(status.contains(" 200 "), "{status}");

    let api_port: u16 = sandbox
        .server_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let pod_ip = a2.status.unwrap().pod_ip.unwrap();
    // Alone from here: once freed, the pod's address is the next pod's of any sandbox, which
    // would listen on 8080 there (pod_addresses.rs).
    drop(pods_shared);
    let _alone = pod_addresses::alone().await;
    sandbox.shutdown().await;
    // Nothing listens any more: neither the API server nor the pod.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", api_port))
            .await
            .is_err(),
        "API server still listening"
    );
    assert!(
        tokio::net::TcpStream::connect((pod_ip.as_str(), 8080))
            .await
            .is_err(),
        "pod still listening"
    );
}

/// kubectl needs the kubectl protocols (Tables, protobuf, OpenAPI, SPDY).
struct Kubectl<'a> {
    kubeconfig: &'a Path,
    dir: &'a Path,
}

impl Kubectl<'_> {
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig)
            .current_dir(self.dir)
            .output()
            .await
            .expect("kubectl 1.32+ must be on PATH for this test")
    }

    /// Run and require success; stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workshop_through_kubectl() {
    let _pods = pod_addresses::shared().await;
    install_crypto();
    let sandbox = Sandbox::start(common::with_kubectl())
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(sandbox.kubeconfig_path(), &kubeconfig).unwrap();
    for f in ["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"] {
        std::fs::write(dir.path().join(f), workshop_yaml(f)).unwrap();
    }
    let k = Kubectl {
        kubeconfig: &kubeconfig,
        dir: dir.path(),
    };

    assert_eq!(
        k.ok(&["create", "namespace", "istioinaction"]).await.trim(),
        "namespace/istioinaction created"
    );
    k.ok(&[
        "config",
        "set-context",
        "--current",
        "--namespace",
        "istioinaction",
    ])
    .await;
    let applied = k
        .ok(&[
            "apply",
            "-f",
            "services-a.yaml",
            "-f",
            "services-b.yaml",
            "-f",
            "services-c-v1.yaml",
        ])
        .await;
    for line in [
        "serviceaccount/service-a created",
        "service/service-b created",
        "deployment.apps/service-c-v1 created",
    ] {
        assert!(applied.contains(line), "{applied}");
    }
    let waited = k
        .ok(&[
            "wait",
            "po",
            "--for",
            "condition=Ready",
            "--all",
            "--timeout=60s",
        ])
        .await;
    assert_eq!(waited.matches("condition met").count(), 3, "{waited}");
    let pods = k.ok(&["get", "pods"]).await;
    let lines: Vec<&str> = pods.lines().collect();
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]),
        "{pods}"
    );
    assert_eq!(lines.len(), 4, "{pods}");
    for l in &lines[1..] {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert_eq!((cols[1], cols[2]), ("1/1", "Running"), "{pods}");
    }
    let svc = k.ok(&["get", "svc", "service-a"]).await;
    assert!(svc.contains("ClusterIP") && svc.contains("80/TCP"), "{svc}");

    let reply = k
        .ok(&[
            "exec",
            "deploy/service-a",
            "--",
            "curl",
            "-s",
            "http://service-b",
        ])
        .await;
    assert!(reply.contains("\"name\": \"service-b\""), "{reply}");
    let failed = k
        .run(&[
            "exec",
            "deploy/service-a",
            "--",
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://no-such-service",
        ])
        .await;
    assert_eq!(
        failed.status.code(),
        Some(6),
        "curl's exit code (couldn't resolve host) comes through"
    );
    let logs = k.ok(&["logs", "deploy/service-b"]).await;
    assert!(logs.contains("Handle inbound request"), "{logs}");

    assert_eq!(
        k.ok(&[
            "label",
            "namespace",
            "istioinaction",
            "istio-injection=enabled"
        ])
        .await
        .trim(),
        "namespace/istioinaction labeled"
    );
    let labels = k
        .ok(&[
            "get",
            "namespace",
            "istioinaction",
            "-o",
            "jsonpath={.metadata.labels.istio-injection}",
        ])
        .await;
    assert_eq!(labels, "enabled");
    let before = k.ok(&["get", "pods", "-o", "name"]).await;
    let restarted = k
        .ok(&[
            "rollout",
            "restart",
            "deploy",
            "service-a",
            "service-b",
            "service-c-v1",
        ])
        .await;
    assert_eq!(restarted.matches("restarted").count(), 3, "{restarted}");
    for d in ["service-a", "service-b", "service-c-v1"] {
        let status = k
            .ok(&["rollout", "status", "deploy", d, "--timeout=60s"])
            .await;
        assert!(status.contains("successfully rolled out"), "{status}");
    }
    let after = eventually("only new pods", LIMIT, || async {
        let now = k.ok(&["get", "pods", "-o", "name"]).await;
        (now.lines().count() == 3 && now.lines().all(|p| !before.contains(p))).then_some(now)
    })
    .await;
    assert_eq!(after.lines().count(), 3);

    let deleted = k.ok(&["delete", "-f", "services-a.yaml"]).await;
    assert!(
        deleted.contains("deployment.apps \"service-a\" deleted"),
        "{deleted}"
    );
    eventually("service-a pods gone", LIMIT, || async {
        let now = k.ok(&["get", "pods", "-o", "name"]).await;
        (!now.contains("service-a")).then_some(())
    })
    .await;

    let unknown = k.run(&["get", "widgets"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("widgets"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    sandbox.shutdown().await;
}
