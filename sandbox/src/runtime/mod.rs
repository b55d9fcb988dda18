//! The sandbox's pod runtime ([`LocalRuntime`]): kubelet, container runtime, CNI and kube-proxy
//! in one, behind the [`cri::Runtime`] contract. Pods get a loopback address and a network
//! ([`crate::net`]); containers are built-in programs chosen by image ([`program`]; the
//! contract they implement is [`crate::program`]); every state change goes back to the control
//! plane as a [`PodReport`].

pub mod faults;
pub mod probe;
pub mod program;
pub mod pull;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cri::{
    self, ContainerReport, ContainerState, Duplex, ExecRequest, ExecSession, LogRequest, NodeEvent,
    PodReport, RuntimeError, ServiceView,
};
use crate::net::capture::CaptureRecord;
use crate::net::{Network, PodNet};
use crate::program::logs::{DEFAULT_LOG_LINES, LogBuffer};
use crate::program::{ContainerContext, Exit, Program};
use faults::{PullDecision, PullFaults};
use probe::ReadinessProbe;
use program::{FakeServiceProgram, IdleProgram};

/// One container of a running pod.
struct ContainerRun {
    name: String,
    image: String,
    init: bool,
    log: Arc<LogBuffer>,
    state: Mutex<ContainerState>,
}

/// One running pod.
struct PodRun {
    namespace: String,
    name: String,
    uid: String,
    net: Arc<PodNet>,
    containers: Vec<Arc<ContainerRun>>,
    reports: UnboundedSender<PodReport>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl PodRun {
    fn report(&self) {
        self.send(Vec::new());
    }

    /// Record an event about the pod (the kubelet's image manager's), with its current state.
    fn event(&self, event_type: &str, reason: &str, message: String) {
        self.send(vec![NodeEvent {
            event_type: event_type.into(),
            reason: reason.into(),
            message,
        }]);
    }

    fn send(&self, events: Vec<NodeEvent>) {
        let containers = self
            .containers
            .iter()
            .map(|c| ContainerReport {
                name: c.name.clone(),
                image: c.image.clone(),
                init: c.init,
                restart_count: 0,
                state: c
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            })
            .collect();
        // The control plane may already have forgotten the pod; nothing to do then.
        let _ = self.reports.send(PodReport {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            pod_ip: self.net.ip(),
            containers,
            events,
        });
    }

    fn set_state(&self, container: &ContainerRun, state: ContainerState) {
        let changed = {
            let mut s = container
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let changed = *s != state;
            *s = state;
            changed
        };
        if changed {
            self.report();
        }
    }

    fn set_ready(&self, container: &ContainerRun, ready: bool) {
        let current = container
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let ContainerState::Running { started_at, .. } = current {
            self.set_state(container, ContainerState::Running { started_at, ready });
        }
    }

    /// Kubernetes refuses logs and exec for a container that never started.
    fn started(&self, container: &ContainerRun) -> Result<(), RuntimeError> {
        let state = container
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match state {
            ContainerState::Waiting { reason, .. } => Err(RuntimeError::Other(format!(
                "container {:?} in pod {}/{} is waiting to start: {reason}",
                container.name, self.namespace, self.name
            ))),
            _ => Ok(()),
        }
    }

    fn container(&self, name: &str) -> Result<&Arc<ContainerRun>, RuntimeError> {
        // An empty name means "the only container", as kubectl does for one-container pods.
        let found = if name.is_empty() {
            let app: Vec<_> = self.containers.iter().filter(|c| !c.init).collect();
            (app.len() == 1).then(|| app[0])
        } else {
            self.containers.iter().find(|c| c.name == name)
        };
        found.ok_or_else(|| RuntimeError::ContainerNotFound {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            container: name.to_string(),
        })
    }
}

/// The node's image store and its registries, as the image pulls see them.
#[derive(Default)]
struct NodeImages {
    /// Fully qualified references pulled so far (a fresh kind node has none of the workshop's).
    present: Mutex<HashSet<String>>,
    /// `HAPPY_SANDBOX_FAULTS`' rules.
    faults: RwLock<Arc<PullFaults>>,
}

impl NodeImages {
    fn present(&self, reference: &str) -> bool {
        self.present
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(reference)
    }

    fn pulled(&self, reference: String) {
        self.present
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(reference);
    }

    fn faults(&self) -> Arc<PullFaults> {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
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

    /// The program for an image, or the pull error the kubelet would report for it (every
    /// pull of it fails so).
    fn program_for(&self, image: &str) -> Result<Arc<dyn Program>, String> {
        if pull::is_schema1(image) && !self.pull_schema1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(pull::schema1_refusal(image));
        }
        let programs = self.programs.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = programs.iter().find(|p| p.matches(image)) {
            return Ok(p.clone());
        }
        // The sandbox's registry holds only the images it can run: any other is not found
        // there, with containerd's 404 text (as a tag missing from its registry gives on kind), and
        // the sandbox says what it does hold.
        let known: Vec<String> = programs.iter().map(|p| p.describe()).collect();
        Err(format!(
            "{} (the happy-sandbox's registry holds only the images it can run: {})",
            pull::fault_message(image, faults::PullFault::NotFound),
            known.join(", ")
        ))
    }
}

/// A container's env with `fieldRef`s resolved the way the kubelet does (the fields the
/// workshop uses; other sources have no value in the sandbox).
fn container_env(pod: &Pod, container: &Container, pod_ip: Ipv4Addr) -> Vec<(String, String)> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    container
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.namespace") => meta.namespace.clone().unwrap_or_default(),
                        Some("metadata.name") => meta.name.clone().unwrap_or_default(),
                        Some("metadata.uid") => meta.uid.clone().unwrap_or_default(),
                        Some("status.podIP") => pod_ip.to_string(),
                        Some("spec.serviceAccountName") => spec
                            .and_then(|s| s.service_account_name.clone())
                            .unwrap_or_else(|| "default".into()),
                        Some("spec.nodeName") => {
                            spec.and_then(|s| s.node_name.clone()).unwrap_or_default()
                        }
                        _ => String::new(),
                    }
                }
                (None, None) => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect()
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.into(),
        message: message.into(),
    }
}

impl LocalRuntime {
    /// Start `spec` as container `run` of `pod_run`; resolves when the program ends. `started`
    /// fires when the program says it serves (what a startup probe waits for).
    fn start_container(
        &self,
        pod_run: &Arc<PodRun>,
        run: &Arc<ContainerRun>,
        spec: &Container,
        env: Vec<(String, String)>,
        program: Arc<dyn Program>,
        started: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> BoxFuture<'static, Exit> {
        let probe: Option<Result<ReadinessProbe, String>> = probe::readiness_probe(spec);
        let pod_run = pod_run.clone();
        let run = run.clone();
        let spec = spec.clone();
        Box::pin(async move {
            pod_run.set_state(
                &run,
                ContainerState::Running {
                    started_at: SystemTime::now(),
                    ready: false,
                },
            );
            let ready: Box<dyn FnOnce() + Send> = {
                let pod_run = pod_run.clone();
                let run = run.clone();
                match probe {
                    None => Box::new(move || pod_run.set_ready(&run, true)),
                    Some(Err(problem)) => {
                        run.log.write(&problem);
                        Box::new(|| {})
                    }
                    Some(Ok(probe)) => Box::new(move || {
                        let cancel = pod_run.cancel.clone();
                        let tracker = pod_run.tracker.clone();
                        tracker.spawn(async move {
                            tokio::select! {
                                _ = cancel.cancelled() => {}
                                _ = probe_loop(&pod_run, &run, &probe) => {}
                            }
                        });
                    }),
                }
            };
            let ready: Box<dyn FnOnce() + Send> = match started {
                None => ready,
                Some(started) => Box::new(move || {
                    ready();
                    let _ = started.send(());
                }),
            };
            let ctx = ContainerContext {
                namespace: pod_run.namespace.clone(),
                pod_name: pod_run.name.clone(),
                container: spec,
                env,
                net: pod_run.net.clone(),
                log: run.log.clone(),
                ready,
                cancel: pod_run.cancel.child_token(),
            };
            let exit = program.run(ctx).await;
            pod_run.set_state(
                &run,
                ContainerState::Terminated {
                    exit_code: exit.code,
                    reason: exit.reason.clone(),
                    message: exit.message.clone(),
                    finished_at: SystemTime::now(),
                },
            );
            run.log.close();
            exit
        })
    }
}

/// The kubelet's `EnsureImageExists` for one container (kubernetes
/// `pkg/kubelet/images/image_manager.go`): an image already on the node with a policy other
/// than `Always` is used at once (`Pulled` "already present"); otherwise each attempt records
/// `Pulling`, asks the registry (the fault rules, then `refused`: the error every pull of an
/// image the sandbox cannot run gets), and on success records `Pulled`. A failed attempt
/// records `Failed` with the error, shows `ErrImagePull` with it, then, once the kubelet's next
/// sync finds the image in back-off, `BackOff` and `ImagePullBackOff`; the next attempt comes
/// when the back-off (10 s doubling to 300 s) expires. Resolves `true` once the image is
/// there, `false` if the pod stops first.
async fn ensure_image(
    images: Arc<NodeImages>,
    pod_run: Arc<PodRun>,
    run: Arc<ContainerRun>,
    always: bool,
    refused: Option<String>,
) -> bool {
    let reference = pull::docker_ref(&run.image);
    if !always && refused.is_none() && images.present(&reference) {
        pod_run.event(
            "Normal",
            "Pulled",
            pull::already_present_message(&run.image),
        );
        return true;
    }
    let mut backoff = pull::BACKOFF_INITIAL;
    loop {
        pod_run.event(
            "Normal",
            "Pulling",
            format!("Pulling image {:?}", run.image),
        );
        let started = Instant::now();
        let failure = match images.faults().decide(&reference) {
            PullDecision::Fail(fault) => Some(pull::fault_message(&run.image, fault)),
            PullDecision::Proceed(took) => {
                // A slow registry: the pull's own time, a timer standing in for the transfer.
                if !took.is_zero() {
                    tokio::select! {
                        _ = pod_run.cancel.cancelled() => return false,
                        _ = tokio::time::sleep(took) => {}
                    }
                }
                refused.clone()
            }
        };
        let Some(message) = failure else {
            images.pulled(reference);
            pod_run.event(
                "Normal",
                "Pulled",
                pull::pulled_message(&run.image, started.elapsed()),
            );
            return true;
        };
        pod_run.event(
            "Warning",
            "Failed",
            format!("Failed to pull image {:?}: {message}", run.image),
        );
        pod_run.set_state(&run, waiting("ErrImagePull", &message));
        // Timers modelling the kubelet: its next sync of the pod, then the image back-off.
        tokio::select! {
            _ = pod_run.cancel.cancelled() => return false,
            _ = tokio::time::sleep(pull::ERR_IMAGE_PULL_SHOWN) => {}
        }
        pod_run.event("Normal", "BackOff", pull::backoff_message(&run.image));
        pod_run.set_state(
            &run,
            waiting(
                "ImagePullBackOff",
                &pull::backoff_waiting_message(&run.image, &message),
            ),
        );
        tokio::select! {
            _ = pod_run.cancel.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = pull::next_backoff(backoff);
    }
}

async fn probe_loop(pod_run: &PodRun, run: &ContainerRun, probe: &ReadinessProbe) {
    tokio::time::sleep(probe.initial_delay).await;
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        if probe::check_once(pod_run.net.ip(), probe).await {
            successes += 1;
            failures = 0;
            if successes >= probe.success_threshold {
                pod_run.set_ready(run, true);
            }
        } else {
            failures += 1;
            successes = 0;
            if failures >= probe.failure_threshold {
                pod_run.set_ready(run, false);
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}

impl cri::Runtime for LocalRuntime {
    fn run_pod(
        &self,
        pod: &Pod,
        reports: UnboundedSender<PodReport>,
    ) -> Result<Ipv4Addr, RuntimeError> {
        let _guard = self.handle.enter();
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod
            .metadata
            .name
            .clone()
            .ok_or_else(|| RuntimeError::Other("a pod to run has no metadata.name".into()))?;
        let key = (namespace.clone(), name.clone());
        if self
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&key)
        {
            return Err(RuntimeError::Other(format!(
                "pod {namespace}/{name} is already running in the sandbox"
            )));
        }
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| RuntimeError::Other(format!("pod {namespace}/{name} has no spec")))?;

        let net = self
            .net
            .create_pod(&namespace, &name)
            .map_err(|e| RuntimeError::Other(format!("pod {namespace}/{name}: {e}")))?;
        let pod_ip = net.ip();

        let init_specs: Vec<&Container> = spec.init_containers.iter().flatten().collect();
        let app_specs: Vec<&Container> = spec.containers.iter().collect();
        let mut containers = Vec::new();
        let mut plans = Vec::new();
        for (c, init) in init_specs
            .iter()
            .map(|c| (*c, true))
            .chain(app_specs.iter().map(|c| (*c, false)))
        {
            let image = c.image.clone().unwrap_or_default();
            let program = self.program_for(&image);
            let state = if init {
                waiting("PodInitializing", "")
            } else {
                waiting("ContainerCreating", "")
            };
            let run = Arc::new(ContainerRun {
                name: c.name.clone(),
                image,
                init,
                log: LogBuffer::new(DEFAULT_LOG_LINES),
                state: Mutex::new(state),
            });
            containers.push(run.clone());
            plans.push((run, (*c).clone(), init, program));
        }
        let pod_run = Arc::new(PodRun {
            namespace: namespace.clone(),
            name: name.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            net,
            containers,
            reports,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, pod_run.clone());
        pod_run.report();

        // Init containers run one after another to completion (native sidecars — restartPolicy
        // Always — just start); app containers start once all of them have.
        let mut sequence: Vec<BoxFuture<'static, Exit>> = Vec::new();
        let mut app: Vec<BoxFuture<'static, Exit>> = Vec::new();
        for (run, c, init, program) in plans {
            // The image first: until it is there the container waits (an init container
            // holds back the rest of the pod; the kubelet starts app containers one by one
            // and goes on to the next when one cannot pull).
            let always = pull::pulls_always(&run.image, c.image_pull_policy.as_deref());
            let pulled = ensure_image(
                self.images.clone(),
                pod_run.clone(),
                run.clone(),
                always,
                program.as_ref().err().cloned(),
            );
            let Ok(program) = program else {
                // Never pulls: the container waits in back-off until the pod stops.
                let waits = async move {
                    pulled.await;
                    Exit::failed("the image was never pulled")
                };
                if init {
                    sequence.push(Box::pin(waits));
                } else {
                    pod_run.tracker.spawn(waits);
                }
                continue;
            };
            let env = container_env(pod, &c, pod_ip);
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            // A native sidecar with a startup probe holds back the containers after it until
            // it has started (Istio's proxy uses this so apps start with the mesh in place).
            let (started_tx, started_rx) = if init && sidecar && c.startup_probe.is_some() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let start = self.start_container(&pod_run, &run, &c, env, program, started_tx);
            if init && sidecar {
                // A native sidecar is started once its image is there; the next init
                // container waits for that (and for its startup probe, if it has one).
                let tracker = pod_run.tracker.clone();
                let name = c.name.clone();
                sequence.push(Box::pin(async move {
                    if !pulled.await {
                        return Exit::failed("the pod stopped before the image was pulled");
                    }
                    tracker.spawn(start);
                    match started_rx {
                        None => Exit::completed(),
                        Some(rx) => match rx.await {
                            Ok(()) => Exit::completed(),
                            Err(_) => Exit::failed(format!(
                                "native sidecar {name:?} ended before its startup probe passed"
                            )),
                        },
                    }
                }));
                continue;
            }
            let fut: BoxFuture<'static, Exit> = Box::pin(async move {
                if pulled.await {
                    start.await
                } else {
                    Exit::failed("the pod stopped before the image was pulled")
                }
            });
            if init {
                sequence.push(fut);
            } else {
                app.push(fut);
            }
        }
        let tracker = pod_run.tracker.clone();
        let cancel = pod_run.cancel.clone();
        pod_run.tracker.spawn(async move {
            for step in sequence {
                let exit = tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = step => e,
                };
                if exit.code != 0 {
                    return;
                }
            }
            for fut in app {
                tracker.spawn(fut);
            }
        });
        Ok(pod_ip)
    }

    fn stop_pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, ()> {
        let removed = self
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_string(), name.to_string()));
        let net = self.net.clone();
        Box::pin(async move {
            let Some(pod) = removed else { return };
            pod.cancel.cancel();
            pod.tracker.close();
            pod.tracker.wait().await;
            for c in &pod.containers {
                let state = c
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if !matches!(state, ContainerState::Terminated { .. }) {
                    pod.set_state(
                        c,
                        ContainerState::Terminated {
                            exit_code: 0,
                            reason: "Completed".into(),
                            message: String::new(),
                            finished_at: SystemTime::now(),
                        },
                    );
                }
                c.log.close();
            }
            net.remove_pod(&pod.net).await;
        })
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
            return Err(RuntimeError::Other(format!(
                "previous terminated container {:?} in pod {namespace}/{name} not found",
                container.name
            )));
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
