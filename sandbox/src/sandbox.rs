//! The [`Sandbox`]: API server, controllers and runtime started together, stopped together.
//! This is the library entry point the suite's `sandbox` provisioner and `happy-sandbox up`
//! use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::kubectl::KubectlProtocols;
use crate::api::{self, ApiState, tls};
use crate::controllers::{self, Cluster, PodAdmission};
use crate::cri::Runtime;
use crate::kubeconfig;
use crate::mesh::Mesh;
use crate::mesh::proxy::{PilotProgram, ProxyProgram};
use crate::runtime::LocalRuntime;
use crate::store::{Registry, ResourceType, Store};

/// How to start a sandbox. Defaults: a fresh temporary state directory, a random port.
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// Where the kubeconfig (and the runtime's state) go; a temporary directory if `None`.
    pub state_dir: Option<PathBuf>,
    /// The API server's port on 127.0.0.1; random if `None`.
    pub port: Option<u16>,
    /// What answers the requests only kubectl makes (Tables, protobuf, OpenAPI, SPDY
    /// port-forward): `happy-sandbox-cli`'s, for a person following the workshop with kubectl.
    /// Without, each such request is refused with a `Status` saying so; the suite needs none.
    pub kubectl: Option<Arc<dyn KubectlProtocols>>,
}

/// Starting a sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}{}", if source.kind() == std::io::ErrorKind::AddrInUse { " (the port is in use; choose another with --port, or omit it for a random one)" } else { "" })]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error("the pod runtime cannot start: {0}")]
    Runtime(String),
    #[error("Istio: {0}")]
    Istio(#[from] crate::mesh::xds::MeshError),
    #[error("istioctl kube-inject: {0}")]
    Inject(String),
    /// `HAPPY_SANDBOX_ADDON_FILES` names a file `samples/addons` does not have.
    #[error("{0}")]
    Addons(String),
    /// `HAPPY_SANDBOX_FAULTS` has a malformed rule.
    #[error(transparent)]
    Faults(#[from] crate::runtime::faults::FaultsError),
}

/// A running sandbox cluster.
pub struct Sandbox {
    server_url: String,
    token: String,
    kubeconfig_path: PathBuf,
    cluster: Arc<Cluster>,
    mesh: Arc<Mesh>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The real runtime when started with [`Sandbox::start`]: shut down with the sandbox.
    local: Option<Arc<LocalRuntime>>,
    /// Kept so the temporary state directory lives as long as the sandbox.
    _temp: Option<TempDir>,
}

/// A temporary directory removed on drop (no extra dependency for one directory).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sandbox {
    /// Start with the real pod runtime, its image pulls failing as `HAPPY_SANDBOX_FAULTS` says
    /// (see [`crate::runtime::faults`]; a malformed rule is an error before anything starts).
    pub async fn start(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let faults = crate::runtime::faults::PullFaults::from_env()?;
        let local = crate::runtime::LocalRuntime::new()
            .map_err(|e| SandboxError::Runtime(e.to_string()))?;
        local.set_pull_faults(faults);
        let runtime: Arc<dyn Runtime> = local.clone();
        let mut sandbox = Self::start_with_runtime(options, runtime).await?;
        local.register_program(Arc::new(PilotProgram));
        local.register_program(Arc::new(ProxyProgram {
            mesh: sandbox.mesh.clone(),
        }));
        local.register_program(crate::mesh::prometheus::program(
            sandbox.cluster.store.clone(),
        ));
        sandbox.local = Some(local);
        Ok(sandbox)
    }

    /// Start with any runtime (tests use a fake one).
    pub async fn start_with_runtime(
        options: SandboxOptions,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Sandbox, SandboxError> {
        let (state_dir, temp) = match options.state_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "happy-sandbox-{}-{}",
                    std::process::id(),
                    crate::store::random_suffix(8)
                ));
                (dir.clone(), Some(TempDir(dir)))
            }
        };
        std::fs::create_dir_all(&state_dir).map_err(|source| SandboxError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let port = options.port.unwrap_or(0);
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| SandboxError::Listen { port, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen { port, source })?
            .port();
        let certs = tls::generate()?;
        let token = random_token();
        let server_url = format!("https://127.0.0.1:{port}");
        let kubeconfig_path = state_dir.join("kubeconfig");
        kubeconfig::write(
            &kubeconfig_path,
            &kubeconfig::render(&server_url, &certs.ca_pem, &token),
        )?;

        let cluster = Arc::new(Cluster::new(runtime));
        controllers::namespace::bootstrap(&cluster);
        let mesh = Mesh::new(&cluster, state_dir.join("mesh"))?;
        cluster.add_pod_admission(mesh.injector());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        controllers::spawn_all(&cluster, &shutdown, &tasks);
        tasks.spawn(mesh.clone().run(shutdown.clone()));
        let state = Arc::new(ApiState {
            cluster: cluster.clone(),
            token: token.clone(),
            server_address: format!("127.0.0.1:{port}"),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
            kubectl: options.kubectl.clone(),
        });
        tasks.spawn(api::serve(listener, certs.server_config, state));
        Ok(Sandbox {
            server_url,
            token,
            kubeconfig_path,
            cluster,
            mesh,
            shutdown,
            tasks,
            local: None,
            _temp: temp,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The bearer token the API server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The temporary state directory the sandbox made for itself (removed when it is
    /// dropped), `None` when it was given one.
    pub fn temp_dir(&self) -> Option<&Path> {
        self._temp.as_ref().map(|t| t.0.as_path())
    }

    /// The kubeconfig written at start (mode 0600).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The object store (for in-process inspection).
    pub fn store(&self) -> &Arc<Store> {
        &self.cluster.store
    }

    /// The resource registry: register custom resource types here.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.cluster.registry
    }

    /// Serve another resource type, for example an Istio CRD version.
    pub fn register_resource(&self, resource: ResourceType) {
        self.cluster.registry.register(resource);
    }

    /// Add a hook run on every pod creation (sidecar injection).
    pub fn add_pod_admission(&self, hook: Arc<dyn PodAdmission>) {
        self.cluster.add_pod_admission(hook);
    }

    /// The real pod runtime (pod networks, captures, extra programs), when started with
    /// [`Sandbox::start`].
    pub fn local_runtime(&self) -> Option<&Arc<LocalRuntime>> {
        self.local.as_ref()
    }

    /// The shared cluster state (store, registry, runtime).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The in-process istiod (for inspection: proxies' directories, the CA).
    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    /// `istioctl install --set profile=demo`: serve Istio's CRDs, run istiod and both gateways,
    /// turn on sidecar injection. Idempotent. Proxies need an `envoy` binary (see
    /// [`crate::mesh::envoy_unavailable_reason`]); without one their containers fail with a
    /// message saying how to get it. The images are on [`crate::mesh::DEFAULT_HUB`].
    pub async fn install_istio(&self) -> Result<(), SandboxError> {
        self.install_istio_from(crate::mesh::DEFAULT_HUB).await
    }

    /// [`Sandbox::install_istio`] with `--set hub=<hub>`: istiod, the gateways and every
    /// injected sidecar name `<hub>/pilot:<tag>` and `<hub>/proxyv2:<tag>`, so they are pulled
    /// from that hub (and a pull fault on it hits them).
    pub async fn install_istio_from(&self, hub: &str) -> Result<(), SandboxError> {
        self.mesh.install(&self.cluster, hub)?;
        Ok(())
    }

    /// `kubectl apply -f samples/addons`: the addons the sandbox can run (Prometheus).
    pub async fn install_addons(&self) -> Result<(), SandboxError> {
        let applied = applied_addon_files(std::env::var(ADDON_FILES_VAR).ok().as_deref())?;
        if applied.contains(&"prometheus.yaml") {
            crate::mesh::xds::create_objects(
                &self.cluster,
                crate::mesh::prometheus::addon_objects(),
            )?;
        }
        Ok(())
    }

    /// `istioctl kube-inject -f -`: the same injection the webhook does (the installed hub's
    /// proxy image), on the workloads of a multi-document YAML.
    pub fn kube_inject(&self, yaml: &str) -> Result<String, SandboxError> {
        crate::mesh::inject::kube_inject(yaml, &self.mesh.hub()).map_err(SandboxError::Inject)
    }

    /// Stop the API server and controllers, then every pod; returns when all of it ended.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let (pods, _) = self.cluster.store.list(&controllers::gr("", "pods"), None);
        let stops: Vec<_> = pods
            .iter()
            .filter(|p| !p["spec"]["nodeName"].is_null())
            .map(|p| {
                self.cluster.runtime.stop_pod(
                    p["metadata"]["namespace"].as_str().unwrap_or_default(),
                    p["metadata"]["name"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        futures::future::join_all(stops).await;
        for (ns, name) in services(&self.cluster) {
            self.cluster.runtime.remove_service(&ns, &name);
        }
        if let Some(local) = &self.local {
            local.shutdown().await;
        }
    }
}

/// Test-only: the files of `samples/addons` a reader applied, comma-separated. Unset (or blank)
/// is the whole directory, as the workshop's `kubectl apply -f istio-1.12.2/samples/addons/`.
/// Of those files the sandbox models `prometheus.yaml` (Grafana and Kiali it does not run), so
/// a reader who applied only `kiali.yaml` gets no Prometheus (tests/runs/negative.rs breaks C12
/// so).
pub(crate) const ADDON_FILES_VAR: &str = "HAPPY_SANDBOX_ADDON_FILES";

/// The top level of istio/istio `samples/addons` (tags 1.29.0 to 1.31.0-rc.0; see happy-provision
/// `istio/addons.rs`).
const ADDON_FILES: [&str; 5] = [
    "grafana.yaml",
    "jaeger.yaml",
    "kiali.yaml",
    "loki.yaml",
    "prometheus.yaml",
];

/// The addon files [`ADDON_FILES_VAR`]'s `value` names: all when unset or blank; a name that
/// is not one of `samples/addons`' files is an error naming the variable.
fn applied_addon_files(value: Option<&str>) -> Result<Vec<&'static str>, SandboxError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(ADDON_FILES.to_vec());
    };
    value
        .split(',')
        .map(str::trim)
        .map(|name| {
            ADDON_FILES
                .iter()
                .find(|f| **f == name)
                .copied()
                .ok_or_else(|| {
                    SandboxError::Addons(format!(
                        "{ADDON_FILES_VAR}={value:?}: {name:?} is not a file of samples/addons \
                         (it has {})",
                        ADDON_FILES.join(", ")
                    ))
                })
        })
        .collect()
}

fn services(cluster: &Cluster) -> Vec<(String, String)> {
    cluster
        .store
        .list(&controllers::gr("", "services"), None)
        .0
        .iter()
        .map(|s| {
            (
                s["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

impl Drop for Sandbox {
    /// Without `shutdown().await` (a test that panicked, say): cancel every task and ask the
    /// runtime to stop every pod. The stops are spawned when a runtime is still there.
    fn drop(&mut self) {
        if self.shutdown.is_cancelled() {
            return;
        }
        self.shutdown.cancel();
        self.tasks.close();
        let (pods, _) = self.cluster.store.list(&controllers::gr("", "pods"), None);
        for p in pods.iter().filter(|p| !p["spec"]["nodeName"].is_null()) {
            let stop = self.cluster.runtime.stop_pod(
                p["metadata"]["namespace"].as_str().unwrap_or_default(),
                p["metadata"]["name"].as_str().unwrap_or_default(),
            );
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(stop);
            }
        }
        for (ns, name) in services(&self.cluster) {
            self.cluster.runtime.remove_service(&ns, &name);
        }
        if let (Some(local), Ok(handle)) =
            (self.local.clone(), tokio::runtime::Handle::try_current())
        {
            handle.spawn(async move { local.shutdown().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_addon_files_a_reader_applied() {
        assert_eq!(applied_addon_files(None).unwrap(), ADDON_FILES.to_vec());
        assert_eq!(
            applied_addon_files(Some(" ")).unwrap(),
            ADDON_FILES.to_vec()
        );
        assert_eq!(
            applied_addon_files(Some("kiali.yaml, prometheus.yaml")).unwrap(),
            ["kiali.yaml", "prometheus.yaml"]
        );
        let err = applied_addon_files(Some("kiali.yaml,prometheus.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(ADDON_FILES_VAR) && err.contains("\"prometheus.yml\""),
            "{err}"
        );
    }
}
