//! Shared test helpers: a fake pod runtime (so the control plane can be tested without real
//! processes), a started sandbox and a kube-rs client for it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use happy_sandbox::cri::{
    ContainerReport, ContainerState, Duplex, ExecExit, ExecRequest, ExecSession, LogRequest,
    PodReport, Runtime, RuntimeError, ServiceView,
};
use happy_sandbox::{Sandbox, SandboxOptions};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;

/// The image the fake runtime cannot "pull".
pub(crate) const BAD_IMAGE: &str = "example.invalid/no-such-image:1";

/// A runtime that "runs" pods by reporting them Running and Ready at once, except for
/// [`BAD_IMAGE`] which gets `ErrImagePull`. Exec runs `fake OUT ERR CODE`: writes OUT to
/// stdout, ERR to stderr, exits with CODE; `cat` echoes stdin. Port-forward echoes with a
/// "port N: " prefix. Logs are two fixed lines naming the pod and container.
#[derive(Default)]
pub(crate) struct FakeRuntime {
    next_ip: Mutex<u32>,
    pub pods: Mutex<HashMap<(String, String), Ipv4Addr>>,
    pub stopped: Mutex<Vec<(String, String)>>,
    pub services: Mutex<HashMap<(String, String), ServiceView>>,
}

impl FakeRuntime {
    fn ip(&self, base: [u8; 2]) -> Ipv4Addr {
        let mut n = self.next_ip.lock().unwrap();
        *n += 1;
        Ipv4Addr::new(127, base[0], base[1], (*n % 250) as u8 + 1)
    }
}

impl Runtime for FakeRuntime {
    fn run_pod(
        &self,
        pod: &Pod,
        reports: UnboundedSender<PodReport>,
    ) -> Result<Ipv4Addr, RuntimeError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ip = self.ip([1, 0]);
        self.pods
            .lock()
            .unwrap()
            .insert((ns.clone(), name.clone()), ip);
        let spec = pod.spec.clone().unwrap_or_default();
        let containers = spec
            .containers
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                let state = if image == BAD_IMAGE {
                    ContainerState::Waiting {
                        reason: "ErrImagePull".into(),
                        message: format!("image {image:?} is not provided by the sandbox"),
                    }
                } else {
                    ContainerState::Running {
                        started_at: SystemTime::now(),
                        ready: true,
                    }
                };
                ContainerReport {
                    name: c.name.clone(),
                    image,
                    init: false,
                    restart_count: 0,
                    last_state: None,
                    state,
                }
            })
            .collect();
        let _ = reports.send(PodReport {
            namespace: ns,
            name,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod_ip: ip,
            containers,
            events: Vec::new(),
        });
        Ok(ip)
    }

    fn stop_pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, ()> {
        self.pods
            .lock()
            .unwrap()
            .remove(&(namespace.to_string(), name.to_string()));
        self.stopped
            .lock()
            .unwrap()
            .push((namespace.to_string(), name.to_string()));
        async {}.boxed()
    }

    fn exec(
        &self,
        namespace: &str,
        name: &str,
        request: ExecRequest,
    ) -> BoxFuture<'static, Result<ExecSession, RuntimeError>> {
        let known = self
            .pods
            .lock()
            .unwrap()
            .contains_key(&(namespace.to_string(), name.to_string()));
        let (ns, n) = (namespace.to_string(), name.to_string());
        async move {
            if !known {
                return Err(RuntimeError::PodNotFound {
                    namespace: ns,
                    name: n,
                });
            }
            let cmd = request.command.clone();
            let (mut out_w, out_r) = tokio::io::duplex(1024);
            let (mut err_w, err_r) = tokio::io::duplex(1024);
            let (in_w, mut in_r) = tokio::io::duplex(1024);
            let exit = tokio::spawn(async move {
                match cmd.first().map(String::as_str) {
                    Some("fake") => {
                        let arg = |i: usize| cmd.get(i).cloned().unwrap_or_default();
                        let _ = out_w.write_all(arg(1).as_bytes()).await;
                        let _ = err_w.write_all(arg(2).as_bytes()).await;
                        arg(3).parse().unwrap_or(0)
                    }
                    Some("cat") => {
                        let mut buf = Vec::new();
                        let _ = in_r.read_to_end(&mut buf).await;
                        let _ = out_w.write_all(&buf).await;
                        0
                    }
                    _ => {
                        let _ = err_w
                            .write_all(b"command not provided by the fake runtime")
                            .await;
                        126
                    }
                }
            });
            Ok(ExecSession {
                stdin: Some(Box::pin(in_w)),
                stdout: Box::pin(out_r),
                stderr: Box::pin(err_r),
                exit: async move {
                    ExecExit {
                        code: exit.await.unwrap_or(1),
                    }
                }
                .boxed(),
            })
        }
        .boxed()
    }

    fn port_forward(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Pin<Box<dyn Duplex>>, RuntimeError>> {
        let (ns, n) = (namespace.to_string(), name.to_string());
        async move {
            if port == 1 {
                return Err(RuntimeError::PortClosed {
                    namespace: ns,
                    name: n,
                    port,
                });
            }
            let (client, mut server) = tokio::io::duplex(4096);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                while let Ok(k) = server.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    let mut reply = format!("port {port}: ").into_bytes();
                    reply.extend_from_slice(&buf[..k]);
                    if server.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Box::pin(client) as Pin<Box<dyn Duplex>>)
        }
        .boxed()
    }

    fn logs(
        &self,
        namespace: &str,
        name: &str,
        request: LogRequest,
    ) -> Result<Pin<Box<dyn Stream<Item = Bytes> + Send>>, RuntimeError> {
        let lines = vec![
            Bytes::from(format!(
                "first line of {namespace}/{name}/{}\n",
                request.container
            )),
            Bytes::from(format!(
                "second line of {namespace}/{name}/{}\n",
                request.container
            )),
        ];
        let skip = request
            .tail_lines
            .map(|t| lines.len().saturating_sub(t))
            .unwrap_or(0);
        Ok(Box::pin(futures::stream::iter(
            lines.into_iter().skip(skip),
        )))
    }

    fn allocate_cluster_ip(&self) -> Result<Ipv4Addr, RuntimeError> {
        Ok(self.ip([2, 0]))
    }

    fn update_service(&self, service: ServiceView) {
        self.services
            .lock()
            .unwrap()
            .insert((service.namespace.clone(), service.name.clone()), service);
    }

    fn remove_service(&self, namespace: &str, name: &str) {
        self.services
            .lock()
            .unwrap()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A sandbox on the fake runtime, as the suite starts one (no kubectl protocols).
pub(crate) async fn fake_sandbox() -> (Sandbox, Arc<FakeRuntime>) {
    fake_sandbox_with(SandboxOptions::default()).await
}

/// A sandbox on the fake runtime, started with `options`.
pub(crate) async fn fake_sandbox_with(options: SandboxOptions) -> (Sandbox, Arc<FakeRuntime>) {
    install_crypto();
    let runtime = Arc::new(FakeRuntime::default());
    let sandbox = Sandbox::start_with_runtime(options, runtime.clone())
        .await
        .expect("sandbox starts");
    (sandbox, runtime)
}

/// The options of a sandbox a person drives with kubectl, as `happy-sandbox up` starts it:
/// with the kubectl protocols (Tables, protobuf, OpenAPI, SPDY port-forward).
pub(crate) fn with_kubectl() -> SandboxOptions {
    SandboxOptions {
        kubectl: Some(happy_sandbox_cli::protocols()),
        ..SandboxOptions::default()
    }
}

/// A kube-rs client from the sandbox's kubeconfig, as the suite makes it.
pub(crate) async fn client(sandbox: &Sandbox) -> kube::Client {
    install_crypto();
    let kc = Kubeconfig::read_from(sandbox.kubeconfig_path()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

/// Server-side apply every document of `yaml` into `namespace`, as the suite does.
pub(crate) async fn apply_yaml(
    client: &kube::Client,
    discovery: &Discovery,
    namespace: &str,
    yaml: &str,
) {
    for doc in yaml.split("\n---\n") {
        let obj: DynamicObject = serde_saphyr::from_str(doc).unwrap();
        let gvk = kube::core::GroupVersionKind::try_from(obj.types.as_ref().unwrap()).unwrap();
        let (ar, caps) = discovery.resolve_gvk(&gvk).unwrap();
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            Api::namespaced_with(client.clone(), namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("happy").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }
}

/// Whether the pod's Ready condition is True.
pub(crate) fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Poll `f` until it returns Some, at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workshop's services (its services-*.yaml: fake-service as rinormaloku/happy-service,
/// service-a calling service-b and service-c, service-c v2 failing half its requests), as YAML
/// documents.
pub(crate) fn workshop_yaml(file: &str) -> String {
    let (app, deploy, version, selector_version, env, sa_and_svc): (
        &str,
        &str,
        &str,
        bool,
        &[(&str, &str)],
        bool,
    ) = match file {
        "services-a.yaml" => (
            "service-a",
            "service-a",
            "v1",
            true,
            &[
                ("NAME", "service-a"),
                ("MESSAGE", "Hello from service-a"),
                ("SERVICE_OWNER", "dave"),
                ("UPSTREAM_URIS", "http://service-b,http://service-c"),
            ],
            true,
        ),
        "services-b.yaml" => (
            "service-b",
            "service-b",
            "v1",
            false,
            &[("NAME", "service-b"), ("SERVICE_OWNER", "oli")],
            true,
        ),
        "services-c-v1.yaml" => (
            "service-c",
            "service-c-v1",
            "v1",
            false,
            &[("NAME", "service-c(v1)"), ("SERVICE_OWNER", "sam")],
            true,
        ),
        "services-c-v2.yaml" => (
            "service-c",
            "service-c-v2",
            "v2",
            false,
            &[
                ("NAME", "service-c(v2)"),
                ("SERVICE_OWNER", "pam"),
                ("ERROR_TYPE", "http_error"),
                ("ERROR_RATE", "0.6"),
                ("ERROR_CODE", "500"),
            ],
            false,
        ),
        other => panic!("no workshop file {other}"),
    };
    let mut docs = Vec::new();
    if sa_and_svc {
        docs.push(format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n"
        ));
        let sel_version = if selector_version {
            "    version: v1\n"
        } else {
            ""
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {app}\n  labels:\n    app: {app}\nspec:\n  ports:\n  - port: 80\n    name: http\n    targetPort: 8080\n  selector:\n    app: {app}\n{sel_version}"
        ));
    }
    let env: String = env
        .iter()
        .map(|(k, v)| format!("        - name: {k}\n          value: \"{v}\"\n"))
        .collect();
    docs.push(format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {deploy}
  labels:
    app: {app}
    version: {version}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {app}
      version: {version}
  template:
    metadata:
      labels:
        app: {app}
        version: {version}
    spec:
      serviceAccountName: {app}
      containers:
      - name: {app}
        image: rinormaloku/happy-service:latest
        imagePullPolicy: Always
        ports:
        - containerPort: 8080
          name: http
        securityContext:
          privileged: false
        env:
        - name: LISTEN_ADDR
          value: \"0.0.0.0:8080\"
        - name: SERVER_TYPE
          value: \"http\"
        - name: KUBERNETES_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
{env}"
    ));
    docs.join("---\n")
}
