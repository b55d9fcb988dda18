//! The Prometheus addon end to end: the real `prometheus` process, started by the sandbox's
//! program for the prom/prometheus image, finds an annotated pod in the store, scrapes it and
//! answers `/api/v1/query` with the scraped series and Istio's labels intact.

use crate::pod_addresses;
use std::sync::Arc;
use std::time::{Duration, Instant};

use happy_sandbox::controllers::gr;
use happy_sandbox::mesh::prometheus;
use happy_sandbox::net::Network;
use happy_sandbox::program::ContainerContext;
use happy_sandbox::program::logs::LogBuffer;
use happy_sandbox::store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const METRICS: &str = "# TYPE istio_requests_total counter\n\
istio_requests_total{reporter=\"source\",source_workload=\"fake-source\",destination_service_name=\"service-c\",response_code=\"500\"} 7\n";

/// A minimal HTTP server answering every request with the metrics above.
async fn serve_metrics(listener: TcpListener, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{METRICS}",
                METRICS.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// GET `path` from `addr`; the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text))
}

/// A running addon: Prometheus scraping one fake annotated pod.
struct Running {
    network: Arc<Network>,
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
    run: tokio::task::JoinHandle<happy_sandbox::program::Exit>,
}

/// Start the fake target and Prometheus (scraping every `interval`) in pod `pod` (one name per
/// test: tests run in parallel), as the runtime would start the addon's container; returns
/// once Prometheus is ready.
async fn start(interval: Duration, pod: &str) -> Running {
    if let Some(reason) = prometheus::unavailable_reason() {
        panic!("this test needs the real Prometheus: {reason}");
    }
    let network = Network::new().expect("the sandbox network");
    let store = Arc::new(Store::new());

    // The target: a pod whose :15020 serves Istio-style metrics.
    let target = network.create_pod("istioinaction", "fake").unwrap();
    let cancel = CancellationToken::new();
    let listener = TcpListener::bind((target.ip(), 15020)).await.unwrap();
    tokio::spawn(serve_metrics(listener, cancel.clone()));
    store
        .create(
            &gr("", "pods"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "fake", "namespace": "istioinaction",
                             "labels": {"app": "fake"},
                             "annotations": {"prometheus.io/scrape": "true",
                                             "prometheus.io/port": "15020",
                                             "prometheus.io/path": "/stats/prometheus"}},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
                "status": {"phase": "Running", "podIP": target.ip().to_string()}
            }),
        )
        .unwrap();

    // Prometheus itself, as the runtime would start the addon's container.
    let objects = prometheus::addon_objects();
    let container: k8s_openapi::api::core::v1::Container =
        serde_json::from_value(objects[2]["spec"]["template"]["spec"]["containers"][0].clone())
            .unwrap();
    let net = network.create_pod("istio-system", pod).unwrap();
    let log = LogBuffer::new(1000);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let program = prometheus::program_with_interval(store.clone(), interval);
    let ctx = ContainerContext {
        namespace: "istio-system".into(),
        pod_name: pod.into(),
        container,
        env: Vec::new(),
        net: net.clone(),
        log: log.clone(),
        ready: Box::new(move || {
            let _ = ready_tx.send(());
        }),
        cancel: cancel.clone(),
    };
    let run = tokio::spawn(program.run(ctx));
    tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .expect("prometheus became ready within 60 s")
        .expect("prometheus reported ready");
    // Through the pod's port 9090, as port-forward and the Service reach it.
    let addr = std::net::SocketAddr::from((net.ip(), prometheus::PORT));
    Running {
        network,
        addr,
        cancel,
        run,
    }
}

/// Query until the answer has a result, within `limit`; the parsed answer.
async fn query_until_found(addr: std::net::SocketAddr, query: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let body = get(addr, query).await.unwrap_or_default();
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if parsed["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return parsed;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus shows no scraped series within {limit:?}; last answer: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_annotated_pods_and_keeps_istios_labels() {
    let _pods = pod_addresses::shared().await;
    // The process id in the pod's name, so that the storage check below sees only this run's
    // directory, not one of the same test running at the same time in another process.
    let pod = format!("prometheus-test-{}", std::process::id());
    let Running {
        network,
        addr,
        cancel,
        run,
    } = start(prometheus::DEFAULT_SCRAPE_INTERVAL, &pod).await;
    let query = "/api/v1/query?query=istio_requests_total%7Bsource_workload%3D%22fake-source%22%7D";
    let result = query_until_found(addr, query, Duration::from_secs(30)).await;
    let sample = &result["data"]["result"][0];
    let metric = &sample["metric"];
    assert_eq!(metric["__name__"], "istio_requests_total");
    assert_eq!(metric["reporter"], "source");
    assert_eq!(metric["destination_service_name"], "service-c");
    assert_eq!(metric["response_code"], "500");
    assert_eq!(metric["namespace"], "istioinaction");
    assert_eq!(metric["pod"], "fake");
    assert_eq!(sample["value"][1], "7");

    // Stopping the pod stops the process and removes its storage.
    cancel.cancel();
    let exit = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("prometheus stopped within 30 s")
        .unwrap();
    assert_eq!(exit.code, 0, "{exit:?}");
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("happy-sandbox-prometheus-istio-system-{pod}-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "storage left behind: {leftovers:?}");
    network.shutdown().await;
}

/// With the real addon's timing (`scrape_interval: 15s`, `scrape_timeout: 10s`), the target is
/// scraped at that interval: Prometheus reports it for the target, and two samples of the
/// series lie one interval apart. (Slow by nature: about half a minute.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_at_the_addons_15s_interval_when_asked() {
    let _pods = pod_addresses::shared().await;
    let Running {
        network,
        addr,
        cancel,
        run,
    } = start(prometheus::ADDON_SCRAPE_INTERVAL, "prometheus-15s").await;
    let targets: Value =
        serde_json::from_str(&get(addr, "/api/v1/targets").await.unwrap()).unwrap();
    let active = &targets["data"]["activeTargets"];
    // The file_sd target may need a moment to be read; the configuration is what matters here.
    let config: Value =
        serde_json::from_str(&get(addr, "/api/v1/status/config").await.unwrap()).unwrap();
    let yaml = config["data"]["yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("scrape_interval: 15s"), "{yaml}");
    assert!(yaml.contains("scrape_timeout: 10s"), "{yaml}");
    // Two samples, 15 s apart: a range query over the last 40 s once the second one exists.
    let query = "/api/v1/query?query=count_over_time(istio_requests_total%7Bsource_workload%3D%22fake-source%22%7D%5B40s%5D)%20%3E%3D%202";
    let _ = query_until_found(addr, query, Duration::from_secs(60)).await;
    let samples = "/api/v1/query?query=istio_requests_total%7Bsource_workload%3D%22fake-source%22%7D%5B40s%5D";
    let body: Value = serde_json::from_str(&get(addr, samples).await.unwrap()).unwrap();
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .clone();
    let times: Vec<f64> = values.iter().map(|v| v[0].as_f64().unwrap()).collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (14.0..=16.0).contains(&gap),
            "samples {gap} s apart, not 15: {times:?} ({active})"
        );
    }
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    network.shutdown().await;
}
