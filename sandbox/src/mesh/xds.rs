//! [`Mesh`]: istiod inside the sandbox. It serves the Istio CRDs once installed, injects
//! sidecars, issues certificates, and keeps every running proxy's configuration current:
//! on any change of the objects the translation reads it recomputes each proxy's listeners and
//! clusters and, when they changed, replaces the proxy's LDS/CDS files by atomic rename
//! (file-based xDS). Bursts of changes are coalesced by draining the store's event queue
//! before recomputing — never by waiting a fixed time.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::ca::{Ca, CertPaths};
use super::crds;
use super::inject::Injector;
use super::install::{Profile, profile_objects};
use super::translate::bootstrap::{ProxyFiles, bootstrap};
use super::translate::{self, MeshInput, ProxyInput, Warning};
use crate::controllers::{Cluster, gr};
use crate::store::{GroupResource, Store};

/// Mesh failures, each naming the proxy, file or object at fault.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ca(#[from] super::ca::CaError),
    #[error("cannot create {what}: {message}")]
    Create { what: String, message: String },
    /// A test-only knob with a value the sandbox cannot honour.
    #[error("{0}")]
    Setting(String),
}

/// A running proxy the mesh configures.
pub struct ProxyHandle {
    pub input: ProxyInput,
    pub files: ProxyFiles,
    /// The last LDS and CDS resources written, to write only on change.
    last: Mutex<(Value, Value, u64)>,
}

/// istiod.
pub struct Mesh {
    store: Arc<Store>,
    cluster: Weak<Cluster>,
    dir: PathBuf,
    ca: Ca,
    installed: Arc<AtomicBool>,
    /// The hub of Istio's images, as the install named it (the injector reads it too).
    hub: Arc<RwLock<String>>,
    proxies: Mutex<HashMap<(String, String), Arc<ProxyHandle>>>,
    /// Warnings already recorded as Events (object uid + message).
    reported: Mutex<BTreeSet<(String, String)>>,
}

/// The resources whose changes can change some proxy's configuration.
fn relevant(resource: &GroupResource) -> bool {
    (resource.group.is_empty() && matches!(resource.resource.as_str(), "services" | "pods"))
        || resource.group == crds::NETWORKING
        || resource.group == crds::SECURITY
        || resource.group == crds::TELEMETRY
}

/// Write `value` to `path` through a temporary file in the same directory and a rename, so a
/// reader (Envoy) never sees a half-written file.
pub fn write_atomic(path: &Path, value: &Value) -> Result<(), MeshError> {
    let err = |source| MeshError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_vec_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

impl Mesh {
    /// A mesh (not installed yet) keeping its files under `dir`.
    pub fn new(cluster: &Arc<Cluster>, dir: PathBuf) -> Result<Arc<Self>, MeshError> {
        std::fs::create_dir_all(&dir).map_err(|source| MeshError::Write {
            path: dir.clone(),
            source,
        })?;
        Ok(Arc::new(Self {
            store: cluster.store.clone(),
            cluster: Arc::downgrade(cluster),
            dir,
            ca: Ca::new()?,
            installed: Arc::new(AtomicBool::new(false)),
            hub: Arc::new(RwLock::new(super::DEFAULT_HUB.to_string())),
            proxies: Mutex::new(HashMap::new()),
            reported: Mutex::new(BTreeSet::new()),
        }))
    }

    /// The object store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The mesh's CA.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The sidecar injector (a pod admission hook, active once installed).
    pub fn injector(&self) -> Arc<Injector> {
        Arc::new(Injector {
            installed: self.installed.clone(),
            hub: self.hub.clone(),
        })
    }

    /// The hub of Istio's images: the one the install named ([`super::DEFAULT_HUB`] before).
    pub fn hub(&self) -> String {
        self.hub
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Install Istio with its images on `hub`: serve the CRDs, create the demo profile's objects
    /// (those missing; the default profile's under the test-only
    /// [`super::install::ISTIO_PROFILE_VAR`]), and turn on injection with that hub. Idempotent.
    pub fn install(&self, cluster: &Cluster, hub: &str) -> Result<(), MeshError> {
        let profile = Profile::from_env().map_err(MeshError::Setting)?;
        *self.hub.write().unwrap_or_else(PoisonError::into_inner) = hub.to_string();
        for t in crds::resource_types() {
            cluster.registry.register(t);
        }
        for obj in profile_objects(profile, self.ca.root_pem(), hub) {
            create_if_missing(cluster, obj)?;
        }
        self.installed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The directory of the proxy of pod `ns/name`.
    pub fn proxy_dir(&self, namespace: &str, pod: &str) -> PathBuf {
        self.dir.join("proxies").join(namespace).join(pod)
    }

    /// Snapshot of what the translation reads.
    pub fn snapshot(&self) -> MeshInput {
        let list = |g: GroupResource| self.store.list(&g, None).0;
        let telemetries = translate::input::by_age(list(crds::telemetries()));
        let mut input = MeshInput::from_objects(
            &list(gr("", "services")),
            &list(gr("", "pods")),
            list(crds::gateways()),
            list(crds::virtual_services()),
            list(crds::destination_rules()),
            list(crds::service_entries()),
            list(crds::peer_authentications()),
            list(crds::authorization_policies()),
        );
        input.telemetries = telemetries;
        input
    }

    /// Register a starting proxy: its directory, certificate, bootstrap and first
    /// configuration are written before it returns, so Envoy starts fully configured.
    pub fn register_proxy(&self, input: ProxyInput) -> Result<Arc<ProxyHandle>, MeshError> {
        let dir = self.proxy_dir(&input.meta.namespace, &input.meta.pod_name);
        // A pod name is reused only after its previous proxy ended; start clean.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| MeshError::Write {
            path: dir.clone(),
            source,
        })?;
        self.ca
            .write_workload_files(&input.meta.spiffe(), &CertPaths::in_dir(&dir))?;
        let files = ProxyFiles::in_dir(&dir);
        write_atomic(&files.bootstrap, &bootstrap(&input, &files))?;
        let handle = Arc::new(ProxyHandle {
            input,
            files,
            last: Mutex::new((Value::Null, Value::Null, 0)),
        });
        let snapshot = self.snapshot();
        self.configure(&handle, &snapshot)?;
        self.proxies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (
                    handle.input.meta.namespace.clone(),
                    handle.input.meta.pod_name.clone(),
                ),
                handle.clone(),
            );
        Ok(handle)
    }

    /// Forget a proxy that ended (its directory is removed).
    pub fn unregister_proxy(&self, namespace: &str, pod: &str) {
        let removed = self
            .proxies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_string(), pod.to_string()));
        if let Some(h) = removed {
            let _ = std::fs::remove_dir_all(&h.files.dir);
        }
    }

    /// Translate for one proxy and write its files if anything changed.
    fn configure(&self, proxy: &ProxyHandle, snapshot: &MeshInput) -> Result<(), MeshError> {
        let config = translate::translate(snapshot, &proxy.input);
        self.report(&config.warnings);
        let (listeners, clusters) = (Value::from(config.listeners), Value::from(config.clusters));
        let mut last = proxy.last.lock().unwrap_or_else(PoisonError::into_inner);
        let (lds_changed, cds_changed) = (last.0 != listeners, last.1 != clusters);
        if !lds_changed && !cds_changed {
            return Ok(());
        }
        let version = last.2 + 1;
        // Clusters first: new routes may name new clusters.
        if cds_changed {
            let cs = clusters.as_array().cloned().unwrap_or_default();
            write_atomic(&proxy.files.cds, &translate::cds_file(version, &cs))?;
        }
        if lds_changed {
            let ls = listeners.as_array().cloned().unwrap_or_default();
            write_atomic(&proxy.files.lds, &translate::lds_file(version, &ls))?;
        }
        *last = (listeners, clusters, version);
        Ok(())
    }

    /// Recompute every proxy's configuration.
    pub fn regenerate(&self) {
        let proxies: Vec<Arc<ProxyHandle>> = self
            .proxies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        if proxies.is_empty() {
            return;
        }
        let snapshot = self.snapshot();
        for p in proxies {
            if let Err(e) = self.configure(&p, &snapshot) {
                tracing::warn!(
                    "istiod: cannot configure the proxy of pod {}/{}: {e}",
                    p.input.meta.namespace,
                    p.input.meta.pod_name
                );
            }
        }
    }

    /// Log each warning and record it once as a Kubernetes Event on the object it is about.
    fn report(&self, warnings: &[Warning]) {
        for w in warnings {
            let resource = match w.kind.as_str() {
                "Gateway" => crds::gateways(),
                "VirtualService" => crds::virtual_services(),
                "DestinationRule" => crds::destination_rules(),
                "ServiceEntry" => crds::service_entries(),
                "PeerAuthentication" => crds::peer_authentications(),
                "AuthorizationPolicy" => crds::authorization_policies(),
                "Telemetry" => crds::telemetries(),
                _ => gr("", "services"),
            };
            let obj = (!w.name.is_empty())
                .then(|| self.store.get(&resource, &w.namespace, &w.name))
                .flatten();
            let uid = obj
                .as_ref()
                .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{}/{}/{}", w.kind, w.namespace, w.name));
            let first = self
                .reported
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((uid, w.message.clone()));
            if !first {
                continue;
            }
            tracing::warn!("istiod: {w}");
            if let (Some(obj), Some(cluster)) = (obj, self.cluster.upgrade()) {
                crate::controllers::events::record(
                    &cluster,
                    &obj,
                    "Warning",
                    "UnsupportedConfiguration",
                    &format!("happy-sandbox: {}", w.message),
                    "istiod",
                );
            }
        }
    }

    /// Keep proxies current until `shutdown`: every relevant store change triggers a
    /// recomputation, after draining whatever else is already queued.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        use tokio::sync::broadcast::error::TryRecvError;
        let Ok((_, mut rx)) = self.store.subscribe(None) else {
            return;
        };
        loop {
            let Some(ev) = crate::controllers::next_event(&mut rx, &shutdown).await else {
                return;
            };
            let mut dirty = ev.as_ref().is_none_or(|e| relevant(&e.resource));
            loop {
                match rx.try_recv() {
                    Ok(e) => dirty |= relevant(&e.resource),
                    Err(TryRecvError::Lagged(_)) => dirty = true,
                    Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
                }
            }
            if dirty {
                self.regenerate();
            }
        }
    }
}

/// Create `obj` through the cluster (defaults, admission) unless it exists.
fn create_if_missing(cluster: &Cluster, obj: Value) -> Result<(), MeshError> {
    let (group, _) = obj["apiVersion"]
        .as_str()
        .unwrap_or("v1")
        .split_once('/')
        .unwrap_or(("", "v1"));
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let resource = cluster
        .registry
        .all()
        .into_iter()
        .find(|t| t.group == group && t.kind == kind)
        .map(|t| t.group_resource())
        .ok_or_else(|| MeshError::Create {
            what: kind.clone(),
            message: "the API server does not serve this kind".into(),
        })?;
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if cluster.store.get(&resource, ns, name).is_some() {
        return Ok(());
    }
    let what = format!("{kind} {ns}/{name}");
    match cluster.create(&resource, obj) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(MeshError::Create {
            what,
            message: e.message.clone(),
        }),
    }
}

/// Create the addon objects (`prometheus::addon_objects`) that are missing.
pub fn create_objects(cluster: &Cluster, objects: Vec<Value>) -> Result<(), MeshError> {
    for obj in objects {
        create_if_missing(cluster, obj)?;
    }
    Ok(())
}
