//! A running pod and its containers as the kubelet keeps them: each container's state (waiting
//! with a reason, running and ready or not, terminated) and its log, and every change sent to the
//! control plane as a [`PodReport`] together with the events that go with it. This is the part of
//! the kubelet that its status manager (kubernetes `pkg/kubelet/status/status_manager.go`) and
//! its event recorder play; the lookups logs and exec need (which container, has it started) are
//! here too.

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

    /// Kubernetes refuses logs and exec for a container that never started.
    pub(crate) fn started(&self, container: &ContainerRun) -> Result<(), RuntimeError> {
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
