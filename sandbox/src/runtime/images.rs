//! The node's images: containerd's image store (which references the node holds; a fresh kind
//! node holds none of the workshop's) and the kubelet's image manager that pulls into it
//! ([`ensure_image`]). A pull asks the sandbox's registry, which holds exactly the images a
//! program runs ([`LocalRuntime::program_for`]), after the fault rules ([`super::faults`]); the
//! texts and timings a pull shows are containerd's and the kubelet's ([`super::pull`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use super::LocalRuntime;
use super::faults::{self, PullDecision, PullFaults};
use super::pod::{ContainerRun, PodRun, waiting};
use super::pull;
use crate::program::Program;

/// The node's image store and its registries, as the image pulls see them.
#[derive(Default)]
pub(crate) struct NodeImages {
    /// Fully qualified references pulled so far (a fresh kind node has none of the workshop's).
    present: Mutex<HashSet<String>>,
    /// `HAPPY_SANDBOX_FAULTS`' rules.
    pub(crate) faults: RwLock<Arc<PullFaults>>,
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

impl LocalRuntime {
    /// The program for an image, or the pull error the kubelet would report for it (every
    /// pull of it fails so).
    pub(crate) fn program_for(&self, image: &str) -> Result<Arc<dyn Program>, String> {
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

/// The kubelet's `EnsureImageExists` for one container (kubernetes
/// `pkg/kubelet/images/image_manager.go`): an image already on the node with a policy other
/// than `Always` is used at once (`Pulled` "already present"); otherwise each attempt records
/// `Pulling`, asks the registry (the fault rules, then `refused`: the error every pull of an
/// image the sandbox cannot run gets), and on success records `Pulled`. A failed attempt
/// records `Failed` with the error, shows `ErrImagePull` with it, then, once the kubelet's next
/// sync finds the image in back-off, `BackOff` and `ImagePullBackOff`; the next attempt comes
/// when the back-off (10 s doubling to 300 s) expires. Resolves `true` once the image is
/// there, `false` if the pod stops first.
pub(crate) async fn ensure_image(
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
