//! Diagnostics bundles: when a scenario fails, what was on the cluster — pods, events, every
//! container's log and, where there is a proxy, its Envoy config — written to a directory a
//! person (or a CI artifact upload) can read afterwards.
//!
//! Capturing must never hide the failure it documents: each part that cannot be collected is
//! written as an `.error.txt` file inside the bundle instead, and nothing here panics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use crate::cluster::{Cluster, container_names, describe_pods, sidecar_present};
use crate::error::{Error, Result};
use crate::istio::Istioctl;
use crate::istio::istioctl::proxy_config_args;

/// Name of the proxy container whose config is dumped.
const PROXY_CONTAINER: &str = "istio-proxy";

/// Writes at most `cap` bundles per run under `dir`.
#[derive(Debug)]
pub struct Diagnostics {
    dir: PathBuf,
    cap: usize,
    taken: AtomicUsize,
}

impl Diagnostics {
    /// Bundles go under `dir` (e.g. `target/happy/diagnostics`), at most `cap` of them.
    pub fn new(dir: PathBuf, cap: usize) -> Self {
        Diagnostics {
            dir,
            cap,
            taken: AtomicUsize::new(0),
        }
    }

    /// The directory bundles go under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a bundle for `scenario` covering `namespaces`; `istioctl`, if given, dumps
    /// `proxy-config all` of every meshed pod. Returns the bundle's path, or `None` once the
    /// cap is reached. Only failing to create the bundle directory itself is an error.
    pub async fn capture(
        &self,
        cluster: &Cluster,
        scenario: &str,
        namespaces: &[&str],
        istioctl: Option<&Istioctl>,
    ) -> Result<Option<PathBuf>> {
        let n = self.taken.fetch_add(1, Ordering::SeqCst);
        if n >= self.cap {
            return Ok(None);
        }
        let bundle = self.dir.join(format!("{:02}-{}", n + 1, slug(scenario)));
        tokio::fs::create_dir_all(&bundle)
            .await
            .map_err(|source| Error::Diagnostics {
                path: bundle.clone(),
                source,
            })?;
        let mut writer = BundleWriter {
            root: bundle.clone(),
        };
        writer
            .text(
                "README.txt",
                &format!(
                    "scenario: {scenario}\ncaptured: {}\nnamespaces: {}\n",
                    jiff::Timestamp::now(),
                    namespaces.join(", ")
                ),
            )
            .await;
        for ns in namespaces {
            self.capture_namespace(cluster, &mut writer, ns, istioctl)
                .await;
        }
        Ok(Some(bundle))
    }

    async fn capture_namespace(
        &self,
        cluster: &Cluster,
        writer: &mut BundleWriter,
        namespace: &str,
        istioctl: Option<&Istioctl>,
    ) {
        let limit = cluster.timeouts().request;
        let pods_api: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace);
        // All pods, terminating ones included: a pod stuck terminating may be the cause.
        let pods = match bounded(limit, pods_api.list(&ListParams::default())).await {
            Ok(list) => {
                writer
                    .json(&format!("{namespace}/pods.json"), &list.items)
                    .await;
                writer
                    .text(
                        &format!("{namespace}/pods.txt"),
                        &describe_pods(&list.items).replace(", ", "\n"),
                    )
                    .await;
                list.items
            }
            Err(e) => {
                writer
                    .error(&format!("{namespace}/pods"), &format!("listing pods: {e}"))
                    .await;
                Vec::new()
            }
        };

        let events_api: Api<Event> = Api::namespaced(cluster.client().clone(), namespace);
        match bounded(limit, events_api.list(&ListParams::default())).await {
            Ok(list) => {
                writer
                    .json(&format!("{namespace}/events.json"), &list.items)
                    .await;
                writer
                    .text(
                        &format!("{namespace}/events.txt"),
                        &events_text(&list.items),
                    )
                    .await;
            }
            Err(e) => {
                writer
                    .error(
                        &format!("{namespace}/events"),
                        &format!("listing events: {e}"),
                    )
                    .await
            }
        }

        for pod in &pods {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            for container in container_names(pod) {
                let params = LogParams {
                    container: Some(container.clone()),
                    ..LogParams::default()
                };
                let file = format!("{namespace}/logs/{name}/{container}.log");
                match bounded(limit, pods_api.logs(name, &params)).await {
                    Ok(log) => writer.text(&file, &log).await,
                    Err(e) => writer.error(&file, &format!("reading the log: {e}")).await,
                }
            }
            let meshed = pod
                .spec
                .as_ref()
                .is_some_and(|s| sidecar_present(s, PROXY_CONTAINER));
            if let (true, Some(istioctl)) = (meshed, istioctl) {
                let file = format!("{namespace}/proxy-config/{name}.json");
                match self.proxy_config(istioctl, namespace, name, limit).await {
                    Ok(json) => writer.text(&file, &json).await,
                    Err(e) => writer.error(&file, &e).await,
                }
            }
        }
    }

    /// `istioctl proxy-config all` aimed at the cluster under test: the istioctl's own
    /// `--kubeconfig`/`--context` (the cluster's private kubeconfig for kind and k3s).
    async fn proxy_config(
        &self,
        istioctl: &Istioctl,
        namespace: &str,
        pod: &str,
        limit: Duration,
    ) -> std::result::Result<String, String> {
        let args = proxy_config_args(istioctl.target(), "all", namespace, pod);
        let mut command = tokio::process::Command::new(istioctl.path());
        command
            .args(&args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        let described = format!("{} {}", istioctl.path().display(), args.join(" "));
        let output = tokio::time::timeout(limit, command.output())
            .await
            .map_err(|_| format!("{described}: no answer within {limit:?}"))?
            .map_err(|e| format!("{described}: cannot run: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{described}: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

async fn bounded<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = kube::Result<T>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Writes the files of one bundle; a file that cannot be written is noted in `ERRORS.txt`
/// at the bundle's root (best effort: there is nowhere else left to report it).
struct BundleWriter {
    root: PathBuf,
}

impl BundleWriter {
    async fn text(&mut self, relative: &str, content: &str) {
        let path = self.root.join(relative);
        let result = async {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&path, content).await
        }
        .await;
        if let Err(e) = result {
            self.note(&format!("cannot write {}: {e}\n", path.display()))
                .await;
        }
    }

    async fn json<T: serde::Serialize>(&mut self, relative: &str, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.text(relative, &text).await,
            Err(e) => {
                self.error(relative, &format!("cannot serialise: {e}"))
                    .await
            }
        }
    }

    async fn error(&mut self, relative: &str, message: &str) {
        self.text(&format!("{relative}.error.txt"), message).await;
    }

    async fn note(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let path = self.root.join("ERRORS.txt");
        if let Ok(mut f) = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
        {
            // tokio's File finishes writes in the background; flush so the note is on disk.
            let _ = f.write_all(line.as_bytes()).await;
            let _ = f.flush().await;
        }
    }
}

/// Events as lines, oldest first: `time type reason kind/name: message`.
fn events_text(events: &[Event]) -> String {
    let mut rows: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let time = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .or_else(|| {
                    e.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                })
                .unwrap_or_default();
            // An event the recorder aggregated happened `count` times (series.count for
            // events.k8s.io ones).
            let times = e
                .count
                .unwrap_or(0)
                .max(e.series.as_ref().and_then(|s| s.count).unwrap_or(0));
            let times = if times > 1 {
                format!(" (x{times})")
            } else {
                String::new()
            };
            let line = format!(
                "{time} {} {} {}/{}: {}{times}",
                e.type_.as_deref().unwrap_or("-"),
                e.reason.as_deref().unwrap_or("-"),
                e.involved_object.kind.as_deref().unwrap_or("-"),
                e.involved_object.name.as_deref().unwrap_or("-"),
                e.message.as_deref().unwrap_or("").trim()
            );
            (time, line)
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, l)| l + "\n").collect()
}

/// A file-name-safe form of a scenario name: lowercase letters, digits and single dashes.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(60).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "scenario".into()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(
            slug("C08: the ingress gateway routes to service-a"),
            "c08-the-ingress-gateway-routes-to-service-a"
        );
        assert_eq!(slug("  ///  "), "scenario");
        assert!(slug(&"x".repeat(200)).len() <= 60);
    }

    #[test]
    fn events_sorted_oldest_first() {
        let events: Vec<Event> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "b"}, "involvedObject": {"kind": "Pod", "name": "service-a-2"},
             "type": "Warning", "reason": "BackOff", "message": "Back-off pulling image",
             "lastTimestamp": "2024-05-01T10:00:05Z"},
            {"metadata": {"name": "a"}, "involvedObject": {"kind": "Pod", "name": "service-a-1"},
             "type": "Normal", "reason": "Pulled", "message": "ok", "lastTimestamp": "2024-05-01T10:00:01Z",
             "count": 3}
        ]))
        .unwrap();
        let text = events_text(&events);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("Normal Pulled Pod/service-a-1: ok (x3)"),
            "{text}"
        );
        assert!(
            lines[1].contains("Warning BackOff Pod/service-a-2: Back-off pulling image"),
            "{text}"
        );
    }

    /// A cluster whose API server refuses every connection.
    fn unreachable_cluster() -> Cluster {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let timeouts = crate::timeouts::Timeouts {
            request: Duration::from_secs(5),
            ..Default::default()
        };
        Cluster::new(client, timeouts)
    }

    #[tokio::test]
    async fn failing_parts_become_error_files_and_the_cap_holds() {
        let dir = tempfile::tempdir().unwrap();
        let diagnostics = Diagnostics::new(dir.path().join("diag"), 2);
        let cluster = unreachable_cluster();
        let first = diagnostics
            .capture(&cluster, "C01: service-a answers", &["istioinaction"], None)
            .await
            .unwrap()
            .expect("under the cap");
        assert_eq!(first, dir.path().join("diag/01-c01-service-a-answers"));
        let readme = std::fs::read_to_string(first.join("README.txt")).unwrap();
        assert!(
            readme.contains("scenario: C01: service-a answers"),
            "{readme}"
        );
        let pods_error =
            std::fs::read_to_string(first.join("istioinaction/pods.error.txt")).unwrap();
        assert!(pods_error.starts_with("listing pods:"), "{pods_error}");
        assert!(first.join("istioinaction/events.error.txt").exists());

        let second = diagnostics
            .capture(&cluster, "C02", &[], None)
            .await
            .unwrap();
        assert_eq!(second, Some(dir.path().join("diag/02-c02")));
        let third = diagnostics
            .capture(&cluster, "C03", &[], None)
            .await
            .unwrap();
        assert_eq!(third, None, "past the cap");
        assert!(!dir.path().join("diag/03-c03").exists());
    }

    #[tokio::test]
    async fn writer_records_parts_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter {
            root: dir.path().to_path_buf(),
        };
        w.text("ns/pods.txt", "a 1/1 Running").await;
        w.error("ns/events", "listing events: forbidden").await;
        // a file where a directory is needed cannot be written: noted, no panic
        w.text("ns/pods.txt/impossible.log", "x").await;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ns/pods.txt")).unwrap(),
            "a 1/1 Running"
        );
        assert!(
            std::fs::read_to_string(dir.path().join("ns/events.error.txt"))
                .unwrap()
                .contains("forbidden")
        );
        let errors = std::fs::read_to_string(dir.path().join("ERRORS.txt")).unwrap();
        assert!(errors.contains("impossible.log"), "{errors}");
    }
}
