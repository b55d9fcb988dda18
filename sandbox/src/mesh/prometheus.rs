//! The Prometheus addon (`samples/addons/prometheus.yaml`): the Kubernetes objects, and the
//! program that stands in for the `prom/prometheus` image — a real `prometheus` process (the
//! Debian package) scraping every pod annotated `prometheus.io/scrape: "true"` at
//! `prometheus.io/port` + `prometheus.io/path`, as the addon's `kubernetes-pods` job does.
//!
//! Instead of Kubernetes service discovery, the program keeps a file_sd target file current
//! from the store's pods (rewritten on every pod event, no timer); target labels follow the
//! addon's relabelling (`namespace`, `pod`, the pod's labels) and `honor_labels` keeps Istio's
//! own labels on the stored series. Scrapes run every second by default so the suite sees
//! data quickly; `HAPPY_SANDBOX_SCRAPE_INTERVAL` sets the interval (e.g. `15s`, the real
//! addon's) for runs that must see reality's timing.
//! Prometheus listens on an internal address that the pod's port 9090 forwards to, so
//! port-forward and the Service reach it like any pod port; its storage is a temporary
//! directory removed when it stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast::error::RecvError;

use super::telemetry::admin_call;
use crate::controllers::gr;
use crate::program::logs::LogBuffer;
use crate::program::{ContainerContext, Exit, Program, split_image};
use crate::store::Store;

/// The addon's namespace.
const NAMESPACE: &str = "istio-system";
/// The image of the addon (Istio's samples pin a v2 or v3 release; the sandbox runs whatever the
/// host's package is).
pub const IMAGE: &str = "prom/prometheus:v2.54.1";
/// Prometheus's port.
pub const PORT: u16 = 9090;
/// The variable that sets how often the sandbox's Prometheus scrapes (`15s`, `500ms`, `1m`).
pub const SCRAPE_INTERVAL_ENV: &str = "HAPPY_SANDBOX_SCRAPE_INTERVAL";
/// The sandbox's default scrape interval: short, so what the suite just sent shows up quickly.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// The real addon's scrape interval and timeout: istio/istio `samples/addons/prometheus.yaml`
/// (1.28.0, 1.30.3, 1.31.0-rc.0), `global: scrape_interval: 15s, scrape_timeout: 10s`.
pub const ADDON_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// See [`ADDON_SCRAPE_INTERVAL`].
pub const ADDON_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// A scrape interval as written in `HAPPY_SANDBOX_SCRAPE_INTERVAL`: a whole number with `ms`,
/// `s` or `m` (Prometheus's own duration units), at least 100 ms.
pub fn parse_scrape_interval(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| format!("{SCRAPE_INTERVAL_ENV}={:?}: {e}", text.trim()))
}

/// A whole number with `ms`, `s` or `m`, at least 100 ms (the sandbox's duration settings).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || "expected a duration such as 15s, 500ms or 1m (at least 100ms)".to_string();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .ok_or_else(bad)?;
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(bad()),
    };
    if d < Duration::from_millis(100) {
        return Err(bad());
    }
    Ok(d)
}

/// The scrape interval the environment asks for, or the sandbox's default.
pub fn scrape_interval_from_env() -> Result<Duration, String> {
    match std::env::var(SCRAPE_INTERVAL_ENV) {
        Ok(v) if !v.trim().is_empty() => parse_scrape_interval(&v),
        _ => Ok(DEFAULT_SCRAPE_INTERVAL),
    }
}

/// A duration in Prometheus's configuration syntax.
fn prometheus_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
/// How long Prometheus may take to answer `/-/ready` after it starts.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// Between two readiness checks while starting.
const READY_POLL: Duration = Duration::from_millis(100);

/// Where the host's prometheus is: `/usr/bin/prometheus`, else the first on PATH.
pub fn find_prometheus() -> Option<PathBuf> {
    let usual = Path::new("/usr/bin/prometheus");
    if usual.is_file() {
        return Some(usual.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

/// Why Prometheus cannot run here (binary missing), if it cannot.
pub fn unavailable_reason() -> Option<String> {
    match find_prometheus() {
        Some(_) => None,
        None => Some(
            "the prometheus binary is not installed on this host (looked for /usr/bin/prometheus \
             and on PATH); install Debian's package: apt-get install -y prometheus"
                .into(),
        ),
    }
}

fn addon_labels() -> Value {
    json!({
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/instance": "prometheus",
        "app.kubernetes.io/component": "server",
        "app": "prometheus",
        "component": "server"
    })
}

/// The Kubernetes objects of the addon (Deployment `prometheus` in istio-system with image
/// `prom/prometheus:v2.x`, Service `prometheus` port 9090, ServiceAccount), as JSON.
pub fn addon_objects() -> Vec<Value> {
    let selector = json!({
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/instance": "prometheus",
        "app.kubernetes.io/component": "server"
    });
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "prometheus", "namespace": NAMESPACE, "labels": addon_labels()}
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "prometheus", "namespace": NAMESPACE, "labels": addon_labels()},
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": PORT, "protocol": "TCP", "targetPort": PORT}]
            }
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "prometheus", "namespace": NAMESPACE, "labels": addon_labels()},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": addon_labels(),
                        "annotations": {"sidecar.istio.io/inject": "false"}
                    },
                    "spec": {
                        "serviceAccountName": "prometheus",
                        "containers": [{
                            "name": "prometheus-server",
                            "image": IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                "--storage.tsdb.retention.time=15d",
                                "--config.file=/etc/config/prometheus.yml",
                                "--storage.tsdb.path=/data",
                                "--web.enable-lifecycle"
                            ],
                            "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/-/ready", "port": PORT, "scheme": "HTTP"},
                                "periodSeconds": 1,
                                "timeoutSeconds": 4,
                                "failureThreshold": 3,
                                "successThreshold": 1
                            }
                        }]
                    }
                }
            }
        }),
    ]
}

/// A label name as Prometheus's `labelmap` would make it (invalid characters → `_`).
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The file_sd content for `pods`: every Running pod with an address and
/// `prometheus.io/scrape: "true"`, at its `prometheus.io/port` and `prometheus.io/path` (else
/// `/metrics`). Pods without a port annotation are left out (Kubernetes SD would guess from the
/// container ports; every pod the mesh annotates has one).
pub fn file_sd_targets(pods: &[Value]) -> Value {
    let mut groups: Vec<(String, Value)> = Vec::new();
    for pod in pods {
        let meta = &pod["metadata"];
        let annotations = &meta["annotations"];
        if annotations["prometheus.io/scrape"].as_str() != Some("true") {
            continue;
        }
        if pod["status"]["phase"].as_str() != Some("Running") {
            continue;
        }
        let Some(ip) = pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        let Some(port) = annotations["prometheus.io/port"]
            .as_str()
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let path = annotations["prometheus.io/path"]
            .as_str()
            .unwrap_or("/metrics");
        let namespace = meta["namespace"].as_str().unwrap_or_default();
        let name = meta["name"].as_str().unwrap_or_default();
        let mut labels = BTreeMap::new();
        for (k, v) in meta["labels"].as_object().into_iter().flatten() {
            if let Some(v) = v.as_str() {
                labels.insert(label_name(k), v.to_string());
            }
        }
        labels.insert("__metrics_path__".into(), path.to_string());
        labels.insert("namespace".into(), namespace.to_string());
        labels.insert("pod".into(), name.to_string());
        groups.push((
            format!("{namespace}/{name}"),
            json!({"targets": [format!("{ip}:{port}")], "labels": labels}),
        ));
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(groups.into_iter().map(|(_, g)| g).collect())
}

/// The Prometheus configuration: one job over the file_sd targets at `targets`, scraped every
/// `interval` (with the addon's 10 s timeout, or the interval when shorter: Prometheus refuses
/// a timeout longer than the interval).
pub fn config(targets: &Path, interval: Duration) -> Value {
    let timeout = interval.min(ADDON_SCRAPE_TIMEOUT);
    json!({
        "global": {
            "scrape_interval": prometheus_duration(interval),
            "scrape_timeout": prometheus_duration(timeout),
            "evaluation_interval": prometheus_duration(interval)
        },
        "scrape_configs": [{
            "job_name": "kubernetes-pods",
            "honor_labels": true,
            "file_sd_configs": [{"files": [targets.to_string_lossy()], "refresh_interval": "5s"}]
        }]
    })
}

/// Write `value` to `path` atomically (Prometheus must never read half a file).
fn write_atomically(path: &Path, value: &Value) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// Keep `path` equal to the targets of the store's pods until the store's channel closes.
async fn keep_targets(store: Arc<Store>, path: PathBuf, log: Arc<LogBuffer>) {
    let pods_gr = gr("", "pods");
    let (items, _, mut events) = store.list_and_subscribe(&pods_gr);
    let mut current = file_sd_targets(&items);
    if let Err(e) = write_atomically(&path, &current) {
        log.write(&format!("writing targets {}: {e}", path.display()));
    }
    loop {
        match events.recv().await {
            Ok(event) if event.resource != pods_gr => continue,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        let (pods, _) = store.list(&pods_gr, None);
        let wanted = file_sd_targets(&pods);
        if wanted != current {
            if let Err(e) = write_atomically(&path, &wanted) {
                log.write(&format!("writing targets {}: {e}", path.display()));
            }
            current = wanted;
        }
    }
}

/// The runtime program for the prom/prometheus image.
struct PrometheusProgram {
    store: Arc<Store>,
    /// A fixed scrape interval, or `None` to read [`SCRAPE_INTERVAL_ENV`] at each start.
    interval: Option<Duration>,
}

/// The runtime program for the prom/prometheus image: a real `prometheus` process (Debian
/// package) behind the pod's port 9090, scraping every pod annotated prometheus.io/scrape=true
/// at prometheus.io/port + prometheus.io/path (file_sd kept current from the store's pods),
/// every [`SCRAPE_INTERVAL_ENV`] (default [`DEFAULT_SCRAPE_INTERVAL`]).
pub fn program(store: Arc<Store>) -> Arc<dyn Program> {
    Arc::new(PrometheusProgram {
        store,
        interval: None,
    })
}

/// The same program with a fixed scrape interval (tests).
pub fn program_with_interval(store: Arc<Store>, interval: Duration) -> Arc<dyn Program> {
    Arc::new(PrometheusProgram {
        store,
        interval: Some(interval),
    })
}

impl Program for PrometheusProgram {
    fn matches(&self, image: &str) -> bool {
        split_image(image).0 == "prom/prometheus"
    }

    fn describe(&self) -> String {
        "prom/prometheus (any tag)".into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        let store = self.store.clone();
        let interval = self.interval.map_or_else(scrape_interval_from_env, Ok);
        Box::pin(async move {
            let interval = match interval {
                Ok(i) => i,
                Err(e) => return failed(&ctx.log, format!("prometheus: {e}")),
            };
            let work = match WorkDir::create(&ctx.namespace, &ctx.pod_name) {
                Ok(w) => w,
                Err(e) => return failed(&ctx.log, format!("prometheus: {e}")),
            };
            let exit = run_prometheus(store, ctx, &work.0, interval).await;
            drop(work);
            exit
        })
    }
}

fn failed(log: &LogBuffer, message: String) -> Exit {
    log.write(&message);
    Exit::failed(message)
}

/// A temporary directory removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(namespace: &str, pod: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "happy-sandbox-prometheus-{namespace}-{pod}-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("data"))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1 for Prometheus's internal listener.
fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn run_prometheus(
    store: Arc<Store>,
    ctx: ContainerContext,
    dir: &Path,
    interval: Duration,
) -> Exit {
    let Some(binary) = find_prometheus() else {
        let reason = unavailable_reason().unwrap_or_default();
        return failed(
            &ctx.log,
            format!("container {:?}: {reason}", ctx.container.name),
        );
    };
    let targets = dir.join("targets.json");
    let config_path = dir.join("prometheus.yml");
    if let Err(e) = write_atomically(&targets, &json!([]))
        .and_then(|()| write_atomically(&config_path, &config(&targets, interval)))
    {
        return failed(
            &ctx.log,
            format!(
                "prometheus: writing its configuration in {}: {e}",
                dir.display()
            ),
        );
    }
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            return failed(
                &ctx.log,
                format!("prometheus: no free port on 127.0.0.1: {e}"),
            );
        }
    };
    let internal = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={internal}"))
        .arg("--storage.tsdb.retention.time=1d")
        .arg("--log.level=warn")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Dies with the sandbox, even on SIGKILL (Linux's parent-death signal).
    let mut child = match crate::process::spawn_tied(cmd) {
        Ok(c) => c,
        Err(e) => {
            return failed(
                &ctx.log,
                format!("prometheus: starting {}: {e}", binary.display()),
            );
        }
    };
    // Its log lines are the container's log.
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>),
        child
            .stderr
            .take()
            .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>),
    ]
    .into_iter()
    .flatten()
    {
        let log = ctx.log.clone();
        ctx.net.tracker().spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log.write(&line);
            }
        });
    }
    let targets_task = {
        let log = ctx.log.clone();
        let cancel = ctx.cancel.clone();
        ctx.net.tracker().spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = keep_targets(store, targets, log) => {}
            }
        })
    };
    if let Err(e) = ctx.net.expose(PORT, internal) {
        targets_task.abort();
        let _ = child.kill().await;
        return failed(&ctx.log, format!("prometheus: {e}"));
    }

    // Ready once /-/ready answers 200 (polled while it starts, bounded); then wait for the
    // process to end or the pod to stop.
    let mut ready = Some(ctx.ready);
    let deadline = Instant::now() + READY_LIMIT;
    let status = loop {
        if ready.is_some() {
            if let Ok((200, _)) = admin_call(internal, Method::GET, "/-/ready").await {
                if let Some(r) = ready.take() {
                    r();
                }
            } else if Instant::now() > deadline {
                // Stay not ready and keep running, so its log explains why.
                ctx.log.write(&format!(
                    "prometheus did not answer /-/ready on {internal} within {READY_LIMIT:?}"
                ));
                ready = None;
            }
        }
        let poll = ready.is_some();
        tokio::select! {
            s = child.wait() => break Some(s),
            _ = ctx.cancel.cancelled() => break None,
            _ = tokio::time::sleep(READY_POLL), if poll => {}
        }
    };
    ctx.net.close_port(PORT);
    targets_task.abort();
    match status {
        None => {
            let _ = child.kill().await;
            Exit::completed()
        }
        Some(Ok(s)) if s.success() => Exit::completed(),
        Some(Ok(s)) => failed(&ctx.log, format!("prometheus exited with {s}")),
        Some(Err(e)) => failed(&ctx.log, format!("prometheus: waiting for it: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ip: &str, scrape: bool) -> Value {
        let mut annotations = json!({});
        if scrape {
            annotations = json!({
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "15020",
                "prometheus.io/path": "/stats/prometheus"
            });
        }
        json!({
            "metadata": {"name": name, "namespace": "istioinaction",
                         "labels": {"app": "service-a", "security.istio.io/tlsMode": "istio"},
                         "annotations": annotations},
            "status": {"phase": phase, "podIP": ip}
        })
    }

    #[test]
    fn targets_are_running_annotated_pods() {
        let pods = vec![
            pod("b", "Running", "127.1.0.5", true),
            pod("a", "Running", "127.1.0.4", true),
            pod("pending", "Pending", "", true),
            pod("plain", "Running", "127.1.0.6", false),
        ];
        let t = file_sd_targets(&pods);
        let groups = t.as_array().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0]["targets"][0], "127.1.0.4:15020");
        assert_eq!(groups[0]["labels"]["__metrics_path__"], "/stats/prometheus");
        assert_eq!(groups[0]["labels"]["pod"], "a");
        assert_eq!(groups[0]["labels"]["namespace"], "istioinaction");
        assert_eq!(groups[0]["labels"]["security_istio_io_tlsMode"], "istio");
        assert_eq!(groups[1]["targets"][0], "127.1.0.5:15020");
    }

    #[test]
    fn scrape_intervals_parse_and_bad_ones_name_the_variable() {
        assert_eq!(parse_scrape_interval("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(
            parse_scrape_interval(" 500ms "),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_scrape_interval("1m"), Ok(Duration::from_secs(60)));
        for bad in ["", "15", "fast", "10ms", "1.5s", "-1s"] {
            let e = parse_scrape_interval(bad).unwrap_err();
            assert!(e.contains(SCRAPE_INTERVAL_ENV), "{e}");
        }
        let real = config(Path::new("/t.json"), ADDON_SCRAPE_INTERVAL);
        assert_eq!(real["global"]["scrape_interval"], "15s");
        assert_eq!(real["global"]["scrape_timeout"], "10s");
        let fast = config(Path::new("/t.json"), Duration::from_millis(500));
        assert_eq!(fast["global"]["scrape_interval"], "500ms");
        assert_eq!(fast["global"]["scrape_timeout"], "500ms");
    }

    #[test]
    fn config_scrapes_often_and_honors_istios_labels() {
        let c = config(Path::new("/tmp/x/targets.json"), DEFAULT_SCRAPE_INTERVAL);
        assert_eq!(c["global"]["scrape_interval"], "1s");
        assert_eq!(c["scrape_configs"][0]["honor_labels"], true);
        assert_eq!(
            c["scrape_configs"][0]["file_sd_configs"][0]["files"][0],
            "/tmp/x/targets.json"
        );
    }

    #[test]
    fn addon_objects_match_the_program() {
        let objs = addon_objects();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ServiceAccount", "Service", "Deployment"]);
        let image = objs[2]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap();
        assert!(program(Arc::new(Store::new())).matches(image));
        assert!(image.starts_with("prom/prometheus:v2."));
        assert_eq!(objs[1]["spec"]["ports"][0]["port"], 9090);
        let sel = objs[1]["spec"]["selector"].as_object().unwrap();
        let labels = &objs[2]["spec"]["template"]["metadata"]["labels"];
        assert!(sel.iter().all(|(k, v)| &labels[k] == v));
        assert_eq!(label_name("9a.b/c-d"), "_9a_b_c_d");
    }
}
