//! The sandbox's integration tests, one binary (each test binary of this crate is hundreds of
//! megabytes of debug build, and linking each costs minutes on a 2-core machine): one module
//! per area, named as the test files were (`cargo test -p happy-sandbox --test it mesh_core`
//! runs one area). Tests of different modules now share a process and run in parallel, so what
//! a process has once — pod addresses above all — is arbitrated in [`pod_addresses`], which
//! every test takes first.
//!
//! The modules that drive the real kubectl or the binary exist only with the crate's `kubectl`
//! feature (on by default; `ci/sandbox-without-kubectl` builds and runs this binary without
//! it); `api` and `workshop` gate their kubectl parts themselves.

mod common;
mod mesh_support;
mod pod_addresses;
mod runtime_support;
#[cfg(feature = "kubectl")]
mod walkthrough;

mod api;
#[cfg(feature = "kubectl")]
mod cli;
mod image_pulls;
#[cfg(feature = "kubectl")]
mod kubectl_port_forward;
mod mesh_core;
mod mesh_install;
mod mesh_observability;
mod mesh_prometheus;
#[cfg(feature = "kubectl")]
mod mesh_tcpdump;
mod runtime_network;
mod runtime_pods;
mod runtime_workshop;
mod workshop;
#[cfg(feature = "kubectl")]
mod workshop_by_hand;
