//! A running pod and its containers as the kubelet keeps them: each container's state (waiting
//! with a reason, running and ready or not, terminated) and its log, and every change sent to the
//! control plane as a [`PodReport`] together with the events that go with it. This is the part of
//! the kubelet that its status manager (kubernetes `pkg/kubelet/status/status_manager.go`) and
//! its event recorder play; the lookups logs and exec need (which container, has it started) are
//! here too.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cri::{ContainerReport, ContainerState, NodeEvent, PodReport, RuntimeError};
use crate::net::PodNet;
use crate::program::logs::LogBuffer;

/// One container of a running pod.
pub(crate) struct ContainerRun {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) init: bool,
    pub(crate) log: Arc<LogBuffer>,
    pub(crate) state: Mutex<ContainerState>,
    /// How often the kubelet has restarted it (`restartCount`).
    pub(crate) restarts: AtomicI32,
    /// How its last run ended, once it has been restarted or waits to be (`lastState`).
    pub(crate) last_state: Mutex<Option<ContainerState>>,
}

impl ContainerRun {
    /// A container of a new pod, in `state`, not run yet.
    pub(crate) fn new(name: String, image: String, init: bool, state: ContainerState) -> Self {
        ContainerRun {
            name,
            image,
            init,
            log: LogBuffer::new(crate::program::logs::DEFAULT_LOG_LINES),
            state: Mutex::new(state),
            restarts: AtomicI32::new(0),
            last_state: Mutex::new(None),
        }
    }

    /// Its last run ended in `ended`, and it waits to run again: `lastState`, for the status.
    pub(crate) fn ended(&self, ended: ContainerState) {
        *self
            .last_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(ended);
    }
}

/// One running pod.
pub(crate) struct PodRun {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) net: Arc<PodNet>,
    pub(crate) containers: Vec<Arc<ContainerRun>>,
    pub(crate) reports: UnboundedSender<PodReport>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl PodRun {
    pub(crate) fn report(&self) {
        self.send(Vec::new());
    }

    /// Record an event about the pod (the kubelet's image manager's), with its current state.
    pub(crate) fn event(&self, event_type: &str, reason: &str, message: String) {
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
                restart_count: c.restarts.load(Ordering::Relaxed),
                last_state: c
                    .last_state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
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

    pub(crate) fn set_state(&self, container: &ContainerRun, state: ContainerState) {
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

    pub(crate) fn set_ready(&self, container: &ContainerRun, ready: bool) {
        let current = container
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let ContainerState::Running { started_at, .. } = current {
            self.set_state(container, ContainerState::Running { started_at, ready });
        }
    }

    /// Kubernetes refuses logs and exec for a container that never started (one waiting to be
    /// restarted has: its logs are its last run's).
    pub(crate) fn started(&self, container: &ContainerRun) -> Result<(), RuntimeError> {
        let state = container
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let ran = container
            .last_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        match state {
            ContainerState::Waiting { reason, .. } if !ran => Err(RuntimeError::Other(format!(
                "container {:?} in pod {}/{} is waiting to start: {reason}",
                container.name, self.namespace, self.name
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn container(&self, name: &str) -> Result<&Arc<ContainerRun>, RuntimeError> {
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

/// A container waiting to start, with the kubelet's reason and message.
pub(crate) fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.into(),
        message: message.into(),
    }
}
