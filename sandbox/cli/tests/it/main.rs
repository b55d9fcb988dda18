//! The sandbox's integration tests, one binary (each test binary of this crate is hundreds of
//! megabytes of debug build, and linking each costs minutes on a 2-core machine): one module
//! per area, named as the test files were (`cargo test -p happy-sandbox-cli --test it mesh_core`
//! runs one area). Tests of different modules now share a process and run in parallel, so what
//! a process has once — pod addresses above all — is arbitrated in [`pod_addresses`], which
//! every test takes first.
//!
//! Most tests reach the sandbox as the suite does (kube-rs, no kubectl protocols); those that
//! drive the real kubectl start theirs with the protocols, as `happy-sandbox up` does
//! ([`common::with_kubectl`]), or drive the binary itself.

mod common;
mod mesh_support;
mod pod_addresses;
mod runtime_support;
mod walkthrough;

mod api;
mod cli;
mod image_pulls;
mod kubectl_port_forward;
mod mesh_core;
mod mesh_install;
mod mesh_observability;
mod mesh_prometheus;
mod mesh_tcpdump;
mod runtime_network;
mod runtime_pods;
mod runtime_workshop;
mod workshop;
mod workshop_by_hand;
