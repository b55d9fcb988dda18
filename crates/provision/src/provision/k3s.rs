//! k3s in a container through testcontainers (Traefik disabled: the workshop's ingress is
//! Istio's; servicelb disabled: like kind, no LoadBalancer implementation), plus istioctl. The container is removed at teardown: `HAPPY_KEEP` applies to kind
//! only (testcontainers removes what it started), which a run with HAPPY_KEEP set says once.

use std::path::PathBuf;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::sync::Mutex;

use super::istio_setup::{IstioSetup, WhenInstalled};
use super::istioctl_handle::{Ending, IstioctlCluster};
use super::{Capabilities, ClusterHandle, ClusterInfo, ClusterKind, kubeconfig};
use crate::istio::KubeTarget;
use crate::settings::Settings;
use crate::timeouts::Timeouts;
use crate::{Error, Result};

/// The k3s image tag, pinned by digest: Kubernetes 1.35 like the kind node image the suite pins, inside
/// the window of every Istio minor the suite tests (the module's default, v1.28.8-k3s1, is far
/// older). The digest is the one five unrelated public scripts pin for `rancher/k3s:v1.35.5-k3s1`
/// (found with the code index; not checked against Docker Hub from here). testcontainers pulls
/// `rancher/k3s:<this>` as `fromImage`; the daemon parses it whole and pulls by the digest when
/// a reference has both (moby `daemon/server/router/image/image_routes.go`,
/// `daemon/internal/distribution/pull_v2.go`, 2026-08).
pub(crate) const K3S_TAG: &str =
    "v1.35.5-k3s1@sha256:2074403abe1bded11ef3dde09d457e13be8e0b64c218b1c4f8269b4565cfbc65";

/// The note for a k3s run with `HAPPY_KEEP` set, or None.
pub(crate) fn keep_note(keep: crate::settings::KeepPolicy) -> Option<String> {
    (keep != crate::settings::KeepPolicy::Never).then(|| {
        "HAPPY_KEEP applies to kind only: the k3s container is removed at the end of the run \
         (testcontainers removes what it started)"
            .to_string()
    })
}

/// The k3s server's arguments: the module's defaults (`server --snapshotter=native`,
/// testcontainers-modules 0.15.0 `src/k3s/mod.rs` `K3sCmd`, replaced as a whole by
/// `ImageExt::with_cmd`, testcontainers 0.27.3 `ContainerRequest::cmd`) plus two of k3s'
/// packaged components disabled (`--disable`, k3s-io/k3s `pkg/cli/cmds/server.go`; valid items
/// `coredns, servicelb, traefik, local-storage, metrics-server, runtimes`,
/// `pkg/cli/cmds/stage.go` `DisableItems`): Traefik, because the workshop's ingress is Istio's,
/// and servicelb, k3s' LoadBalancer implementation. With servicelb the ingress gateway's
/// Service gets the node's address, reachable from a Linux host, and the cluster is no longer
/// one the workshop's deviation D-ingress-address describes (kind's: no LoadBalancer
/// implementation, `crates/claims/src/deviations.rs`); without it the Service stays `<pending>` as on kind,
/// and the deviation's re-check is a real check here too.
pub fn server_args() -> Vec<String> {
    [
        "server",
        "--snapshotter=native",
        "--disable=traefik",
        "--disable=servicelb",
    ]
    .map(String::from)
    .to_vec()
}

/// How a k3s cluster ends: its container is removed, with its kubeconfig directory.
struct K3sEnding {
    container: Mutex<Option<ContainerAsync<K3s>>>,
    conf_dir: PathBuf,
    delete_limit: Duration,
}

pub(super) async fn provision(
    settings: &Settings,
    timeouts: &Timeouts,
) -> Result<Box<dyn ClusterHandle>> {
    let keep_note = keep_note(settings.keep);
    if let Some(note) = &keep_note {
        eprintln!("happy-istio: {note}");
    }
    let conf_dir = settings
        .cache_dir
        .join("k3s")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&conf_dir).map_err(|source| Error::LocalIo {
        action: "create k3s config directory".into(),
        path: conf_dir.clone(),
        source,
    })?;
    let kubeconfig_path = conf_dir.join("kubeconfig-host.yaml");
    let target = KubeTarget {
        kubeconfig: Some(kubeconfig_path.clone()),
        context: Some("default".into()),
    };
    let image = K3s::default()
        .with_conf_mount(&conf_dir)
        .with_cmd(server_args())
        .with_tag(K3S_TAG)
        .with_privileged(true)
        .with_userns_mode("host")
        .with_startup_timeout(timeouts.cluster_create);
    let start = async {
        image.start().await.map_err(|e| {
            let text = e.to_string();
            let hint = super::kind::pull_hint(&text)
                .map(|h| format!("; likely cause: {h}"))
                .unwrap_or_default();
            Error::Provision {
                cluster: "k3s cluster".into(),
                reason: format!("the k3s container ({K3S_TAG}) did not start: {text}{hint}"),
            }
        })
    };
    let prepare = IstioSetup::prepare(
        settings,
        timeouts,
        target,
        WhenInstalled::ReplaceIfOtherVersion,
        false,
    );
    let (container, istio) = tokio::join!(start, prepare);
    let container = container?;
    let finish = async {
        let istio = istio?;
        let port = container
            .get_host_port_ipv4(KUBE_SECURE_PORT)
            .await
            .map_err(|e| Error::Provision {
                cluster: "k3s cluster".into(),
                reason: format!("no host port for the API server: {e}"),
            })?;
        let raw = container
            .image()
            .read_kube_config()
            .map_err(|source| Error::LocalIo {
                action: "read the k3s kubeconfig".into(),
                path: conf_dir.join("k3s.yaml"),
                source,
            })?;
        let what = format!("k3s container {}", container.id());
        let text = kubeconfig::with_server(&raw, &format!("https://127.0.0.1:{port}"), &what)?;
        kubeconfig::write_private(&kubeconfig_path, &text)?;
        let client = kubeconfig::client_from_yaml(&text, Some("default"), &what).await?;
        let kubernetes_version = super::kubernetes_version(&client).await?;
        Ok::<_, Error>((istio, client, kubernetes_version))
    };
    match finish.await {
        Ok((istio, client, kubernetes_version)) => Ok(Box::new(IstioctlCluster {
            info: ClusterInfo {
                kind: ClusterKind::K3s,
                name: container.id().chars().take(12).collect(),
                note: Some(
                    [
                        Some(format!("k3s image rancher/k3s:{K3S_TAG}")),
                        Some(window_line(istio.istioctl().version(), &kubernetes_version)),
                        keep_note,
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; "),
                ),
                kubernetes_version,
            },
            client,
            capabilities: Capabilities::all(),
            istio,
            ending: Box::new(K3sEnding {
                container: Mutex::new(Some(container)),
                conf_dir,
                delete_limit: timeouts.delete,
            }),
        })),
        Err(e) => {
            let _ = container.rm().await;
            let _ = std::fs::remove_dir_all(&conf_dir);
            Err(e)
        }
    }
}

/// The Kubernetes window verdict for the report (preflight already refused an outside pair of
/// a pinned or exact ISTIO_VERSION; `latest`/`dev` are judged here, after resolving).
fn window_line(istio: &crate::istio::IstioVersion, kubernetes_version: &str) -> String {
    use crate::istio::support_window::{check, describe, parse_kube_minor};
    match parse_kube_minor(kubernetes_version) {
        Some(kube) => {
            let support = check(istio, kube);
            let line = describe(istio, kube, &support);
            if !matches!(support, crate::istio::support_window::Support::Supported(_)) {
                eprintln!("happy-istio: WARNING: {line}");
            }
            line
        }
        None => format!("Kubernetes {kubernetes_version:?}: support by Istio {istio} unknown"),
    }
}

impl Ending for K3sEnding {
    fn end(self: Box<Self>, _any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async move {
            let container = self.container.lock().await.take();
            let removed = match container {
                Some(container) => {
                    let id = container.id().to_string();
                    let cluster = format!("k3s container {id}");
                    // Not `?`: the kubeconfig directory goes whatever happens to the container.
                    match tokio::time::timeout(self.delete_limit, container.rm()).await {
                        Err(_) => Err(Error::Provision {
                            cluster,
                            reason: format!(
                                "it was not removed within {:?} (HAPPY_TIMEOUT_DELETE)",
                                self.delete_limit
                            ),
                        }),
                        Ok(Err(e)) => Err(Error::Provision {
                            cluster,
                            reason: format!("it could not be removed: {e}"),
                        }),
                        Ok(Ok(())) => Ok(()),
                    }
                }
                None => Ok(()),
            };
            let _ = std::fs::remove_dir_all(&self.conf_dir);
            removed
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_k3s_image_is_kubernetes_1_35_pinned_by_digest() {
        assert!(K3S_TAG.starts_with("v1.35."));
        let digest = K3S_TAG.split_once("@sha256:").unwrap().1;
        assert_eq!(digest.len(), 64);
        assert_eq!(
            crate::istio::support_window::parse_kube_minor(K3S_TAG),
            Some((1, 35))
        );
    }

    #[test]
    fn keep_is_said_to_be_kind_only() {
        use crate::settings::KeepPolicy;
        assert_eq!(keep_note(KeepPolicy::Never), None);
        assert!(
            keep_note(KeepPolicy::OnFailure)
                .unwrap()
                .contains("kind only")
        );
    }

    #[test]
    fn traefik_and_servicelb_are_disabled() {
        let args = server_args();
        assert_eq!(args[0], "server");
        assert!(args.contains(&"--disable=traefik".to_string()));
        // No LoadBalancer implementation, as on kind (so D-ingress-address holds here too).
        assert!(args.contains(&"--disable=servicelb".to_string()));
        assert!(
            crate::deviations::rechecks_not_applicable(super::super::ClusterKind::K3s).is_empty(),
            "with servicelb off the D-ingress-address re-check is a real check on k3s"
        );
    }
}
