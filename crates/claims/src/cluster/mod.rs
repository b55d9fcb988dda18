//! The suite's only way to talk to Kubernetes: a kube-rs client plus a discovery cache, with
//! the operations the workshop's steps need (apply and delete manifests, label namespaces,
//! restart and await rollouts, read pods and logs, exec, and HTTP through port-forwards).
//!
//! Every call is bounded by an entry of the [`Timeouts`] table; every error names the object.

mod exec;
#[cfg(test)]
mod exec_format_tests;
mod forward;
mod http;
mod pods;
pub mod pulls;
mod resolve;
mod startup;

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Client;
use kube::api::ApiResource;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, Scope};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result, is_kube_not_found};
use crate::manifests::Manifest;
use crate::timeouts::Timeouts;

pub use crate::error::pod_failure::{
    PodFailure, PullErrorClass, StartFailure, classify_pull_error,
};
pub use exec::{ExecOutput, PartialOutput, RunningExec, exit_code_from_status};
pub use forward::Forward;
pub use http::{
    HttpResponse, MAX_REDIRECTS, Redirect, RedirectError, USER_AGENT_VALUE, describe_chain,
    follow_redirects, http_get_over, is_redirect, resolve_location, resolve_target_port,
};
pub use pods::{
    container_names, describe_pods, human_age, pod_is_ready, pod_is_terminating, pod_table,
    ready_containers, rollout_complete, sidecar_present,
};
pub use resolve::{KindLookup, Target, resolve_target, target_namespace};
pub use startup::{FIRST_RESTART_GRACE, pod_failure, pod_failure_within, pull_retrying};

/// Field manager of every server-side apply.
pub(crate) const FIELD_MANAGER: &str = "happy-istio";

/// Annotation `kubectl rollout restart` sets on the pod template.
pub(crate) const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// An object that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedObject {
    /// e.g. `apps/v1`.
    pub api_version: String,
    /// e.g. `Deployment`.
    pub kind: String,
    /// Its namespace, `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// A cluster: client, timeouts, and a cache of discovered kinds shared by clones.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    timeouts: Timeouts,
    kinds: Arc<Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>>,
    /// When an apply or delete through this handle last changed an object (see
    /// [`Cluster::last_change`]).
    last_change: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Bounds `fut` by `limit`, turning the timeout into an error that says what was awaited.
async fn bounded<T>(
    what: impl FnOnce() -> String,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            what: what(),
            limit,
            detail: None,
        }),
    }
}

impl Cluster {
    /// A cluster behind `client`, with every wait bounded by `timeouts`.
    pub fn new(client: Client, timeouts: Timeouts) -> Self {
        Cluster {
            client,
            timeouts,
            kinds: Arc::new(Mutex::new(HashMap::new())),
            last_change: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// When an apply or delete through this handle (or a clone of it) last changed an object
    /// in the cluster: created, modified or deleted it. An apply that leaves the object as it
    /// was does not count. A check that judges a few seconds of traffic uses it to know how long
    /// ago the mesh's configuration last changed (`Timeouts::propagation`).
    pub fn last_change(&self) -> Option<Instant> {
        *self
            .last_change
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed_now(&self) {
        *self
            .last_change
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// The kube-rs client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The timeout table.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    // --- discovery ---------------------------------------------------------------------

    /// What the cluster serves for `gvk`, `None` when it does not serve it. Found kinds are
    /// cached; a miss is never cached, so a kind that appears later (Istio's CRDs after its
    /// install) is found by the next call. Only the kind's own group-version is queried, so
    /// a broken unrelated API group (an unavailable metrics API) cannot fail the lookup.
    pub async fn kind(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>> {
        if let Some(found) = self.kinds.lock().await.get(gvk) {
            return Ok(Some(found.clone()));
        }
        let what = format!("discover kind {} of {}", gvk.kind, gvk.api_version());
        let found = bounded(|| what.clone(), self.timeouts.request, async {
            match kube::discovery::pinned_kind(&self.client, gvk).await {
                Ok(found) => Ok(Some(found)),
                Err(kube::Error::Discovery(_)) => Ok(None),
                Err(e) if is_kube_not_found(&e) => Ok(None),
                Err(e) => Err(Error::kube(what.clone(), e)),
            }
        })
        .await?;
        if let Some(found) = &found {
            self.kinds.lock().await.insert(gvk.clone(), found.clone());
        }
        Ok(found)
    }

    /// Resolves a manifest's kind (asking the cluster on a cache miss) and namespace.
    async fn resolve(&self, manifest: &Manifest, namespace: &str) -> Result<Target> {
        let gvk = manifest.gvk();
        let found = self.kind(&gvk).await?;
        let single: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)> =
            found.into_iter().map(|f| (gvk.clone(), f)).collect();
        resolve_target(manifest, &single, namespace)
    }

    fn dynamic_api(&self, target: &Target) -> Api<DynamicObject> {
        match &target.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &target.resource),
            None => Api::all_with(self.client.clone(), &target.resource),
        }
    }

    // --- manifests ---------------------------------------------------------------------

    /// Server-side applies every object (field manager `happy-istio`, forced), in order.
    /// Namespaced objects without a namespace go to `namespace`; an object naming its own
    /// keeps it. A kind the cluster does not serve is an error naming file, document and kind.
    pub async fn apply(
        &self,
        manifests: &[Manifest],
        namespace: &str,
    ) -> Result<Vec<AppliedObject>> {
        let mut applied = Vec::with_capacity(manifests.len());
        for manifest in manifests {
            let target = self.resolve(manifest, namespace).await?;
            let mut object = manifest.object.clone();
            object.metadata.namespace = target.namespace.clone();
            let api = self.dynamic_api(&target);
            let what = format!("apply {} as {}", manifest.describe(), target.describe());
            let params = PatchParams::apply(FIELD_MANAGER).force();
            // The resourceVersion before and after tells whether the apply changed anything
            // (an unchanged server-side apply keeps it).
            let (before, after) = bounded(|| what.clone(), self.timeouts.request, async {
                let before = match api.get_opt(&target.name).await {
                    Ok(found) => found.and_then(|o| o.metadata.resource_version),
                    Err(e) => return Err(Error::kube(what.clone(), e)),
                };
                let after = api
                    .patch(&target.name, &params, &Patch::Apply(&object))
                    .await
                    .map_err(|e| Error::kube(what.clone(), e))?
                    .metadata
                    .resource_version;
                Ok((before, after))
            })
            .await?;
            if before.is_none() || before != after {
                self.changed_now();
            }
            applied.push(AppliedObject {
                api_version: manifest.api_version().to_string(),
                kind: manifest.kind().to_string(),
                namespace: target.namespace,
                name: target.name,
            });
        }
        Ok(applied)
    }

    /// Deletes the objects and waits until they are gone; objects (or kinds) already absent
    /// are fine. All of it is bounded by the `delete` timeout.
    pub async fn delete(&self, manifests: &[Manifest], namespace: &str) -> Result<()> {
        let deadline = Instant::now() + self.timeouts.delete;
        let mut targets = Vec::new();
        for manifest in manifests {
            match self.resolve(manifest, namespace).await {
                Ok(t) => targets.push(t),
                // A kind the cluster does not serve has no objects to delete.
                Err(Error::UnknownKind { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.delete_targets(&targets, deadline).await
    }

    /// Deletes every object of a kind in `namespace` and waits until they are gone; returns
    /// how many there were. `Ok(0)` when the cluster does not serve the kind at all.
    pub async fn delete_all(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<usize> {
        let deadline = Instant::now() + self.timeouts.delete;
        let (group, version) = crate::manifests::split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Some((resource, caps)) = self.kind(&gvk).await? else {
            return Ok(0);
        };
        if caps.scope != Scope::Namespaced {
            return Err(Error::Unexpected {
                what: format!("delete every {kind} in {namespace}"),
                message: format!("{kind} ({api_version}) is cluster-scoped, not namespaced"),
            });
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let what = format!("list {kind} in {namespace}");
        let list = bounded(|| what.clone(), self.timeouts.request, async {
            api.list(&ListParams::default())
                .await
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await?;
        let targets: Vec<Target> = list
            .items
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .map(|name| Target {
                resource: resource.clone(),
                namespace: Some(namespace.to_string()),
                name,
            })
            .collect();
        self.delete_targets(&targets, deadline).await?;
        Ok(targets.len())
    }

    async fn delete_targets(&self, targets: &[Target], deadline: Instant) -> Result<()> {
        // Issue every delete first so the objects go away in parallel, then wait for each.
        let mut pending = Vec::new();
        for target in targets {
            let api = self.dynamic_api(target);
            let what = format!("delete {}", target.describe());
            let remaining = deadline.saturating_duration_since(Instant::now());
            let deleted = bounded(|| what.clone(), remaining, async {
                match api.delete(&target.name, &DeleteParams::default()).await {
                    Ok(either) => Ok(Some(either.left().and_then(|obj| obj.metadata.uid))),
                    Err(e) if is_kube_not_found(&e) => Ok(None),
                    Err(e) => Err(Error::kube(what.clone(), e)),
                }
            })
            .await?;
            // `Right` (a Status) means it is already gone; `Left` means deletion is pending.
            // Either way the object existed and is going.
            if deleted.is_some() {
                self.changed_now();
            }
            if let Some(uid) = deleted.flatten() {
                pending.push((api, target, uid));
            }
        }
        for (api, target, uid) in pending {
            let what = format!("{} to be deleted", target.describe());
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(
                remaining,
                await_condition(api.clone(), &target.name, conditions::is_deleted(&uid)),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(Error::Unexpected {
                        what,
                        message: format!("watching the deletion failed: {e}"),
                    });
                }
                Err(_) => {
                    let detail = match api.get_opt(&target.name).await {
                        Ok(Some(o)) => Some(format!(
                            "still present, finalizers {:?}",
                            o.metadata.finalizers.unwrap_or_default()
                        )),
                        _ => None,
                    };
                    return Err(Error::Timeout {
                        what,
                        limit: self.timeouts.delete,
                        detail,
                    });
                }
            }
        }
        Ok(())
    }

    // --- namespaces --------------------------------------------------------------------

    /// Creates the namespace unless it exists; one that is still terminating is waited for
    /// and created again.
    pub async fn ensure_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let what = format!("ensure namespace {name}");
        let existing = bounded(|| what.clone(), self.timeouts.request, async {
            api.get_opt(name)
                .await
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await?;
        if let Some(ns) = existing {
            let Some(uid) = ns
                .metadata
                .uid
                .filter(|_| ns.metadata.deletion_timestamp.is_some())
            else {
                return Ok(());
            };
            let gone = format!("namespace {name} to finish terminating");
            bounded(|| gone.clone(), self.timeouts.delete, async {
                await_condition(api.clone(), name, conditions::is_deleted(&uid))
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::Unexpected {
                        what: gone.clone(),
                        message: e.to_string(),
                    })
            })
            .await?;
        }
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name}
        }))
        .map_err(|e| Error::Unexpected {
            what: what.clone(),
            message: e.to_string(),
        })?;
        bounded(|| what.clone(), self.timeouts.request, async {
            match api.create(&PostParams::default(), &namespace).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(Error::kube(what.clone(), e)),
            }
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) a label of a namespace.
    pub async fn set_namespace_label(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let what = match value {
            Some(v) => format!("label namespace {name} {key}={v}"),
            None => format!("remove label {key} from namespace {name}"),
        };
        // A JSON merge patch: null deletes the key, whoever set it.
        let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
        bounded(|| what.clone(), self.timeouts.request, async {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await
    }

    // --- deployments and pods ----------------------------------------------------------

    /// `kubectl rollout restart`: stamps the pod template with the current time.
    pub async fn restart_deployment(&self, namespace: &str, name: &str) -> Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("restart deployment {name} in {namespace}");
        // Full precision, unlike kubectl's seconds: two restarts within one second must still
        // change the template, or the second would roll nothing out.
        let now = jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}
        });
        bounded(|| what.clone(), self.timeouts.request, async {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await
    }

    /// Waits (bounded by `rollout`) until the deployment's status says the rollout is
    /// complete and exactly `replicas` pods, all Ready, are left (no pod of an older
    /// template still running). A pod of the current template that cannot start (see
    /// [`pod_failure`]) ends the wait at once with the cluster's reason; a pull the kubelet
    /// retries does not, and is named if the wait ends at its limit.
    ///
    /// The deployment, its ReplicaSets and its pods are watched (kube-rs reflectors) and the
    /// verdict is taken from what the watches delivered, at every change: the wait ends with
    /// the event that completes the rollout, at no API round trip per look. It is also looked
    /// at every `poll_interval` without an event, since a crash becomes final with time alone.
    pub async fn wait_rollout(&self, namespace: &str, name: &str) -> Result<()> {
        let limit = self.timeouts.rollout;
        let what = format!("rollout of deployment {name} in {namespace}");
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let get = format!("get deployment {name} in {namespace}");
        // The selector (immutable in apps/v1) scopes the pod watch.
        let first = bounded(|| get.clone(), self.timeouts.request, async {
            deployments
                .get_opt(name)
                .await
                .map_err(|e| Error::kube(get.clone(), e))
        })
        .await?
        .ok_or_else(|| Error::Unexpected {
            what: what.clone(),
            message: "the deployment does not exist".into(),
        })?;
        let selector = deployment_selector(&first, namespace)?;
        let (deployment_store, deployment_writer) = reflector::store::<Deployment>();
        let (rs_store, rs_writer) = reflector::store::<ReplicaSet>();
        let (pod_store, pod_writer) = reflector::store::<Pod>();
        let name_field = format!("metadata.name={name}");
        let events = futures::stream::select(
            futures::stream::select(
                reflector(
                    deployment_writer,
                    watcher(deployments, watcher::Config::default().fields(&name_field)),
                )
                .default_backoff()
                .map(|e| e.err().map(|e| e.to_string())),
                reflector(
                    rs_writer,
                    watcher(
                        Api::<ReplicaSet>::namespaced(self.client.clone(), namespace),
                        watcher::Config::default(),
                    ),
                )
                .default_backoff()
                .map(|e| e.err().map(|e| e.to_string())),
            ),
            reflector(
                pod_writer,
                watcher(
                    Api::<Pod>::namespaced(self.client.clone(), namespace),
                    watcher::Config::default().labels(&selector),
                ),
            )
            .default_backoff()
            .map(|e| e.err().map(|e| e.to_string())),
        );
        let mut events = pin!(events);
        let key = reflector::ObjectRef::new(name).within(namespace);
        let mut last_error: Option<String> = None;
        let mut last_pull: Option<PodFailure> = None;
        let mut waiting = String::from("no watch has delivered its initial list yet");
        let poll = self.timeouts.poll_interval;
        let outcome = tokio::time::timeout(limit, async {
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(Some(e)) => last_error = Some(e),
                        Some(None) => {}
                        None => return Err("the watches ended".to_string()),
                    },
                    () = tokio::time::sleep(poll) => {}
                }
                // A verdict only from complete lists: before every watch has listed, a missing
                // ReplicaSet or pod is not known to be absent.
                if !(listed(&deployment_store) && listed(&rs_store) && listed(&pod_store)) {
                    continue;
                }
                let Some(deployment) = deployment_store.get(&key) else {
                    return Err("the deployment was deleted".to_string());
                };
                let replicasets: Vec<ReplicaSet> =
                    rs_store.state().iter().map(|r| (**r).clone()).collect();
                let pods: Vec<Pod> = pod_store
                    .state()
                    .iter()
                    .filter(|p| !pod_is_terminating(p))
                    .map(|p| (**p).clone())
                    .collect();
                // A pull the kubelet retries is not final; remember it for the timeout.
                if let Some(retrying) = pods.iter().find_map(pull_retrying) {
                    last_pull = Some(retrying);
                }
                match rollout_verdict(
                    &deployment,
                    &replicasets,
                    &pods,
                    jiff::Timestamp::now(),
                    self.timeouts.pull_retry,
                ) {
                    RolloutVerdict::Done => return Ok(None),
                    RolloutVerdict::Failed(failure) => return Ok(Some(*failure)),
                    RolloutVerdict::Waiting(detail) => waiting = detail,
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(failure))) => Err(Error::PodFailed {
                what,
                failure: Box::new(self.explain_failure(failure).await),
            }),
            Ok(Err(message)) => Err(Error::Unexpected { what, message }),
            Err(_) => {
                if let Some(e) = last_error {
                    waiting.push_str(&format!("; last watch error: {e}"));
                }
                if let Some(p) = last_pull {
                    waiting.push_str(&format!("; last image pull error seen: {p}"));
                }
                Err(Error::Timeout {
                    what,
                    limit,
                    detail: Some(waiting),
                })
            }
        }
    }

    /// The deployments of a namespace, by name.
    pub async fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("list deployments in {namespace}");
        let mut items = bounded(|| what.clone(), self.timeouts.request, async {
            api.list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await?;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items)
    }

    /// Pods matching `label_selector` (empty: all), terminating ones excluded, by name.
    pub async fn pods(&self, namespace: &str, label_selector: &str) -> Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("list pods {label_selector:?} in {namespace}");
        let params = ListParams::default().labels(label_selector);
        let items = bounded(|| what.clone(), self.timeouts.request, async {
            api.list(&params)
                .await
                .map(|l| l.items)
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await?;
        let mut live: Vec<Pod> = items
            .into_iter()
            .filter(|p| !pod_is_terminating(p))
            .collect();
        live.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(live)
    }

    /// The label selector of a deployment, as a string for list calls.
    pub async fn deployment_selector(&self, namespace: &str, deployment: &str) -> Result<String> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("get deployment {deployment} in {namespace}");
        let d = bounded(|| what.clone(), self.timeouts.request, async {
            api.get(deployment)
                .await
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await?;
        deployment_selector(&d, namespace)
    }

    /// The (non-terminating) pods a deployment selects.
    pub async fn deployment_pods(&self, namespace: &str, deployment: &str) -> Result<Vec<Pod>> {
        let selector = self.deployment_selector(namespace, deployment).await?;
        self.pods(namespace, &selector).await
    }

    /// Waits (through a watch, bounded by `timeout`) until at least one pod matches and every
    /// non-terminating match is Ready; returns them. A match that cannot start (see
    /// [`pod_failure`]) ends the wait at once with the cluster's reason; the pods seen are
    /// looked at again every `poll_interval`, since a crash becomes final with time alone.
    pub async fn wait_pods_ready(
        &self,
        namespace: &str,
        label_selector: &str,
        timeout: Duration,
    ) -> Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let config = watcher::Config::default().labels(label_selector);
        let what = format!("pods {label_selector:?} in {namespace} to be Ready");
        let mut seen: BTreeMap<String, Pod> = BTreeMap::new();
        let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
        let mut last_error: Option<String> = None;
        let mut failed: Option<PodFailure> = None;
        let mut last_pull: Option<PodFailure> = None;
        let poll = self.timeouts.poll_interval;
        let pull_retry = self.timeouts.pull_retry;
        let waited = tokio::time::timeout(timeout, async {
            let mut events = pin!(watcher(api, config).default_backoff());
            loop {
                let event = tokio::select! {
                    event = events.next() => match event {
                        Some(event) => Some(event),
                        None => return Vec::new(),
                    },
                    () = tokio::time::sleep(poll) => None,
                };
                match event {
                    None => {}
                    Some(Ok(watcher::Event::Init)) => listing.clear(),
                    Some(Ok(watcher::Event::InitApply(p))) => {
                        listing.insert(p.metadata.name.clone().unwrap_or_default(), p);
                    }
                    Some(Ok(watcher::Event::InitDone)) => seen = std::mem::take(&mut listing),
                    Some(Ok(watcher::Event::Apply(p))) => {
                        seen.insert(p.metadata.name.clone().unwrap_or_default(), p);
                    }
                    Some(Ok(watcher::Event::Delete(p))) => {
                        seen.remove(p.metadata.name.as_deref().unwrap_or_default());
                    }
                    // The watcher retries with backoff; keep the error for the timeout message.
                    Some(Err(e)) => last_error = Some(e.to_string()),
                }
                let live: Vec<&Pod> = seen.values().filter(|p| !pod_is_terminating(p)).collect();
                let now = jiff::Timestamp::now();
                if let Some(f) = live
                    .iter()
                    .find_map(|p| pod_failure_within(p, now, pull_retry))
                {
                    failed = Some(f);
                    return Vec::new();
                }
                // A pull the kubelet retries is not final; remember it for the timeout.
                if let Some(retrying) = live.iter().find_map(|p| pull_retrying(p)) {
                    last_pull = Some(retrying);
                }
                if !live.is_empty() && live.iter().all(|p| pod_is_ready(p)) {
                    return live.into_iter().cloned().collect::<Vec<Pod>>();
                }
            }
        })
        .await;
        if let Some(failure) = failed {
            return Err(Error::PodFailed {
                what,
                failure: Box::new(self.explain_failure(failure).await),
            });
        }
        match waited {
            Ok(pods) if !pods.is_empty() => Ok(pods),
            _ => {
                let pods: Vec<Pod> = seen.into_values().collect();
                let mut detail = describe_pods(&pods);
                if let Some(e) = last_error {
                    detail.push_str(&format!("; last watch error: {e}"));
                }
                if let Some(p) = last_pull {
                    detail.push_str(&format!("; last image pull error seen: {p}"));
                }
                Err(Error::Timeout {
                    what,
                    limit: timeout,
                    detail: Some(detail),
                })
            }
        }
    }

    /// A start failure with what the pod's status does not say, best effort: for a container
    /// that exited as `runc init` does when it cannot exec its entrypoint (exit 255, see
    /// [`crate::error::pod_failure::RUNC_INIT_EXIT`]) the end of its log — a plain `pods/log` of a container
    /// waiting to restart serves its last terminated instance (kubernetes
    /// `pkg/kubelet/kubelet_pods.go` `validateContainerLogStatus`) — and, when the words are
    /// runc's `exec format error`, the node's architecture. What cannot be read is left out.
    async fn explain_failure(&self, failure: PodFailure) -> PodFailure {
        let wants_log = failure.wants_runtime_detail();
        if !wants_log && !failure.exec_format_error() {
            return failure;
        }
        let log = match (&failure.container, wants_log) {
            (Some(container), true) => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &failure.namespace);
                let params = LogParams {
                    container: Some(container.clone()),
                    tail_lines: Some(5),
                    ..LogParams::default()
                };
                let what = format!("log of container {container} of pod {}", failure.pod);
                bounded(|| what.clone(), self.timeouts.request, async {
                    api.logs(&failure.pod, &params)
                        .await
                        .map_err(|e| Error::kube(what.clone(), e))
                })
                .await
                .ok()
            }
            _ => None,
        };
        let failure = match &log {
            Some(l) if l.contains("exec format error") || failure.exec_format_error() => failure,
            _ => return failure.with_runtime_detail(log, None),
        };
        let arch = match &failure.node {
            Some(node) => {
                let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
                let what = format!("get node {node}");
                bounded(|| what.clone(), self.timeouts.request, async {
                    nodes
                        .get(node)
                        .await
                        .map_err(|e| Error::kube(what.clone(), e))
                })
                .await
                .ok()
                .and_then(|n| n.status?.node_info.map(|i| i.architecture))
            }
            None => None,
        };
        let log = log.or_else(|| failure.runtime_detail.clone());
        failure.with_runtime_detail(log, arch)
    }

    /// The log of one container.
    pub async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("logs of container {container} of pod {pod} in {namespace}");
        let params = LogParams {
            container: Some(container.to_string()),
            ..LogParams::default()
        };
        bounded(|| what.clone(), self.timeouts.request, async {
            api.logs(pod, &params)
                .await
                .map_err(|e| Error::kube(what.clone(), e))
        })
        .await
    }

    /// Runs `command` in a container. Bounded by the `assertion` timeout, so that a
    /// command's own timeout (curl's `--max-time` of `request`) ends it first and its exit
    /// code tells what happened.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput> {
        self.exec_within(namespace, pod, container, command, self.timeouts.assertion)
            .await
    }

    /// Runs `command` in a container, bounded by `limit`.
    pub async fn exec_within(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
        limit: Duration,
    ) -> Result<ExecOutput> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "exec {:?} in container {container} of pod {pod} in {namespace}",
            command.join(" ")
        );
        bounded(
            || what.clone(),
            limit,
            exec::exec(&api, &what, pod, container, command),
        )
        .await
    }

    /// Starts `command` in a container and leaves it running ([`RunningExec`]: read its output
    /// as it comes, close it as Ctrl-C does); the start is bounded by `request`.
    pub async fn exec_running(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<RunningExec> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "exec {:?} in container {container} of pod {pod} in {namespace}",
            command.join(" ")
        );
        bounded(
            || what.clone(),
            self.timeouts.request,
            exec::start(&api, &what, pod, container, command),
        )
        .await
    }

    // --- HTTP through port-forwards ----------------------------------------------------

    /// `pod:port` behind a port-forward that opens with the first request and carries every
    /// later one too (see [`Forward`]); each request is bounded by `request`. `host` sets the
    /// Host header (default `localhost:<port>`, as curl through `kubectl port-forward` sends).
    pub fn forward_to_pod(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        host: Option<&str>,
    ) -> Forward {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        Forward::new(api, namespace, pod, port, host, self.timeouts.request)
    }

    /// `kubectl port-forward deploy/NAME PORT`: `port` of a Ready pod of the deployment (the
    /// first by name), resolved now, forwarded on the first request.
    pub async fn forward_to_deployment(
        &self,
        namespace: &str,
        deployment: &str,
        port: u16,
    ) -> Result<Forward> {
        let pods = self.deployment_pods(namespace, deployment).await?;
        let pod = first_ready(&pods, &format!("deployment {deployment} in {namespace}"))?;
        Ok(self.forward_to_pod(namespace, &pod, port, None))
    }

    /// `kubectl port-forward svc/NAME PORT`: a Ready pod behind the Service (its selector) on
    /// the Service port's `targetPort` (a number or a named container port), resolved now,
    /// forwarded on the first request.
    pub async fn forward_to_service(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<Forward> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("service {service} in {namespace}");
        let svc = bounded(|| what.clone(), self.timeouts.request, async {
            api.get(service)
                .await
                .map_err(|e| Error::kube(format!("get {what}"), e))
        })
        .await?;
        let spec = svc.spec.unwrap_or_default();
        let service_port = spec
            .ports
            .iter()
            .flatten()
            .find(|p| p.port == i32::from(port))
            .cloned()
            .ok_or_else(|| Error::Unexpected {
                what: what.clone(),
                message: format!(
                    "has no port {port}; its ports are {:?}",
                    spec.ports
                        .iter()
                        .flatten()
                        .map(|p| p.port)
                        .collect::<Vec<_>>()
                ),
            })?;
        let selector = spec
            .selector
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Unexpected {
                what: what.clone(),
                message: "has no selector, so no pod to forward to".into(),
            })?
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods = self.pods(namespace, &selector).await?;
        let pod_name = first_ready(&pods, &what)?;
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()))
            .ok_or_else(|| Error::Unexpected {
                what: what.clone(),
                message: format!("pod {pod_name} vanished"),
            })?;
        let target_port =
            resolve_target_port(&service_port, pod).map_err(|message| Error::Unexpected {
                what: what.clone(),
                message,
            })?;
        Ok(self.forward_to_pod(namespace, &pod_name, target_port, None))
    }

    /// One `GET path` on `pod:port` through its own port-forward, bounded by `request`.
    pub async fn http_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
        host: Option<&str>,
    ) -> Result<HttpResponse> {
        self.forward_to_pod(namespace, pod, port, host)
            .get(path)
            .await
    }

    /// One `GET path` through a Service port, to a Ready pod behind it.
    pub async fn http_get_service(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
        path: &str,
    ) -> Result<HttpResponse> {
        self.forward_to_service(namespace, service, port)
            .await?
            .get(path)
            .await
    }
}

/// A deployment's selector as a list-call string.
fn deployment_selector(d: &Deployment, namespace: &str) -> Result<String> {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let what = format!("deployment {name} in {namespace}");
    let selector =
        d.spec
            .as_ref()
            .map(|s| s.selector.clone())
            .ok_or_else(|| Error::Unexpected {
                what: what.clone(),
                message: "has no spec".into(),
            })?;
    let selector = kube::core::Selector::try_from(selector).map_err(|e| Error::Unexpected {
        what: what.clone(),
        message: format!("unusable selector: {e}"),
    })?;
    let text = selector.to_string();
    if text.is_empty() {
        return Err(Error::Unexpected {
            what,
            message: "has an empty selector".into(),
        });
    }
    Ok(text)
}

/// A pod's `pod-template-hash` label: which ReplicaSet (template) it belongs to.
fn template_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get("pod-template-hash")
        .map(String::as_str)
}

/// The `pod-template-hash` of the deployment's newest ReplicaSet (highest
/// `deployment.kubernetes.io/revision` among those it controls): the pods of its current
/// template. `None` before the controller made one.
fn current_template_hash(deployment: &Deployment, replicasets: &[ReplicaSet]) -> Option<String> {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0)
    };
    replicasets
        .iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .max_by_key(|rs| revision(rs))
        .and_then(|rs| {
            rs.metadata
                .labels
                .as_ref()?
                .get("pod-template-hash")
                .cloned()
        })
}

/// Whether a reflector's store holds its watch's initial list (it is ready after the first
/// one; kube-rs has no non-blocking getter for that, so the readiness future is polled once).
fn listed<K>(store: &reflector::Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.wait_until_ready().now_or_never().is_some()
}

/// Where a rollout stands.
#[derive(Debug)]
enum RolloutVerdict {
    /// Complete: the status says so and exactly `replicas` pods, all Ready, are left.
    Done,
    /// A pod of the current template cannot start.
    Failed(Box<PodFailure>),
    /// Not yet, and why.
    Waiting(String),
}

/// The verdict on a rollout from the deployment, the namespace's ReplicaSets and the
/// deployment's non-terminating pods, at `now`.
fn rollout_verdict(
    deployment: &Deployment,
    replicasets: &[ReplicaSet],
    pods: &[Pod],
    now: jiff::Timestamp,
    pull_retry: Duration,
) -> RolloutVerdict {
    let current = current_template_hash(deployment, replicasets);
    if let Some(failure) = pods
        .iter()
        .filter(|p| {
            current
                .as_deref()
                .is_none_or(|h| template_hash(p) == Some(h))
        })
        .find_map(|p| pod_failure_within(p, now, pull_retry))
    {
        return RolloutVerdict::Failed(Box::new(failure));
    }
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = rollout_complete(deployment);
    let ready = pods.iter().filter(|p| pod_is_ready(p)).count();
    // Old pods leave after the status already counts only new ones: wait for both.
    if status.is_ok() && usize::try_from(replicas).is_ok_and(|r| pods.len() == r && ready == r) {
        return RolloutVerdict::Done;
    }
    let status = status.err().map_or_else(String::new, |s| format!("{s}; "));
    RolloutVerdict::Waiting(format!(
        "{status}{replicas} replicas wanted, pods: {}",
        describe_pods(pods)
    ))
}

fn first_ready(pods: &[Pod], what: &str) -> Result<String> {
    pods.iter()
        .find(|p| pod_is_ready(p))
        .and_then(|p| p.metadata.name.clone())
        .ok_or_else(|| Error::NotReady {
            what: what.to_string(),
            message: format!("no Ready pod ({})", describe_pods(pods)),
        })
}

#[cfg(test)]
mod tests {
    /// The default pull retry limit of the timeout table.
    const PULL_RETRY: Duration = Duration::from_secs(75);
    use super::*;

    fn object<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
        serde_json::from_value(json).expect("test object")
    }

    fn deployment() -> Deployment {
        object(serde_json::json!({
            "metadata": {"name": "service-a", "uid": "d1", "generation": 2},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "service-a"}},
                     "template": {}},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": 1, "availableReplicas": 1}
        }))
    }

    fn replicaset(hash: &str, revision: &str) -> ReplicaSet {
        object(serde_json::json!({
            "metadata": {"name": format!("service-a-{hash}"),
                         "labels": {"pod-template-hash": hash},
                         "annotations": {"deployment.kubernetes.io/revision": revision},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "service-a", "uid": "d1",
                                              "controller": true}]},
            "spec": {"selector": {}}
        }))
    }

    fn pod(hash: &str, ready: bool, waiting: Option<&str>) -> Pod {
        let state = match waiting {
            Some(reason) => {
                serde_json::json!({"waiting": {"reason": reason, "message": "rpc error: code = NotFound desc = x: not found"}})
            }
            None => serde_json::json!({"running": {}}),
        };
        object(serde_json::json!({
            "metadata": {"name": format!("service-a-{hash}-p"),
                         "labels": {"app": "service-a", "pod-template-hash": hash}},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready",
                                       "status": if ready { "True" } else { "False" }}],
                       "containerStatuses": [{"name": "app", "image": "i", "imageID": "",
                                              "ready": ready, "restartCount": 0,
                                              "state": state}]}
        }))
    }

    #[test]
    fn a_rollout_is_done_only_when_just_the_new_pods_are_left() {
        let now = jiff::Timestamp::now();
        let rs = [replicaset("old", "1"), replicaset("new", "2")];
        let new = pod("new", true, None);
        let verdict = rollout_verdict(
            &deployment(),
            &rs,
            std::slice::from_ref(&new),
            now,
            PULL_RETRY,
        );
        assert!(matches!(verdict, RolloutVerdict::Done), "{verdict:?}");
        let verdict = rollout_verdict(
            &deployment(),
            &rs,
            &[new, pod("old", true, None)],
            now,
            PULL_RETRY,
        );
        assert!(
            matches!(&verdict, RolloutVerdict::Waiting(d) if d.contains("1 replicas wanted")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_new_pod_that_cannot_start_ends_the_wait_and_an_old_one_does_not() {
        let now = jiff::Timestamp::now();
        let rs = [replicaset("old", "1"), replicaset("new", "2")];
        let broken = pod("new", false, Some("ErrImagePull"));
        let verdict = rollout_verdict(&deployment(), &rs, &[broken], now, PULL_RETRY);
        assert!(matches!(verdict, RolloutVerdict::Failed(_)), "{verdict:?}");
        let old_broken = pod("old", false, Some("ErrImagePull"));
        let verdict = rollout_verdict(&deployment(), &rs, &[old_broken], now, PULL_RETRY);
        assert!(matches!(verdict, RolloutVerdict::Waiting(_)), "{verdict:?}");
    }
}
