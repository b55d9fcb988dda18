//! The programs behind Istio's images. `proxyv2` runs as `istio-init` (the traffic redirection
//! needs no work here: the mesh swaps the pod's paths when the proxy is ready) or as
//! `istio-proxy`: a real Envoy (`proxy sidecar` or `proxy router`) configured by the
//! in-process istiod through files, with the agent (metrics, `/healthz/ready`) on
//! podIP:15020. `pilot` is istiod's container: istiod's work runs in the sandbox itself, so
//! the container only reports Ready.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::envoy::ensure_envoy;
use super::model::{WorkloadMeta, labels_of};
use super::paths::{ProxyInbound, SidecarOutbound};
use super::telemetry;
use super::translate::bootstrap::{ADMIN_PORT, AGENT_PORT, HEALTH_PORT};
use super::translate::listeners::{INBOUND_PORT, OUTBOUND_PORT};
use super::translate::{ProxyInput, ProxyKind};
use super::xds::Mesh;
use crate::controllers::gr;
use crate::program::logs::LogBuffer;
use crate::program::{ContainerContext, Exit, Program, split_image};

/// How long Envoy may take to become ready before the container fails.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How often readiness is polled while Envoy starts.
const READY_POLL: Duration = Duration::from_millis(20);

/// Envoy's command line for a proxy (everything but the binary).
pub fn envoy_args(bootstrap: &std::path::Path) -> Vec<String> {
    [
        "-c",
        &bootstrap.display().to_string(),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        // Listener updates drain old connections at once, so a route change applies to the
        // next request rather than after Envoy's default ten minutes.
        "--drain-strategy",
        "immediate",
        "--drain-time-s",
        "1",
        // As pilot-agent starts a sidecar's Envoy (istio/istio 1.28.0 pkg/envoy/proxy.go line
        // 140): access logs reach the container log within a second, not after Envoy's
        // default ten (the suite's ISTIO_ACCESS_LOG_FLUSH relies on it).
        "--file-flush-interval-msec",
        "1000",
        "--local-address-ip-version",
        "v4",
        "--log-level",
        "warning",
        "--component-log-level",
        "misc:error",
        "--log-format",
        "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n\t%v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `GET /ready` on Envoy's admin: whether it answers 200 (LIVE).
pub async fn admin_ready(admin: SocketAddrV4) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(admin),
    )
    .await
    else {
        return false;
    };
    let req = format!("GET /ready HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut buf)).await;
    read.is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

/// Copy a child's output into the container log, line by line.
fn pump<R: AsyncRead + Unpin + Send + 'static>(
    out: R,
    log: Arc<LogBuffer>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.write(&line);
        }
    })
}

/// A started Envoy: the child and its log pumps.
pub struct EnvoyProcess {
    pub child: Child,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

impl EnvoyProcess {
    /// Start `envoy` with `bootstrap`, its output into `log`.
    pub fn spawn(
        binary: &std::path::Path,
        bootstrap: &std::path::Path,
        log: Arc<LogBuffer>,
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new(binary);
        cmd.args(envoy_args(bootstrap))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Dies with the sandbox, even on SIGKILL (Linux's parent-death signal).
        let mut child = crate::process::spawn_tied(cmd)?;
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, log));
        }
        Ok(Self { child, pumps })
    }

    /// Kill Envoy and wait until it and its output are gone.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        for p in self.pumps {
            let _ = p.await;
        }
    }
}

/// Wait until Envoy's admin says LIVE; `Err` when it exited, the limit passed or `cancel`.
pub async fn wait_ready(
    envoy: &mut EnvoyProcess,
    admin: SocketAddrV4,
    cancel: &CancellationToken,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if admin_ready(admin).await {
            return Ok(started.elapsed());
        }
        if let Ok(Some(status)) = envoy.child.try_wait() {
            return Err(format!("envoy exited before it was ready ({status})"));
        }
        if started.elapsed() > READY_LIMIT {
            return Err(format!(
                "envoy was not ready (admin {admin}/ready) within {}s",
                READY_LIMIT.as_secs()
            ));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err("stopped while starting".into()),
            _ = tokio::time::sleep(READY_POLL) => {}
        }
    }
}

/// Whether `image` is Istio's `name` image on a hub that carries the sandbox's release: one of
/// [`super::RELEASE_HUBS`], or a mirror laid out like Docker Hub's (`…/istio/<name>`, e.g.
/// `localhost:5000/istio`). Any other hub has no such image, and its pull fails as on a node.
pub fn is_istio_image(image: &str, name: &str) -> bool {
    let (repo, _) = split_image(image);
    let Some(hub) = repo.strip_suffix(name).and_then(|h| h.strip_suffix('/')) else {
        return false;
    };
    // split_image drops `docker.io/`: `istio` is docker.io/istio.
    let hub = if hub.contains('.') || hub.contains(':') || hub == "localhost" {
        hub.to_string()
    } else {
        format!("docker.io/{hub}")
    };
    super::RELEASE_HUBS.contains(&hub.as_str()) || hub.ends_with("/istio")
}

/// The `proxyv2` image: istio-init, or istio-proxy (sidecar or gateway).
pub struct ProxyProgram {
    pub mesh: Arc<Mesh>,
}

impl Program for ProxyProgram {
    fn matches(&self, image: &str) -> bool {
        is_istio_image(image, "proxyv2")
    }

    fn describe(&self) -> String {
        "<hub>/proxyv2 (any tag) on docker.io/istio or a …/istio mirror".into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        let mesh = self.mesh.clone();
        Box::pin(async move {
            let args = ctx.container.args.clone().unwrap_or_default();
            if args.first().map(String::as_str) == Some("istio-iptables") {
                ctx.log.write(
                    "happy-sandbox: traffic redirection needs no iptables here: the pod's \
                     egress and recording point send traffic to the proxy once it is ready",
                );
                return Exit::completed();
            }
            let kind = if args.get(1).map(String::as_str) == Some("router") {
                ProxyKind::Router
            } else {
                ProxyKind::Sidecar
            };
            let log = ctx.log.clone();
            match run_proxy(mesh, ctx, kind).await {
                Ok(()) => Exit::completed(),
                Err(msg) => {
                    log.write(&format!("error\t{msg}"));
                    Exit::failed(msg)
                }
            }
        })
    }
}

/// The ports of a gateway container that the recording point exposes (Envoy's own ports are
/// bound by Envoy or the agent).
fn gateway_ports(ctx: &ContainerContext) -> Vec<u16> {
    ctx.container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .filter(|p| ![ADMIN_PORT, AGENT_PORT, HEALTH_PORT, 15090].contains(p))
        .collect()
}

async fn run_proxy(mesh: Arc<Mesh>, ctx: ContainerContext, kind: ProxyKind) -> Result<(), String> {
    let ip = ctx.net.ip();
    let pod = mesh
        .store()
        .get(&gr("", "pods"), &ctx.namespace, &ctx.pod_name)
        .ok_or_else(|| format!("pod {}/{} is not in the store", ctx.namespace, ctx.pod_name))?;
    let meta = WorkloadMeta::from_pod(mesh.store(), &pod, ip);
    let dir = mesh.proxy_dir(&ctx.namespace, &ctx.pod_name);
    let input = ProxyInput {
        kind,
        labels: labels_of(&pod),
        container_ports: gateway_ports(&ctx),
        certs: super::ca::CertPaths::in_dir(&dir),
        stats_log: dir.join("stats-access.log"),
        meta: meta.clone(),
    };
    let binary = ensure_envoy().await?;
    let handle = mesh
        .register_proxy(input)
        .map_err(|e| format!("istiod cannot configure this proxy: {e}"))?;
    let result = serve(ctx, kind, &binary, &handle, meta, ip).await;
    mesh.unregister_proxy(&handle.input.meta.namespace, &handle.input.meta.pod_name);
    result
}

/// Run Envoy and the agent until the pod stops (or Envoy dies).
async fn serve(
    ctx: ContainerContext,
    kind: ProxyKind,
    binary: &std::path::Path,
    handle: &super::xds::ProxyHandle,
    meta: WorkloadMeta,
    ip: Ipv4Addr,
) -> Result<(), String> {
    let ContainerContext {
        namespace,
        pod_name,
        net,
        log,
        ready,
        cancel,
        ..
    } = ctx;
    let mut envoy = EnvoyProcess::spawn(binary, &handle.files.bootstrap, log.clone())
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let admin = SocketAddrV4::new(ip, ADMIN_PORT);
    let agent_cancel = cancel.child_token();
    let agent_log = log.clone();
    let agent = tokio::spawn({
        let agent_cancel = agent_cancel.clone();
        let stats_log = handle.input.stats_log.clone();
        async move {
            let listen = SocketAddr::V4(SocketAddrV4::new(ip, AGENT_PORT));
            if let Err(e) =
                telemetry::run_agent(listen, stats_log, SocketAddr::V4(admin), meta, agent_cancel)
                    .await
            {
                agent_log.write(&format!("error\tthe agent on {listen} stopped: {e}"));
            }
        }
    });
    let started = async {
        let took = wait_ready(&mut envoy, admin, &cancel).await?;
        tracing::debug!("proxy of {namespace}/{pod_name} ready in {took:?}");
        net.set_inbound_path(Some(Arc::new(ProxyInbound {
            pod_ip: ip,
            listener: SocketAddrV4::new(ip, INBOUND_PORT),
        })));
        match kind {
            ProxyKind::Sidecar => net.set_outbound_path(Arc::new(SidecarOutbound {
                listener: SocketAddrV4::new(ip, OUTBOUND_PORT),
            })),
            ProxyKind::Router => {
                for port in &handle.input.container_ports {
                    net.expose(*port, SocketAddr::V4(SocketAddrV4::new(ip, INBOUND_PORT)))
                        .map_err(|e| format!("cannot expose gateway port {port}: {e}"))?;
                }
            }
        }
        Ok::<(), String>(())
    }
    .await;
    let result = match started {
        Err(e) => Err(e),
        Ok(()) => {
            log.write(&format!(
                "{}\tinfo\tEnvoy proxy is ready",
                jiff::Timestamp::now()
            ));
            ready();
            tokio::select! {
                _ = cancel.cancelled() => Ok(()),
                status = envoy.child.wait() => Err(match status {
                    Ok(s) => format!("envoy exited ({s})"),
                    Err(e) => format!("envoy could not be waited for: {e}"),
                }),
            }
        }
    };
    agent_cancel.cancel();
    envoy.stop().await;
    let _ = agent.await;
    result
}

/// istiod's `pilot` image: ready at once, idle until stopped (istiod runs in the sandbox).
pub struct PilotProgram;

impl Program for PilotProgram {
    fn matches(&self, image: &str) -> bool {
        is_istio_image(image, "pilot")
    }

    fn describe(&self) -> String {
        "<hub>/pilot (any tag) on docker.io/istio or a …/istio mirror".into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        Box::pin(async move {
            ctx.log.write(&format!(
                "{}\tinfo\thappy-sandbox: istiod's work (CA, injection, xDS) runs inside the sandbox; this container only stands for it",
                jiff::Timestamp::now()
            ));
            (ctx.ready)();
            ctx.cancel.cancelled().await;
            Exit::completed()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_istio_image;

    #[test]
    fn istio_images_run_from_release_hubs_and_mirrors_only() {
        for image in [
            "docker.io/istio/proxyv2:1.31.1",
            "istio/proxyv2:1.31.1",
            "localhost:5000/istio/proxyv2:1.31.1",
        ] {
            assert!(is_istio_image(image, "proxyv2"), "{image}");
        }
        for image in [
            // Istio 1.31 is published only to docker.io/istio (see `RELEASE_HUBS`).
            "gcr.io/istio-release/proxyv2:1.31.1",
            "registry.istio.io/release/proxyv2:1.31.1",
            "docker.io/istoi/proxyv2:1.31.1",
            "docker.io/istio/pilot:1.31.1",
            "quay.io/someone/proxyv2:1.31.1",
            "proxyv2:1.31.1",
        ] {
            assert!(!is_istio_image(image, "proxyv2"), "{image}");
        }
        assert!(is_istio_image("docker.io/istio/pilot:1.31.1", "pilot"));
    }
}
