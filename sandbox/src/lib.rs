//! happy-sandbox: a single process that behaves, for the happy-istio workshop, like a
//! Kubernetes cluster with Istio. It exists so the suite can run offline, fast, through
//! the same kube-rs code the real clusters get, and so a person can follow the workshop with
//! plain `kubectl` and no Docker (what only kubectl needs is in the crate `happy-sandbox-cli`,
//! behind [`KubectlProtocols`]). Every report of a sandbox run says that it was one.

pub(crate) mod api;
pub mod controllers;
pub mod cri;
pub(crate) mod error;
pub(crate) mod fake_service;
pub mod kubeconfig;
pub mod mesh;
pub mod net;
pub mod pod_exec;
pub(crate) mod process;
pub mod program;
pub mod readiness;
pub mod runtime;
pub mod store;

mod sandbox;
#[cfg(test)]
mod structure_tests;
pub use api::kubectl::{KubectlProtocols, PortForwardPod};
pub use sandbox::{Sandbox, SandboxError, SandboxOptions};
