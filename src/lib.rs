//! happy-istio: the conformance suite's library. The cucumber steps in `steps/` state the
//! workshop's claims; this crate does the work behind them: it provisions a cluster, installs
//! Istio, applies the workshop's manifests through kube-rs and observes what a reader would see.

pub mod checks;
pub mod cli;
pub mod cluster;
pub mod cluster_kind;
pub mod deviations;
pub mod diagnostics;
pub mod docs;
pub mod download;
pub mod error;
pub mod image_ref;
pub mod istio;
pub mod kind_pins;
pub mod manifests;
pub mod probes;
pub mod process;
pub mod provision;
pub mod report;
pub mod retry;
pub mod settings;
pub mod timeouts;

#[cfg(test)]
mod structure_tests;

pub use error::{Error, Result};
