//! Readiness probes, as the kubelet runs them: `httpGet` (2xx/3xx is success) and `tcpSocket`
//! against the pod's address, so probes pass the recording point like any inbound traffic.
//! The workshop's manifests have none; a container without a probe is ready once its program
//! serves. `probe_loop` is the kubelet's probe worker that runs a container's probe.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod::{ContainerRun, PodRun};
use crate::net::pipe::connect_from;

/// What to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Http { port: u16, path: String },
    Tcp { port: u16 },
}

/// A readiness probe with its timing. The period is capped at one second: the sandbox honours
/// the probe but does not make tests wait Kubernetes' default ten seconds between checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessProbe {
    pub check: Check,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn resolve_port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} is out of range")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("container has no port named {name:?}")),
    }
}

fn secs(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.and_then(|s| u64::try_from(s).ok()).unwrap_or(default))
}

/// The container's readiness probe, if it has one the sandbox can run; an error names the
/// container and what is wrong.
pub fn readiness_probe(container: &Container) -> Option<Result<ReadinessProbe, String>> {
    let probe: &Probe = container.readiness_probe.as_ref()?;
    let check = if let Some(h) = &probe.http_get {
        resolve_port(container, &h.port).map(|port| Check::Http {
            port,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
        })
    } else if let Some(t) = &probe.tcp_socket {
        resolve_port(container, &t.port).map(|port| Check::Tcp { port })
    } else {
        // exec and gRPC probes are not run by the sandbox: readiness follows the program.
        return None;
    };
    Some(
        check
            .map(|check| ReadinessProbe {
                check,
                initial_delay: secs(probe.initial_delay_seconds, 0),
                period: secs(probe.period_seconds, 10).min(Duration::from_secs(1)),
                timeout: secs(probe.timeout_seconds, 1),
                success_threshold: probe.success_threshold.map_or(1, |v| v.max(1) as u32),
                failure_threshold: probe.failure_threshold.map_or(3, |v| v.max(1) as u32),
            })
            .map_err(|e| format!("readinessProbe of container {:?}: {e}", container.name)),
    )
}

/// Run the check once against the pod at `pod_ip`; true on success.
pub async fn check_once(pod_ip: Ipv4Addr, probe: &ReadinessProbe) -> bool {
    let attempt = async {
        match &probe.check {
            Check::Tcp { port } => {
                connect_from(Ipv4Addr::LOCALHOST, SocketAddrV4::new(pod_ip, *port))
                    .await
                    .is_ok()
            }
            Check::Http { port, path } => {
                let Ok(stream) =
                    connect_from(Ipv4Addr::LOCALHOST, SocketAddrV4::new(pod_ip, *port)).await
                else {
                    return false;
                };
                let Ok((mut sender, conn)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
                else {
                    return false;
                };
                let driver = tokio::spawn(async move {
                    let _ = conn.await;
                });
                let request = http::Request::get(path.as_str())
                    .header(http::header::HOST, format!("{pod_ip}:{port}"))
                    .header(http::header::USER_AGENT, "kube-probe/1.33")
                    .body(Empty::<Bytes>::new());
                let ok = match request {
                    Ok(r) => sender
                        .send_request(r)
                        .await
                        .map(|resp| (200..400).contains(&resp.status().as_u16()))
                        .unwrap_or(false),
                    Err(_) => false,
                };
                driver.abort();
                ok
            }
        }
    };
    tokio::time::timeout(probe.timeout, attempt)
        .await
        .unwrap_or(false)
}

/// The kubelet's probe worker for one container (kubernetes `pkg/kubelet/prober/worker.go`,
/// `doProbe`): after the initial delay, a check every period; `success_threshold` successes in
/// a row make the container ready, `failure_threshold` failures in a row unready.
pub(crate) async fn probe_loop(pod_run: &PodRun, run: &ContainerRun, probe: &ReadinessProbe) {
    tokio::time::sleep(probe.initial_delay).await;
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        if check_once(pod_run.net.ip(), probe).await {
            successes += 1;
            failures = 0;
            if successes >= probe.success_threshold {
                pod_run.set_ready(run, true);
            }
        } else {
            failures += 1;
            successes = 0;
            if failures >= probe.failure_threshold {
                pod_run.set_ready(run, false);
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}
