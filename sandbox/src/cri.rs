//! The contract between the sandbox's control plane (API server and controllers) and its pod
//! runtime, named after Kubernetes' Container Runtime Interface. The control plane decides *what*
//! should run (pods, services, endpoints); the runtime makes it run on this host (processes,
//! loopback addresses, DNS, forwarding, logs, exec, port-forward) and reports what happened.
//! Keeping this seam narrow lets each half be tested alone, and lets the Istio half add sidecars
//! without touching the API server.

use std::net::Ipv4Addr;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedSender;

/// What one container is doing, as the kubelet reports it in `containerStatuses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running, for a reason such as `ErrImagePull` or `ContainerCreating`.
    Waiting { reason: String, message: String },
    /// Running since `started_at`; `ready` once its readiness (if any) holds.
    Running { started_at: SystemTime, ready: bool },
    /// Exited.
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        finished_at: SystemTime,
    },
}

/// The status of one container, by name; `init` marks init containers (native sidecars
/// included, which Kubernetes reports under `initContainerStatuses`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerReport {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub restart_count: i32,
    /// How its last run ended, once it has been restarted or waits to be (`lastState`).
    pub last_state: Option<ContainerState>,
    pub state: ContainerState,
}

/// An Event the node records about the pod (the kubelet's image manager: `Pulling`,
/// `Pulled`, `Failed`, `BackOff`), recorded once by the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent {
    /// `Normal` or `Warning`.
    pub event_type: String,
    pub reason: String,
    pub message: String,
}

/// A pod's observed state: sent by the runtime whenever any part of it changes, or with the
/// events it has to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod_ip: Ipv4Addr,
    pub containers: Vec<ContainerReport>,
    /// Events to record about the pod, before this state is applied.
    pub events: Vec<NodeEvent>,
}

/// `kubectl exec` / `Api::<Pod>::exec` parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
}

/// How an exec'd command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecExit {
    /// The process's exit code (126 for a command the sandbox does not provide).
    pub code: i32,
}

/// A running exec'd command: its streams and its exit.
pub struct ExecSession {
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    pub exit: BoxFuture<'static, ExecExit>,
}

/// `GET pods/NAME/log` parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub container: String,
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub previous: bool,
}

/// A byte stream both ways: what a port-forward connects the client to.
pub trait Duplex: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Duplex for T {}

/// One port of a Service, as the runtime needs it to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortView {
    pub name: Option<String>,
    pub port: u16,
    /// A container port number or the name of a container port.
    pub target_port: TargetPort,
}

/// `targetPort`: a number, or the name of a container port resolved per endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// One endpoint (pod) behind a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    pub pod_name: String,
    pub ip: Ipv4Addr,
    pub ready: bool,
    /// The pod's named container ports, for resolving `TargetPort::Name`.
    pub named_ports: Vec<(String, u16)>,
}

/// A Service with its endpoints: everything DNS and forwarding need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<ServicePortView>,
    pub endpoints: Vec<EndpointView>,
}

/// Runtime failures, each naming the pod, container or command at fault.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("pod {namespace}/{name} is not running in the sandbox")]
    PodNotFound { namespace: String, name: String },
    #[error("container {container:?} not found in pod {namespace}/{name}")]
    ContainerNotFound {
        namespace: String,
        name: String,
        container: String,
    },
    #[error("nothing listens on port {port} in pod {namespace}/{name}")]
    PortClosed {
        namespace: String,
        name: String,
        port: u16,
    },
    #[error("{0}")]
    Other(String),
}

/// The runtime half of the sandbox: kubelet, container runtime, CNI and kube-proxy in one.
pub trait Runtime: Send + Sync + 'static {
    /// Start a pod that the control plane has bound to this node. The runtime allocates the pod's
    /// loopback address, starts its containers and sends a [`PodReport`] on `reports` for every
    /// change (including the first, with `ContainerCreating` or the running state).
    fn run_pod(
        &self,
        pod: &Pod,
        reports: UnboundedSender<PodReport>,
    ) -> Result<Ipv4Addr, RuntimeError>;

    /// Stop a pod: its containers end, its listeners close, its address is released. Resolves
    /// once nothing of the pod is left.
    fn stop_pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, ()>;

    /// Run a command in a container (only what the sandbox provides, never a shell).
    fn exec(
        &self,
        namespace: &str,
        name: &str,
        request: ExecRequest,
    ) -> BoxFuture<'static, Result<ExecSession, RuntimeError>>;

    /// Connect to `port` inside the pod, as `kubectl port-forward` does.
    fn port_forward(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Pin<Box<dyn Duplex>>, RuntimeError>>;

    /// A container's log: what is there now (or its last `tail_lines`), then, with `follow`, new
    /// lines as they come until the container or the pod ends.
    fn logs(
        &self,
        namespace: &str,
        name: &str,
        request: LogRequest,
    ) -> Result<Pin<Box<dyn Stream<Item = Bytes> + Send>>, RuntimeError>;

    /// A new ClusterIP for a Service being created.
    fn allocate_cluster_ip(&self) -> Result<Ipv4Addr, RuntimeError>;

    /// Set (create or replace) a Service's DNS name and forwarding.
    fn update_service(&self, service: ServiceView);

    /// Remove a Service's DNS name and forwarding, and release its ClusterIP.
    fn remove_service(&self, namespace: &str, name: &str);
}
