//! Istio on a real cluster (kind, k3s, existing): the version to use, its release in the
//! cache, the hub its images come from, `istioctl install` once per run (a failure included:
//! later callers get the first error at once), readiness of istiod and both gateways, and the
//! ingress gateway's fixed NodePort that a kind host port (`HAPPY_KIND_HOST_PORT`) publishes.
//!
//! While istioctl waits for the control plane, the suite watches the control plane's pods
//! itself: istioctl polls until its readiness timeout whatever the pods say
//! (istio/istio@1.30.3 `operator/pkg/install/wait.go:60`,
//! `wait.PollUntilContextTimeout(..., waitTimeout, ...)`), so a pod that can never start (an
//! image that does not exist on the hub) would otherwise cost the whole limit. The watch judges
//! pods with [`crate::cluster::pod_failure`], the same verdict every other wait uses; the
//! sandbox's install goes through the same wait ([`install_watching`], [`wait_control_plane`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use super::IstioInstall;
use super::once::Once;
use crate::cluster::{Cluster, PodFailure, pod_failure_within, pull_retrying};
use crate::download::Downloader;
use crate::error::FailureClass;
use crate::istio::IstioVersion;
use crate::istio::artifacts::{CachedRelease, Platform};
use crate::istio::hub::{HubOrigin, IstioHub, image_hub};
use crate::istio::istioctl::{Istioctl, KubeTarget, ensure_release};
use crate::istio::releases;
use crate::settings::{IstioVersionRequest, Settings};
use crate::timeouts::Timeouts;
use crate::{Error, Result};

/// Istio's namespace.
pub(crate) const ISTIO_NAMESPACE: &str = "istio-system";
/// The NodePort a kind host port (`HAPPY_KIND_HOST_PORT`) publishes.
pub(crate) const INGRESS_NODE_PORT: i32 = 30080;

/// Pods that must be Ready after the install (claim C05), by label selector.
pub(crate) const CONTROL_PLANE_SELECTORS: [(&str, &str); 3] = [
    ("istiod", "app=istiod"),
    ("ingress gateway", "app=istio-ingressgateway"),
    (EGRESS_GATEWAY, "app=istio-egressgateway"),
];

/// The entry of [`CONTROL_PLANE_SELECTORS`] only the demo profile installs
/// (istio/istio `manifests/profiles/demo.yaml`: `egressGateways: [{name: istio-egressgateway,
/// enabled: true}]`; the default and minimal profiles and Helm installs have none).
pub(crate) const EGRESS_GATEWAY: &str = "egress gateway";

/// The reason a kept install without an egress gateway gives for the scenarios needing one.
pub(crate) fn egress_missing_reason(found: &str) -> String {
    format!(
        "the Istio {found} already installed has no egress gateway (app=istio-egressgateway in istio-system); only the demo profile installs one, and an existing install is left as it is"
    )
}

/// What to do when istiod is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenInstalled {
    /// Leave any Istio that is there alone (an `existing` cluster is not ours to change).
    Keep,
    /// Keep it when it is the wanted version, else install the wanted one over it.
    ReplaceIfOtherVersion,
}

/// Resolves `ISTIO_VERSION` to one version (network only for `latest` and `dev`).
pub(crate) async fn resolve_version(
    settings: &Settings,
    downloader: &Downloader,
) -> Result<IstioVersion> {
    match &settings.istio_version {
        IstioVersionRequest::Pinned => Ok(releases::pinned_default()),
        IstioVersionRequest::Exact(version) => Ok(version.clone()),
        IstioVersionRequest::Latest => releases::fetch_latest_stable(downloader).await,
        IstioVersionRequest::LatestDev => releases::fetch_latest_dev(downloader).await,
    }
}

/// The image tag of a container image reference (`docker.io/istio/pilot:1.28.1` → `1.28.1`),
/// ignoring a registry port and a digest.
pub(crate) fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

/// istiod's version from its Deployment (the `discovery` container's image tag).
pub(crate) fn istiod_version(deployment: &Deployment) -> Option<String> {
    let containers = &deployment.spec.as_ref()?.template.spec.as_ref()?.containers;
    let container = containers
        .iter()
        .find(|c| c.name == "discovery")
        .or_else(|| containers.first())?;
    image_tag(container.image.as_deref()?).map(|tag| tag.trim_start_matches('v').to_string())
}

/// The version istiod runs in the cluster, or None when there is no istiod. istiod is found by
/// its label, not its name: a revisioned install names the Deployment `istiod-<revision>`
/// (istio/istio `manifests/charts/istio-control/istio-discovery/templates/deployment.yaml`,
/// `name: istiod{{- if not (eq .Values.revision "") }}-{{ .Values.revision }}{{- end }}`,
/// label `app: istiod`).
pub(crate) async fn installed_istio(client: &kube::Client) -> Result<Option<String>> {
    Ok(istiod_of(&istiod_deployments(client).await?))
}

/// The istiod Deployments in istio-system (by label, see [`installed_istio`]).
async fn istiod_deployments(client: &kube::Client) -> Result<Vec<Deployment>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ISTIO_NAMESPACE);
    let list = api
        .list(&kube::api::ListParams::default().labels("app=istiod"))
        .await
        .map_err(|e| Error::kube("list Deployments app=istiod in istio-system", e))?;
    Ok(list.items)
}

/// The hub of the istiod found (the plain `istiod` first, else the first revision): its
/// `discovery` container's image less `/pilot:<tag>`.
pub(crate) fn istiod_hub(deployments: &[Deployment]) -> Option<String> {
    let name = |d: &Deployment| d.metadata.name.clone().unwrap_or_default();
    let istiod = deployments
        .iter()
        .find(|d| name(d) == "istiod")
        .or_else(|| deployments.first())?;
    let containers = &istiod.spec.as_ref()?.template.spec.as_ref()?.containers;
    let container = containers
        .iter()
        .find(|c| c.name == "discovery")
        .or_else(|| containers.first())?;
    image_hub(container.image.as_deref()?).map(str::to_string)
}

/// Whether `pod` is one of the control plane's ([`CONTROL_PLANE_SELECTORS`], each a single
/// `key=value` label).
pub(crate) fn is_control_plane(pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    CONTROL_PLANE_SELECTORS.iter().any(|(_, selector)| {
        selector.split_once('=').is_some_and(|(key, value)| {
            labels.and_then(|l| l.get(key)).map(String::as_str) == Some(value)
        })
    })
}

/// The first control-plane pod among `pods` that cannot start, in the cluster's words
/// ([`pod_failure_within`]); other pods in istio-system (addons a reused cluster still runs) are not
/// the install's concern.
pub(crate) fn control_plane_failure(
    pods: &[Pod],
    now: jiff::Timestamp,
    pull_retry: std::time::Duration,
) -> Option<PodFailure> {
    pods.iter()
        .filter(|p| is_control_plane(p))
        .find_map(|p| pod_failure_within(p, now, pull_retry))
}

/// Watches the pods in istio-system until a control-plane pod cannot start, and returns that as
/// the install's error; it never ends otherwise (it is raced against the install). The pods are
/// looked at on every change and every `poll_interval` without one, since a crash becomes final
/// with time alone; the watch retries with back-off on API errors. A pull the kubelet retries
/// (a transient error, [`pull_retrying`]) is not final: the latest one seen is kept in
/// `last_pull`, for the error of an install that then runs out of time.
pub(crate) async fn watch_control_plane(
    cluster: &Cluster,
    last_pull: Arc<Mutex<Option<PodFailure>>>,
) -> Error {
    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), ISTIO_NAMESPACE);
    let poll = cluster.timeouts().poll_interval;
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut seen: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
    loop {
        let event = tokio::select! {
            event = futures::StreamExt::next(&mut events) => event,
            () = tokio::time::sleep(poll) => None,
        };
        let key = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
        match event {
            Some(Ok(watcher::Event::Init)) => listing.clear(),
            Some(Ok(watcher::Event::InitApply(p))) => {
                listing.insert(key(&p), p);
            }
            Some(Ok(watcher::Event::InitDone)) => seen = std::mem::take(&mut listing),
            Some(Ok(watcher::Event::Apply(p))) => {
                seen.insert(key(&p), p);
            }
            Some(Ok(watcher::Event::Delete(p))) => {
                seen.remove(&key(&p));
            }
            Some(Err(_)) | None => {}
        }
        let pods: Vec<Pod> = seen.values().cloned().collect();
        if let Some(failure) =
            control_plane_failure(&pods, jiff::Timestamp::now(), cluster.timeouts().pull_retry)
        {
            return happy_claims::Error::PodFailed {
                what: format!("Istio's control plane in {ISTIO_NAMESPACE}"),
                failure: Box::new(failure),
            }
            .into();
        }
        if let Some(retrying) = pods
            .iter()
            .filter(|p| is_control_plane(p))
            .find_map(pull_retrying)
        {
            *last_pull.lock().unwrap_or_else(PoisonError::into_inner) = Some(retrying);
        }
    }
}

/// Runs `install` (istioctl, or the sandbox's) while [`watch_control_plane`] watches: `install`
/// gets the watch as its abort, and ends with the watch's error as soon as a control-plane pod
/// cannot start (istioctl is then killed and reaped, see
/// [`crate::process::Cmd::run_until`]). An install that fails otherwise (istioctl's
/// readiness timeout) is told with the last pull the kubelet was retrying, if the watch saw
/// one; an environment failure says which hub the images came from ([`install_failed`]).
pub(crate) async fn install_watching<'a, F, Fut>(
    cluster: &'a Cluster,
    hub: &IstioHub,
    install: F,
) -> Result<()>
where
    F: FnOnce(BoxFuture<'a, Error>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let last_pull = Arc::new(Mutex::new(None));
    let result = install(watch_control_plane(cluster, last_pull.clone()).boxed()).await;
    result.map_err(|e| {
        let retrying = last_pull
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let e = match (e, retrying) {
            (e @ Error::Claims(happy_claims::Error::PodFailed { .. }), _) | (e, None) => e,
            (e, Some(pull)) if e.class() == FailureClass::Environment => Error::Provision {
                cluster: "Istio install".into(),
                reason: format!("{e}; last image pull error seen: {pull}"),
            },
            (e, Some(_)) => e,
        };
        install_failed(e, hub)
    })
}

/// Waits until each of `selectors` (in istio-system) has Ready pods, all within `limit`; a pod
/// that cannot start ends the wait at once ([`Cluster::wait_pods_ready`], which also names a
/// pull the kubelet was still retrying when the limit ran out).
pub(crate) async fn wait_control_plane(
    cluster: &Cluster,
    selectors: &[(&str, &str)],
    hub: &IstioHub,
    limit: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    for (what, selector) in selectors {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        cluster
            .wait_pods_ready(ISTIO_NAMESPACE, selector, left)
            .await
            .map_err(|e| {
                install_failed(
                    Error::Provision {
                        cluster: "Istio install".into(),
                        reason: format!(
                            "the {what} ({selector} in {ISTIO_NAMESPACE}) did not become ready: {e}"
                        ),
                    },
                    hub,
                )
            })?;
    }
    Ok(())
}

/// An install's environment failure with the hub its images were to come from (and, for a
/// registry being decommissioned, that this may be why); a claim failure is left as it is.
pub(crate) fn install_failed(e: Error, hub: &IstioHub) -> Error {
    if e.class() != FailureClass::Environment {
        return e;
    }
    let hint = hub.failure_hint();
    match e {
        Error::Claims(happy_claims::Error::PodFailed { what, failure }) => {
            happy_claims::Error::PodFailed {
                what: format!("{what} ({hint})"),
                failure,
            }
            .into()
        }
        Error::Provision { cluster, reason } => Error::Provision {
            cluster,
            reason: format!("{reason} ({hint})"),
        },
        other => Error::Provision {
            cluster: "Istio install".into(),
            reason: format!("{other} ({hint})"),
        },
    }
}

/// The version of the istiod Deployments found: the plain `istiod` first, else the first
/// revision; several revisions are named together.
pub(crate) fn istiod_of(deployments: &[Deployment]) -> Option<String> {
    let version = |d: &Deployment| istiod_version(d).unwrap_or_else(|| "unknown".into());
    let name = |d: &Deployment| d.metadata.name.clone().unwrap_or_default();
    if let Some(plain) = deployments.iter().find(|d| name(d) == "istiod") {
        return Some(version(plain));
    }
    match deployments {
        [] => None,
        [one] => Some(format!("{} (Deployment {})", version(one), name(one))),
        many => Some(
            many.iter()
                .map(|d| format!("{} (Deployment {})", version(d), name(d)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The strategic-merge patch that gives the ingress gateway's HTTP port (`http2`, port 80)
/// the fixed NodePort, or None when it already has it.
pub(crate) fn ingress_node_port_patch(
    service: &Service,
    node_port: i32,
) -> Result<Option<serde_json::Value>> {
    let spec = service
        .spec
        .as_ref()
        .ok_or_else(|| happy_claims::Error::Unexpected {
            what: "Service istio-ingressgateway in istio-system".into(),
            message: "it has no spec".into(),
        })?;
    let ports = spec.ports.as_deref().unwrap_or_default();
    let http = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("http2"))
        .or_else(|| ports.iter().find(|p| p.port == 80))
        .ok_or_else(|| happy_claims::Error::Unexpected {
            what: "Service istio-ingressgateway in istio-system".into(),
            message: "it has no port named http2 or numbered 80".into(),
        })?;
    let is_node_port_type = matches!(
        spec.type_.as_deref(),
        Some("NodePort") | Some("LoadBalancer")
    );
    if is_node_port_type && http.node_port == Some(node_port) {
        return Ok(None);
    }
    // Ports merge by their `port` key, so the other fields of the entry stay as they are.
    let mut patch = serde_json::json!({
        "spec": { "ports": [ { "port": http.port, "nodePort": node_port } ] }
    });
    if !is_node_port_type {
        patch["spec"]["type"] = serde_json::json!("NodePort");
    }
    Ok(Some(patch))
}

/// Istio tooling for one run on one cluster.
#[derive(Debug)]
pub(crate) struct IstioSetup {
    istioctl: Istioctl,
    release: CachedRelease,
    hub: IstioHub,
    when_installed: WhenInstalled,
    fixed_node_port: bool,
    installed: Once<IstioInstall>,
}

impl IstioSetup {
    /// Resolves the version and makes sure its release (istioctl, addons) is in the cache.
    pub(crate) async fn prepare(
        settings: &Settings,
        timeouts: &Timeouts,
        target: KubeTarget,
        when_installed: WhenInstalled,
        fixed_node_port: bool,
    ) -> Result<Self> {
        let downloader = Downloader::new(&settings.cache_dir, timeouts.download)?;
        let version = resolve_version(settings, &downloader).await?;
        Self::prepare_version(
            settings,
            timeouts,
            version,
            target,
            when_installed,
            fixed_node_port,
        )
        .await
    }

    /// [`IstioSetup::prepare`] of a version already resolved (kind resolves it first, to check
    /// its Kubernetes window before creating the cluster).
    pub(crate) async fn prepare_version(
        settings: &Settings,
        timeouts: &Timeouts,
        version: IstioVersion,
        target: KubeTarget,
        when_installed: WhenInstalled,
        fixed_node_port: bool,
    ) -> Result<Self> {
        let downloader = Downloader::new(&settings.cache_dir, timeouts.download)?;
        let release = ensure_release(&downloader, &version, Platform::current()?).await?;
        let hub = IstioHub::choose(&version, settings.istio_hub.as_deref(), &release.root)?;
        let istioctl = Istioctl::new(
            release.istioctl(),
            version,
            target,
            timeouts.request.max(std::time::Duration::from_secs(60)),
        );
        Ok(Self {
            istioctl,
            release,
            hub,
            when_installed,
            fixed_node_port,
            installed: Once::new("Istio install"),
        })
    }

    /// The hub an install by this run takes Istio's images from.
    pub(crate) fn hub(&self) -> &IstioHub {
        &self.hub
    }

    /// istioctl of the release.
    pub(crate) fn istioctl(&self) -> &Istioctl {
        &self.istioctl
    }

    /// Applies the release's `samples/addons` (see [`crate::istio::addons`]).
    pub(crate) async fn install_addons(&self, cluster: &Cluster) -> Result<()> {
        crate::istio::addons::apply_addons(cluster, &self.release.addons_dir()).await
    }

    /// Installs Istio once per run: later calls return the first result, a failure included
    /// ("Istio install failed earlier in this run: …", without installing again).
    pub(crate) async fn install(&self, cluster: &Cluster) -> Result<IstioInstall> {
        self.installed
            .get_or_run(|| self.install_once(cluster))
            .await
            .cloned()
    }

    async fn install_once(&self, cluster: &Cluster) -> Result<IstioInstall> {
        let timeouts = cluster.timeouts();
        let wanted = self.istioctl.version().to_string();
        let deployments = istiod_deployments(cluster.client()).await?;
        let present = istiod_of(&deployments);
        let found_hub = IstioHub {
            hub: istiod_hub(&deployments).unwrap_or_else(|| "unknown".into()),
            origin: HubOrigin::Found,
        };
        let mut hub = self.hub.clone();
        let (version, revision_note) = match (present, self.when_installed) {
            (Some(found), WhenInstalled::Keep) => {
                let note = if found == wanted {
                    format!("Istio {found} was already installed; left as it is")
                } else {
                    format!(
                        "Istio {found} was already installed and is left as it is (ISTIO_VERSION asked for {wanted}; istioctl is {wanted})"
                    )
                };
                hub = found_hub;
                (found, Some(note))
            }
            (Some(found), WhenInstalled::ReplaceIfOtherVersion) if found == wanted => {
                hub = found_hub;
                (
                    found,
                    Some(format!(
                        "Istio {wanted} was already installed (reused cluster)"
                    )),
                )
            }
            (found, _) => {
                eprintln!(
                    "happy-istio: installing Istio {wanted} with {}, images from {hub}",
                    self.istioctl.path().display()
                );
                install_watching(cluster, &hub, |abort| {
                    self.istioctl
                        .install(timeouts.istio_install, hub.install_override(), abort)
                })
                .await?;
                let note = found.map(|old| format!("Istio {old} was replaced by {wanted}"));
                (wanted, note)
            }
        };
        let kept = revision_note.is_some() && self.when_installed == WhenInstalled::Keep;
        let mut missing_egress = None;
        let mut selectors = Vec::new();
        for (what, selector) in CONTROL_PLANE_SELECTORS {
            if kept && what == EGRESS_GATEWAY {
                // Not ours to add: a kept install without one lacks a capability, it is not
                // broken (the scenarios needing it are skipped with the reason).
                let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), ISTIO_NAMESPACE);
                let found = pods
                    .list(&kube::api::ListParams::default().labels(selector))
                    .await
                    .map_err(|e| Error::kube(format!("list pods {selector} in istio-system"), e))?;
                if found.items.is_empty() {
                    missing_egress = Some(egress_missing_reason(&version));
                    continue;
                }
            }
            selectors.push((what, selector));
        }
        // After istioctl's own readiness wait (or for an Istio found running) this is a check,
        // within `pod_ready` as before.
        wait_control_plane(cluster, &selectors, &hub, timeouts.pod_ready).await?;
        if self.fixed_node_port {
            let api: Api<Service> = Api::namespaced(cluster.client().clone(), ISTIO_NAMESPACE);
            let service = api
                .get("istio-ingressgateway")
                .await
                .map_err(|e| Error::kube("get Service istio-ingressgateway in istio-system", e))?;
            if let Some(patch) = ingress_node_port_patch(&service, INGRESS_NODE_PORT)? {
                api.patch("istio-ingressgateway", &PatchParams::apply("happy-istio"), &Patch::Strategic(patch))
                    .await
                    .map_err(|e| {
                        Error::kube(
                            format!("set nodePort {INGRESS_NODE_PORT} on Service istio-ingressgateway in istio-system"),
                            e,
                        )
                    })?;
            }
        }
        Ok(IstioInstall {
            version,
            hub,
            revision_note,
            missing_egress_gateway: missing_egress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("docker.io/istio/pilot:1.28.1"), Some("1.28.1"));
        assert_eq!(
            image_tag("localhost:5000/istio/pilot:1.29-alpha.abc"),
            Some("1.29-alpha.abc")
        );
        assert_eq!(
            image_tag("gcr.io/istio-release/pilot:1.28.1@sha256:abcd"),
            Some("1.28.1")
        );
        assert_eq!(image_tag("localhost:5000/istio/pilot"), None);
    }

    fn service(type_: &str, ports: Vec<(&str, i32, Option<i32>)>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, node_port)| ServicePort {
                            name: Some(name.into()),
                            port,
                            node_port,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn istiod(name: &str, image: &str) -> Deployment {
        use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
        Deployment {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "discovery".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn revisioned_istiod_is_found_by_its_label() {
        assert_eq!(istiod_of(&[]), None);
        assert_eq!(
            istiod_of(&[istiod("istiod", "docker.io/istio/pilot:1.30.5")]).as_deref(),
            Some("1.30.5")
        );
        assert_eq!(
            istiod_of(&[istiod("istiod-1-30", "docker.io/istio/pilot:1.30.5")]).as_deref(),
            Some("1.30.5 (Deployment istiod-1-30)")
        );
        let both = istiod_of(&[
            istiod("istiod-canary", "docker.io/istio/pilot:1.31.1"),
            istiod("istiod-stable", "docker.io/istio/pilot:1.30.5"),
        ])
        .unwrap();
        assert!(
            both.contains("istiod-canary") && both.contains("1.30.5 (Deployment istiod-stable)"),
            "{both}"
        );
        assert!(egress_missing_reason("1.30.5").contains("only the demo profile"));
    }

    #[test]
    fn node_port_patch_targets_the_http2_port() {
        let svc = service(
            "LoadBalancer",
            vec![
                ("status-port", 15021, Some(31000)),
                ("http2", 80, Some(31380)),
                ("https", 443, Some(31390)),
            ],
        );
        let patch = ingress_node_port_patch(&svc, 30080).unwrap().unwrap();
        assert_eq!(
            patch,
            serde_json::json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}})
        );
    }

    #[test]
    fn node_port_patch_is_none_when_already_set_and_switches_cluster_ip() {
        let done = service("NodePort", vec![("http2", 80, Some(30080))]);
        assert!(ingress_node_port_patch(&done, 30080).unwrap().is_none());
        let cluster_ip = service("ClusterIP", vec![("http2", 80, None)]);
        let patch = ingress_node_port_patch(&cluster_ip, 30080)
            .unwrap()
            .unwrap();
        assert_eq!(patch["spec"]["type"], "NodePort");
    }

    #[test]
    fn node_port_patch_without_http_port_is_an_error() {
        let svc = service("LoadBalancer", vec![("https", 443, None)]);
        let err = ingress_node_port_patch(&svc, 30080)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("istio-ingressgateway") && err.contains("http2"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod watch_tests {
    /// The default pull retry limit of the timeout table.
    const PULL_RETRY: std::time::Duration = std::time::Duration::from_secs(75);
    use super::*;

    fn pod(labels: serde_json::Value, reason: &str, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istiod-7d4f9c8b6-x2k4q", "namespace": "istio-system", "labels": labels},
            "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.31.1"}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "discovery", "image": "docker.io/istio/pilot:1.31.1", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}}
            }]}
        }))
        .unwrap()
    }

    const NOT_FOUND: &str = "rpc error: code = NotFound desc = failed to pull and unpack image \
        \"docker.io/istio/pilot:1.31.1\": failed to resolve reference \
        \"docker.io/istio/pilot:1.31.1\": docker.io/istio/pilot:1.31.1: not found";

    #[test]
    fn a_control_plane_pod_that_cannot_pull_is_the_installs_failure() {
        let now = jiff::Timestamp::now();
        let failing = pod(
            serde_json::json!({"app": "istiod", "istio": "pilot"}),
            "ErrImagePull",
            NOT_FOUND,
        );
        let f = control_plane_failure(std::slice::from_ref(&failing), now, PULL_RETRY).unwrap();
        let text = f.to_string();
        for part in [
            "istio-system/istiod-7d4f9c8b6-x2k4q",
            "container discovery",
            "docker.io/istio/pilot:1.31.1",
            "not found",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        // Starting is not failing, and an addon of a reused cluster is not the install's.
        let creating = pod(
            serde_json::json!({"app": "istiod"}),
            "ContainerCreating",
            "",
        );
        assert_eq!(control_plane_failure(&[creating], now, PULL_RETRY), None);
        // A pull the kubelet retries (the registry unreachable) is waited out, not final.
        let unreachable = pod(
            serde_json::json!({"app": "istiod"}),
            "ErrImagePull",
            "rpc error: code = Unknown desc = failed to pull and unpack image \
             \"docker.io/istio/pilot:1.31.1\": failed to resolve reference \
             \"docker.io/istio/pilot:1.31.1\": failed to do request: Head \
             \"https://registry-1.docker.io/v2/istio/pilot/manifests/1.31.1\": dial tcp \
             192.0.2.1:443: connect: connection refused",
        );
        assert_eq!(
            control_plane_failure(std::slice::from_ref(&unreachable), now, PULL_RETRY),
            None
        );
        assert!(pull_retrying(&unreachable).is_some());
        let addon = pod(
            serde_json::json!({"app": "kiali"}),
            "ErrImagePull",
            NOT_FOUND,
        );
        assert_eq!(control_plane_failure(&[addon], now, PULL_RETRY), None);
        for app in ["istio-ingressgateway", "istio-egressgateway"] {
            assert!(is_control_plane(&pod(
                serde_json::json!({"app": app}),
                "",
                ""
            )));
        }
    }

    #[test]
    fn an_install_failure_names_the_hub_and_keeps_claim_failures_as_they_are() {
        let hub = IstioHub {
            hub: "registry.istio.io/testing".into(),
            origin: HubOrigin::DevBuild,
        };
        let timeout = Error::Command {
            command: "istioctl install".into(),
            outcome: "did not finish within 600s".into(),
            stderr_tail: String::new(),
        };
        let e = install_failed(timeout, &hub);
        assert_eq!(e.class(), FailureClass::Environment);
        let text = e.to_string();
        assert!(
            text.contains("registry.istio.io/testing") && text.contains("decommissioned"),
            "{text}"
        );
        let claim = happy_claims::Error::Unexpected {
            what: "x".into(),
            message: "y".into(),
        };
        assert_eq!(install_failed(claim.into(), &hub).to_string(), "x: y");
    }
}

/// The istioctl path against a live cluster (the sandbox): the watch sees a control-plane pod
/// that cannot pull and ends the install long before its limit, istioctl is killed and reaped,
/// and a second install returns the first failure without running istioctl again.
#[cfg(test)]
mod live {
    use super::*;
    use crate::istio::artifacts::{Arch, Os};
    use std::time::{Duration, Instant};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pull_error_ends_the_install_in_seconds_and_is_not_retried() {
        crate::download::install_crypto_provider();
        let sandbox = happy_sandbox::Sandbox::start(Default::default())
            .await
            .unwrap();
        let text = std::fs::read_to_string(sandbox.kubeconfig_path()).unwrap();
        let client = super::super::kubeconfig::client_from_yaml(&text, None, "sandbox")
            .await
            .unwrap();
        let timeouts = Timeouts::from_lookup(|_| None).unwrap();
        let cluster = Cluster::new(client.clone(), timeouts.clone());

        // istioctl stands in as a script that records each run and then waits, as istioctl
        // waits for readiness; the control plane it "installs" is made below by hand.
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let fake = dir.path().join("istioctl");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho $$ >> {}\nexec sleep 600\n", runs.display()),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let version: IstioVersion = "1.31.1".parse().unwrap();
        let platform = Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        };
        let setup = IstioSetup {
            istioctl: Istioctl::new(
                &fake,
                version.clone(),
                KubeTarget::default(),
                timeouts.request,
            ),
            release: CachedRelease::new(dir.path(), &version, platform),
            hub: IstioHub {
                hub: "docker.io/no-such-hub".into(),
                origin: HubOrigin::Setting,
            },
            when_installed: WhenInstalled::ReplaceIfOtherVersion,
            fixed_node_port: false,
            installed: Once::new("Istio install"),
        };
        // The sandbox starts with istio-system (as the workshop's kind cluster once had it);
        // as istioctl's manifests would, the Deployment below goes into it.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ISTIO_NAMESPACE);
        let image = "docker.io/no-such-hub/pilot:1.31.1";
        let make_istiod = async {
            // Once istioctl runs, as its manifests would, istiod appears.
            while !runs.is_file() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            deployments
                .create(
                    &Default::default(),
                    &serde_json::from_value(serde_json::json!({
                        "metadata": {"name": "istiod", "labels": {"app": "istiod"}},
                        "spec": {
                            "selector": {"matchLabels": {"app": "istiod"}},
                            "template": {
                                "metadata": {"labels": {"app": "istiod", "istio": "pilot"}},
                                "spec": {"containers": [{"name": "discovery", "image": image}]}
                            }
                        }
                    }))
                    .unwrap(),
                )
                .await
                .unwrap();
        };
        let started = Instant::now();
        let (first, ()) = tokio::join!(setup.install(&cluster), make_istiod);
        let took = started.elapsed();
        let first = first.unwrap_err();
        let text = first.to_string();
        println!("install failed after {took:?}: {text}");
        assert!(
            took < Duration::from_secs(60) && took < timeouts.istio_install / 10,
            "the install took {took:?} of its {:?}",
            timeouts.istio_install
        );
        assert_eq!(first.class(), FailureClass::Environment);
        for part in [
            "istio-system/istiod-",
            "container discovery",
            image,
            "ErrImagePull",
            "not found",
            "docker.io/no-such-hub (set by HAPPY_ISTIO_HUB)",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        let pids = std::fs::read_to_string(&runs).unwrap();
        let pid = pids.trim();
        let alive = std::process::Command::new("kill")
            .args(["-0", pid])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "istioctl (pid {pid}) was left running or unreaped");

        let again = setup.install(&cluster).await.unwrap_err().to_string();
        assert!(
            again.starts_with("Istio install failed earlier in this run: ")
                && again.contains(image),
            "{again}"
        );
        assert_eq!(
            std::fs::read_to_string(&runs).unwrap().lines().count(),
            1,
            "istioctl ran again"
        );
        sandbox.shutdown().await;
    }
}
