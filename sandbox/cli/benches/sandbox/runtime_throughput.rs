//! Benchmark of the sandbox runtime with the workshop's pods: requests per second through a
//! port-forward to service-a (which calls service-b and service-c through its egress), and the
//! process's resident memory. Targets: ≥ 1,000 req/s on 2 cores, < 150 MiB RSS.
//!
//! Run: `cargo bench -p happy-sandbox-cli --bench sandbox -- runtime_throughput` (env BENCH_SECS,
//! BENCH_CLIENTS).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::runtime_support::{CURL_IMAGE, Cluster, NS, simple_pod};
use bytes::Bytes;
use happy_sandbox::cri::Runtime;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn one_request(rt: &happy_sandbox::runtime::LocalRuntime) -> Result<u16, String> {
    let stream = rt
        .port_forward(NS, "service-a-1", 8080)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "localhost:8080")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

pub(crate) fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let before = rss_mib();
        let mut c = Cluster::workshop().await;
        c.run(&simple_pod("default", "legacy", CURL_IMAGE));
        c.wait_ready("legacy").await;
        let idle = rss_mib();

        let secs = env_or("BENCH_SECS", 5);
        let clients = env_or("BENCH_CLIENTS", 8);
        let ok = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        // Warm-up, so first-connection costs do not count.
        for _ in 0..50 {
            one_request(&c.rt).await.expect("warm-up request");
        }
        let cpu_start = cpu_seconds();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let rt = c.rt.clone();
            let (ok, bad) = (ok.clone(), bad.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    match one_request(&rt).await {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => bad.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_start;
        let ok = ok.load(Ordering::Relaxed);
        let bad = bad.load(Ordering::Relaxed);
        let loaded = rss_mib();
        println!("workshop pods: service-a, service-b, service-c-v1, legacy");
        println!(
            "requests through port-forward to service-a (a → b, c): {ok} ok, {bad} failed in {elapsed:.1}s with {clients} clients = {:.0} req/s (target ≥ 1000)",
            ok as f64 / elapsed
        );
        // The whole sandbox (clients included) runs in this process, so CPU time per request
        // tells what two otherwise idle cores could sustain, whatever else the machine runs.
        println!(
            "CPU: {cpu:.1} s for {ok} requests = {:.2} ms/request → about {:.0} req/s on 2 idle cores",
            cpu * 1000.0 / ok as f64,
            2.0 * ok as f64 / cpu
        );
        println!(
            "RSS: {before:.1} MiB before, {idle:.1} MiB with the pods idle, {loaded:.1} MiB after the load (target < 150 MiB)"
        );
        c.rt.shutdown().await;
        assert_eq!(bad, 0, "failed requests during the benchmark");
    });
}
