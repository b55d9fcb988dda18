//! The sandbox's pod runtime ([`LocalRuntime`]): kubelet, container runtime, CNI and kube-proxy
//! in one, behind the [`cri::Runtime`] contract. Pods get a loopback address and a network
//! ([`crate::net`]: CNI's and kube-proxy's part); containers are built-in programs chosen by
//! image ([`program`]; the contract they implement is [`crate::program`]); every state change
//! goes back to the control plane as a [`PodReport`].
//!
//! This file is the runtime's face: [`LocalRuntime`], its [`cri::Runtime`] implementation and
//! the knobs the sandbox and the mesh half turn. The work is in one module per part of a node:
//! - `lifecycle`: a pod's life as the kubelet runs it: containers started in order, stopped;
//! - `pod`: a running pod's and its containers' states, reported to the control plane;
//! - `env`: a container's environment (the downward API);
//! - `probe`: readiness probes and the kubelet's probe worker;
//! - `images`: containerd's image store and the kubelet's pulls into it; `pull`: the texts
//!   and timings of those pulls (containerd's and the kubelet's); `faults`: pulls failed or
//!   slowed on purpose (`HAPPY_SANDBOX_FAULTS`);
//! - `program`: the built-in programs the images run.

mod env;
pub mod faults;
mod images;
mod lifecycle;
mod pod;
pub mod probe;
pub mod program;
pub mod pull;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc::UnboundedSender;

use crate::cri::{
    self, ContainerState, Duplex, ExecRequest, ExecSession, LogRequest, PodReport, RuntimeError,
    ServiceView,
};
use crate::net::capture::CaptureRecord;
use crate::net::{Network, PodNet};
use crate::program::Program;
use faults::PullFaults;
use images::NodeImages;
use pod::PodRun;
use program::{FakeServiceProgram, IdleProgram};

/// Set by [`halt`]: no container starts or restarts in this process from then on.
static HALTED: AtomicBool = AtomicBool::new(false);

/// Stop every sandbox runtime of this process from starting or restarting a container, for a
/// process about to exit at once (a second Ctrl-C): it kills its children and removes the
/// sandbox's directory, and a container restarted in between (the kubelet restarts an ended
/// container at once the first time) would spawn a new Envoy and write into that directory,
/// leaving both behind. Irreversible.
pub fn halt() {
    HALTED.store(true, Ordering::SeqCst);
}

/// Whether [`halt`] was called.
pub(crate) fn halted() -> bool {
    HALTED.load(Ordering::SeqCst)
}

/// The runtime behind the sandbox's control plane.
pub struct LocalRuntime {
    net: Arc<Network>,
    pods: Mutex<HashMap<(String, String), Arc<PodRun>>>,
    programs: RwLock<Vec<Arc<dyn Program>>>,
    handle: tokio::runtime::Handle,
    /// Whether Docker schema-1 images pull (the test-only knob of [`pull`]); containerd ≥ 2.1
    /// refuses them.
    pull_schema1: std::sync::atomic::AtomicBool,
    /// The node's images and the pull faults ([`faults`]).
    images: Arc<NodeImages>,
}

impl LocalRuntime {
    /// Check the host (loopback aliases) and start an empty runtime; call inside a tokio
    /// runtime.
    pub fn new() -> Result<Arc<Self>, RuntimeError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            RuntimeError::Other(format!("the sandbox runtime needs a tokio runtime: {e}"))
        })?;
        let net = Network::new().map_err(|e| RuntimeError::Other(e.to_string()))?;
        Ok(Arc::new(Self {
            net,
            pods: Mutex::new(HashMap::new()),
            programs: RwLock::new(vec![Arc::new(FakeServiceProgram), Arc::new(IdleProgram)]),
            handle,
            pull_schema1: std::sync::atomic::AtomicBool::new(pull::schema1_allowed_from_env()),
            images: Arc::new(NodeImages::default()),
        }))
    }

    /// Add a program for more images (checked before the built-ins).
    pub fn register_program(&self, program: Arc<dyn Program>) {
        self.programs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(0, program);
    }

    /// Test-only: let Docker schema-1 images pull (as containerd < 2.1 did) for pods started
    /// from now on. Starts as [`pull::PULL_SCHEMA1_VAR`] says.
    pub fn set_pull_schema1(&self, allow: bool) {
        self.pull_schema1
            .store(allow, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fail or slow down image pulls from now on as `faults` says (`HAPPY_SANDBOX_FAULTS`,
    /// which [`crate::Sandbox::start`] reads); replaces earlier rules and their counts.
    pub fn set_pull_faults(&self, faults: PullFaults) {
        *self
            .images
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(faults);
    }

    /// The network (Services, pods' network state).
    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    fn pod(&self, namespace: &str, name: &str) -> Result<Arc<PodRun>, RuntimeError> {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| RuntimeError::PodNotFound {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
    }

    /// A running pod's network: to swap its inbound/outbound paths or find its app's internal
    /// address (the mesh half needs both).
    pub fn pod_net(&self, namespace: &str, name: &str) -> Result<Arc<PodNet>, RuntimeError> {
        Ok(self.pod(namespace, name)?.net.clone())
    }

    /// Everything the pod's recording point captured so far (the workshop's `tcpdump`).
    pub fn capture(&self, namespace: &str, name: &str) -> Result<Vec<CaptureRecord>, RuntimeError> {
        Ok(self.pod(namespace, name)?.net.capture_snapshot())
    }

    /// Stop every pod and every listener.
    pub async fn shutdown(&self) {
        let keys: Vec<(String, String)> = self
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for (ns, name) in keys {
            cri::Runtime::stop_pod(self, &ns, &name).await;
        }
        self.net.shutdown().await;
    }
}

impl cri::Runtime for LocalRuntime {
    fn run_pod(
        &self,
        pod: &Pod,
        reports: UnboundedSender<PodReport>,
    ) -> Result<Ipv4Addr, RuntimeError> {
        lifecycle::run_pod(self, pod, reports)
    }

    fn stop_pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, ()> {
        lifecycle::stop_pod(self, namespace, name)
    }

    fn exec(
        &self,
        namespace: &str,
        name: &str,
        request: ExecRequest,
    ) -> BoxFuture<'static, Result<ExecSession, RuntimeError>> {
        let _guard = self.handle.enter();
        let session = self.pod(namespace, name).and_then(|pod| {
            let container = pod.container(&request.container)?;
            if !matches!(
                *container
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
                ContainerState::Running { .. }
            ) {
                return Err(RuntimeError::Other(format!(
                    "container {:?} in pod {namespace}/{name} is not running",
                    container.name
                )));
            }
            crate::pod_exec::exec_in_pod(pod.net.clone(), request, pod.cancel.clone())
        });
        Box::pin(futures::future::ready(session))
    }

    fn port_forward(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Pin<Box<dyn Duplex>>, RuntimeError>> {
        let pod = self.pod(namespace, name);
        let (namespace, name) = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            let pod = pod?;
            let closed = || RuntimeError::PortClosed {
                namespace: namespace.clone(),
                name: name.clone(),
                port,
            };
            match pod.net.connect_port(port).await {
                Ok(Some(stream)) => Ok(Box::pin(stream) as Pin<Box<dyn Duplex>>),
                Ok(None) => Err(closed()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(closed()),
                Err(e) => Err(RuntimeError::Other(format!(
                    "port-forward to pod {namespace}/{name} port {port}: {e}"
                ))),
            }
        })
    }

    fn logs(
        &self,
        namespace: &str,
        name: &str,
        request: LogRequest,
    ) -> Result<Pin<Box<dyn Stream<Item = Bytes> + Send>>, RuntimeError> {
        let pod = self.pod(namespace, name)?;
        let container = pod.container(&request.container)?;
        pod.started(container)?;
        if request.previous {
            return container
                .log
                .previous(request.tail_lines, request.timestamps)
                .ok_or_else(|| {
                    RuntimeError::Other(format!(
                        "previous terminated container {:?} in pod {namespace}/{name} not found",
                        container.name
                    ))
                });
        }
        Ok(container
            .log
            .stream(request.tail_lines, request.follow, request.timestamps))
    }

    fn allocate_cluster_ip(&self) -> Result<Ipv4Addr, RuntimeError> {
        self.net
            .allocate_cluster_ip()
            .map_err(|e| RuntimeError::Other(e.to_string()))
    }

    fn update_service(&self, service: ServiceView) {
        self.net.update_service(service);
    }

    fn remove_service(&self, namespace: &str, name: &str) {
        self.net.remove_service(namespace, name);
    }
}
