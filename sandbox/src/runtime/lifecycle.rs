//! A pod's life on the node, as the kubelet's runtime manager runs it (kubernetes
//! `pkg/kubelet/kuberuntime/kuberuntime_manager.go`, `SyncPod` and `KillPod`): the pod gets its
//! network ([`crate::net`], CNI's part), then its containers start in the pod's order — init
//! containers one after another to completion, native sidecars (init containers with
//! `restartPolicy: Always`) started and, when they have a startup probe, waited for, then the app
//! containers — each once its image is on the node ([`super::images`]). A container runs its
//! image's program ([`super::program`]) with its environment ([`super::env`]) and its readiness
//! probe ([`super::probe`]). Stopping the pod ends every container and releases its network.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::LocalRuntime;
use super::env::container_env;
use super::images::ensure_image;
use super::pod::{ContainerRun, PodRun, waiting};
use super::probe::{self, ReadinessProbe, probe_loop};
use super::pull;
use crate::cri::{ContainerState, PodReport, RuntimeError};
use crate::program::logs::{DEFAULT_LOG_LINES, LogBuffer};
use crate::program::{ContainerContext, Exit, Program};

/// Run `pod`: its network, then its containers in the pod's order, each once its image is
/// there; every state change goes to `reports`. Returns the pod's address.
pub(crate) fn run_pod(
    runtime: &LocalRuntime,
    pod: &Pod,
    reports: UnboundedSender<PodReport>,
) -> Result<Ipv4Addr, RuntimeError> {
    let _guard = runtime.handle.enter();
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
    if runtime
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

    let net = runtime
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
        let program = runtime.program_for(&image);
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
    runtime
        .pods
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
            runtime.images.clone(),
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
        let start = runtime.start_container(&pod_run, &run, &c, env, program, started_tx);
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

/// Stop the pod: its tasks cancelled and awaited, every container not yet ended marked
/// terminated and its log closed, then its network released.
pub(crate) fn stop_pod(
    runtime: &LocalRuntime,
    namespace: &str,
    name: &str,
) -> BoxFuture<'static, ()> {
    let removed = runtime
        .pods
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&(namespace.to_string(), name.to_string()));
    let net = runtime.net.clone();
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
