//! Helpers for the runtime's integration tests: hand-built pods and Services for the workshop,
//! HTTP through port-forward, curl through exec — all straight through `cri::Runtime`, no API
//! server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use happy_sandbox::cri::{
    ContainerState, EndpointView, ExecRequest, PodReport, Runtime, ServicePortView, ServiceView,
    TargetPort,
};
use happy_sandbox::runtime::LocalRuntime;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

pub(crate) const NS: &str = "istioinaction";
pub(crate) const APP_IMAGE: &str = "rinormaloku/happy-service:latest";
/// The legacy client image the suite runs (Istio's sample client; the workshop's
/// radial/busyboxplus:curl is Docker schema 1 and refused, see `image_pulls.rs`).
pub(crate) const CURL_IMAGE: &str = "docker.io/curlimages/curl:8.16.0";
pub(crate) const SCHEMA1_IMAGE: &str = "radial/busyboxplus:curl";
/// Generous: only a broken runtime needs it all, and CI machines are loaded.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A pod as the workshop's Deployments make them.
pub(crate) fn app_pod(name: &str, app: &str, version: &str, env: &[(&str, &str)]) -> Pod {
    let mut env: Vec<serde_json::Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    env.push(json!({"name": "LISTEN_ADDR", "value": "0.0.0.0:8080"}));
    env.push(json!({"name": "SERVER_TYPE", "value": "http"}));
    env.push(json!({"name": "KUBERNETES_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}));
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "labels": {"app": app, "version": version}},
        "spec": {"containers": [{
            "name": app, "image": APP_IMAGE, "imagePullPolicy": "Always",
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "securityContext": {"privileged": false},
            "env": env,
        }]}
    }))
    .expect("valid pod")
}

/// A pod with one container of `image`.
pub(crate) fn simple_pod(namespace: &str, name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": name, "image": image,
                                 "command": ["tail", "-f", "/dev/null"]}]}
    }))
    .expect("valid pod")
}

/// A runtime plus the reports it sent.
pub(crate) struct Cluster {
    pub rt: Arc<LocalRuntime>,
    reports_tx: mpsc::UnboundedSender<PodReport>,
    reports_rx: mpsc::UnboundedReceiver<PodReport>,
    pub last: HashMap<String, PodReport>,
    pub ips: HashMap<String, Ipv4Addr>,
}

impl Cluster {
    pub(crate) fn new() -> Self {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Self {
            rt: LocalRuntime::new().expect("runtime starts"),
            reports_tx,
            reports_rx,
            last: HashMap::new(),
            ips: HashMap::new(),
        }
    }

    pub(crate) fn run(&mut self, pod: &Pod) -> Ipv4Addr {
        let ip = self
            .rt
            .run_pod(pod, self.reports_tx.clone())
            .expect("pod starts");
        self.ips
            .insert(pod.metadata.name.clone().expect("named"), ip);
        ip
    }

    /// Wait (bounded) until `cond` holds for the latest report of pod `name`.
    pub(crate) async fn wait_for(
        &mut self,
        name: &str,
        cond: impl Fn(&PodReport) -> bool,
    ) -> PodReport {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(r) = self.last.get(name)
                && cond(r)
            {
                return r.clone();
            }
            let next = tokio::time::timeout_at(deadline, self.reports_rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "pod {name}: condition not met in {WAIT:?}; last report: {:?}",
                        self.last.get(name)
                    )
                })
                .expect("report channel open");
            self.last.insert(next.name.clone(), next);
        }
    }

    pub(crate) async fn wait_ready(&mut self, name: &str) -> PodReport {
        self.wait_for(name, |r| {
            r.containers
                .iter()
                .all(|c| matches!(c.state, ContainerState::Running { ready: true, .. }))
        })
        .await
    }

    /// Publish a Service over the given pods (all ready), port 80 → targetPort `http`.
    pub(crate) fn service(&self, name: &str, pods: &[&str]) -> Ipv4Addr {
        let ip = self.rt.allocate_cluster_ip().expect("cluster ip");
        self.rt
            .update_service(self.service_view(name, ip, pods, TargetPort::Name("http".into())));
        ip
    }

    pub(crate) fn service_view(
        &self,
        name: &str,
        ip: Ipv4Addr,
        pods: &[&str],
        target: TargetPort,
    ) -> ServiceView {
        ServiceView {
            namespace: NS.into(),
            name: name.into(),
            cluster_ip: ip,
            ports: vec![ServicePortView {
                name: Some("http".into()),
                port: 80,
                target_port: target,
            }],
            endpoints: pods
                .iter()
                .map(|p| EndpointView {
                    pod_name: p.to_string(),
                    ip: self.ips[*p],
                    ready: true,
                    named_ports: vec![("http".into(), 8080)],
                })
                .collect(),
        }
    }

    /// Start the workshop's services a, b, c-v1 with their Services and wait until ready.
    pub(crate) async fn workshop() -> Self {
        let mut c = Self::new();
        c.run(&app_pod(
            "service-a-1",
            "service-a",
            "v1",
            &[
                ("NAME", "service-a"),
                ("MESSAGE", "Hello from service-a"),
                ("SERVICE_OWNER", "dave"),
                ("UPSTREAM_URIS", "http://service-b,http://service-c"),
            ],
        ));
        c.run(&app_pod(
            "service-b-1",
            "service-b",
            "v1",
            &[("NAME", "service-b"), ("SERVICE_OWNER", "oli")],
        ));
        c.run(&app_pod(
            "service-c-v1-1",
            "service-c",
            "v1",
            &[("NAME", "service-c(v1)"), ("SERVICE_OWNER", "sam")],
        ));
        for p in ["service-a-1", "service-b-1", "service-c-v1-1"] {
            c.wait_ready(p).await;
        }
        c.service("service-a", &["service-a-1"]);
        c.service("service-b", &["service-b-1"]);
        c.service("service-c", &["service-c-v1-1"]);
        c
    }

    /// service-c-v2 (ERROR_RATE 0.6) joins service-c's endpoints.
    pub(crate) async fn add_v2(&mut self) {
        self.run(&app_pod(
            "service-c-v2-1",
            "service-c",
            "v2",
            &[
                ("NAME", "service-c(v2)"),
                ("SERVICE_OWNER", "pam"),
                ("ERROR_TYPE", "http_error"),
                ("ERROR_RATE", "0.6"),
                ("ERROR_CODE", "500"),
            ],
        ));
        self.wait_ready("service-c-v2-1").await;
        let ip = self
            .rt
            .network()
            .services()
            .cluster_ip(NS, "service-c")
            .expect("service-c");
        self.rt.update_service(self.service_view(
            "service-c",
            ip,
            &["service-c-v1-1", "service-c-v2-1"],
            TargetPort::Name("http".into()),
        ));
    }

    /// GET `path` on the pod's `port` through port-forward: (status, body).
    pub(crate) async fn get(
        &self,
        pod: &str,
        port: u16,
        path: &str,
    ) -> (u16, String, http::HeaderMap) {
        let stream = self
            .rt
            .port_forward(NS, pod, port)
            .await
            .expect("port-forward");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "localhost:8080")
            .header("x-request-id", "req-1")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), headers)
    }

    /// Exec `command` in the pod's only container: (exit code, stdout, stderr).
    pub(crate) async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        command: &[&str],
    ) -> (i32, String, String) {
        let session = self
            .rt
            .exec(
                namespace,
                pod,
                ExecRequest {
                    container: String::new(),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    stdin: false,
                    tty: false,
                },
            )
            .await
            .expect("exec starts");
        let mut stdout = session.stdout;
        let mut stderr = session.stderr;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let run = async {
            let (a, b, code) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                session.exit
            );
            a.expect("stdout");
            b.expect("stderr");
            code.code
        };
        let code = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("exec ends in time");
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// All of a container's log as text.
    pub(crate) async fn logs(&self, pod: &str) -> String {
        use futures::StreamExt;
        let stream = self
            .rt
            .logs(NS, pod, happy_sandbox::cri::LogRequest::default())
            .expect("logs");
        let parts: Vec<Bytes> = stream.collect().await;
        parts
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}
