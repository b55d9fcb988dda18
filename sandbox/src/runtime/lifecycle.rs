//! A pod's life on the node, as the kubelet's runtime manager runs it (kubernetes
//! `pkg/kubelet/kuberuntime/kuberuntime_manager.go`, `SyncPod` and `KillPod`): the pod gets its
//! network ([`crate::net`], CNI's part), then its containers start in the pod's order — init
//! containers one after another to completion, native sidecars (init containers with
//! `restartPolicy: Always`) started and, when they have a startup probe, waited for, then the app
//! containers — each once its image is on the node ([`super::images`]). A container runs its
//! image's program ([`super::program`]) with its environment ([`super::env`]) and its readiness
//! probe ([`super::probe`]). Stopping the pod ends every container and releases its network.

use std::net::Ipv4Addr;
use std::sync::{Arc, PoisonError};
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
        let run = Arc::new(ContainerRun::new(c.name.clone(), image, init, state));
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
        let restart = Restart::of(spec.restart_policy.as_deref(), init, sidecar);
        let start = start_container(&pod_run, &run, &c, env, program, started_tx, restart);
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

/// When the kubelet runs a container again after it ended (kubernetes v1.33
/// `pkg/kubelet/kuberuntime/kuberuntime_manager.go` `computePodActions`: `ShouldContainerBeRestarted`
/// for app containers and native sidecars, `computeInitContainerActions` for init containers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Whatever its exit code: app containers under the pod's `restartPolicy: Always` (the
    /// default), and native sidecars (`restartPolicy: Always` on an init container) whatever the
    /// pod's.
    Always,
    /// When it failed (a non-zero exit code): app containers under `OnFailure`, and init
    /// containers unless the pod's policy is `Never`.
    OnFailure,
    /// Never: under the pod's `restartPolicy: Never`.
    Never,
}

impl Restart {
    /// The rule for a container of a pod with `pod_policy` (`None`: the default, `Always`).
    pub(crate) fn of(pod_policy: Option<&str>, init: bool, sidecar: bool) -> Restart {
        match (pod_policy.unwrap_or("Always"), init, sidecar) {
            (_, true, true) => Restart::Always,
            ("Never", _, _) => Restart::Never,
            (_, true, false) | ("OnFailure", false, _) => Restart::OnFailure,
            _ => Restart::Always,
        }
    }

    fn after(self, exit: &Exit) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => exit.code != 0,
            Restart::Never => false,
        }
    }
}

/// The kubelet's back-off between restarts of a crashed container: the first restart comes at
/// once, later ones after 10 s, doubling up to 5 min (kubernetes v1.33 `pkg/kubelet/kubelet.go`
/// `backOffPeriod` and `MaxContainerBackOff`; `kuberuntime_manager.go` `doBackOff` waits only
/// when the container's last exit is within the back-off; the shorter delays of KEP-4603 are
/// behind alpha feature gates, off by default).
const CRASH_BACKOFF_INITIAL: std::time::Duration = std::time::Duration::from_secs(10);
const CRASH_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// The kubelet's words while a container waits in back-off (`doBackOff`: `back-off %s
/// restarting failed container=%s pod=%s`, the pod as `format.Pod`: `name_namespace(uid)`).
fn backoff_message(delay: std::time::Duration, container: &str, pod: &PodRun) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={}_{}({})",
        go_duration(delay),
        pod.name,
        pod.namespace,
        pod.uid
    )
}

/// Whole seconds as Go's `time.Duration.String` prints them (`10s`, `1m20s`, `5m0s`).
fn go_duration(delay: std::time::Duration) -> String {
    match delay.as_secs() {
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Start `spec` as container `run` of `pod_run`, and run it again after it ends as
/// `restart` says, with the kubelet's back-off; resolves when it ends for good (or the pod
/// stops). `started` fires when its first run says it serves (what a startup probe waits
/// for).
fn start_container(
    pod_run: &Arc<PodRun>,
    run: &Arc<ContainerRun>,
    spec: &Container,
    env: Vec<(String, String)>,
    program: Arc<dyn Program>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
    restart: Restart,
) -> BoxFuture<'static, Exit> {
    let probe: Option<Result<ReadinessProbe, String>> = probe::readiness_probe(spec);
    let pod_run = pod_run.clone();
    let run = run.clone();
    let spec = spec.clone();
    Box::pin(async move {
        let mut started = started;
        let mut backoff: Option<std::time::Duration> = None;
        loop {
            if super::halted() {
                return Exit::failed("the process is exiting: no container starts");
            }
            let exit = run_once(
                &pod_run,
                &run,
                spec.clone(),
                env.clone(),
                &program,
                probe.clone(),
                started.take(),
            )
            .await;
            if pod_run.cancel.is_cancelled() || super::halted() || !restart.after(&exit) {
                return exit;
            }
            // The run that ended is its `lastState` from now on.
            let ended = run
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            run.ended(ended);
            if let Some(delay) = backoff {
                pod_run.event(
                    "Warning",
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        run.name, pod_run.name, pod_run.namespace, pod_run.uid
                    ),
                );
                pod_run.set_state(
                    &run,
                    waiting(
                        "CrashLoopBackOff",
                        &backoff_message(delay, &run.name, &pod_run),
                    ),
                );
                tokio::select! {
                    _ = pod_run.cancel.cancelled() => return exit,
                    _ = tokio::time::sleep(delay) => {}
                }
                backoff = Some((delay * 2).min(CRASH_BACKOFF_MAX));
            } else {
                backoff = Some(CRASH_BACKOFF_INITIAL);
            }
            run.restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            run.log.restart();
        }
    })
}

/// One run of container `run`: running until its program ends, then terminated with its exit,
/// its log closed. Its readiness probe, if any, runs as long as it does.
async fn run_once(
    pod_run: &Arc<PodRun>,
    run: &Arc<ContainerRun>,
    spec: Container,
    env: Vec<(String, String)>,
    program: &Arc<dyn Program>,
    probe: Option<Result<ReadinessProbe, String>>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
) -> Exit {
    pod_run.set_state(
        run,
        ContainerState::Running {
            started_at: SystemTime::now(),
            ready: false,
        },
    );
    // This run's: its probe ends with it.
    let instance = pod_run.cancel.child_token();
    let ready: Box<dyn FnOnce() + Send> = {
        let pod_run = pod_run.clone();
        let run = run.clone();
        match probe {
            None => Box::new(move || pod_run.set_ready(&run, true)),
            Some(Err(problem)) => {
                run.log.write(&problem);
                Box::new(|| {})
            }
            Some(Ok(probe)) => {
                let instance = instance.clone();
                Box::new(move || {
                    let tracker = pod_run.tracker.clone();
                    tracker.spawn(async move {
                        tokio::select! {
                            _ = instance.cancelled() => {}
                            _ = probe_loop(&pod_run, &run, &probe) => {}
                        }
                    });
                })
            }
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
        cancel: instance.clone(),
    };
    let exit = program.run(ctx).await;
    instance.cancel();
    pod_run.set_state(
        run,
        ContainerState::Terminated {
            exit_code: exit.code,
            reason: exit.reason.clone(),
            message: exit.message.clone(),
            finished_at: SystemTime::now(),
        },
    );
    run.log.close();
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelet_restarts_by_the_pods_policy_and_native_sidecars_always() {
        use Restart::{Always, Never, OnFailure};
        for (policy, init, sidecar, want) in [
            (None, false, false, Always),
            (Some("Always"), false, false, Always),
            (Some("OnFailure"), false, false, OnFailure),
            (Some("Never"), false, false, Never),
            (None, true, false, OnFailure),
            (Some("Never"), true, false, Never),
            (Some("Never"), true, true, Always),
            (Some("OnFailure"), true, true, Always),
        ] {
            assert_eq!(
                Restart::of(policy, init, sidecar),
                want,
                "{policy:?} init={init} sidecar={sidecar}"
            );
        }
        assert!(Always.after(&Exit::completed()));
        assert!(!OnFailure.after(&Exit::completed()));
        assert!(OnFailure.after(&Exit::failed("x")));
        assert!(!Never.after(&Exit::failed("x")));
    }

    #[test]
    fn the_back_off_doubles_to_five_minutes_and_reads_as_go_prints_it() {
        let mut delay = CRASH_BACKOFF_INITIAL;
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(go_duration(delay));
            delay = (delay * 2).min(CRASH_BACKOFF_MAX);
        }
        assert_eq!(
            seen,
            ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s"]
        );
    }
}
