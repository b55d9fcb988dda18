//! happy-istio: the conformance suite's library, as one name for the step layer (`steps/`,
//! `happy_steps`), the tools and the tests. Its parts are crates of their own under `crates/`:
//! the claim path (`happy_claims`), provisioning (`happy_provision`) and the reports and living
//! documentation (`happy_report`); this crate re-exports their modules and adds the tools'
//! command lines (`cli`).

pub use happy_report::{
    Error, Result, checks, cluster, cluster_kind, deviations, diagnostics, docs, download, error,
    image_ref, istio, kind_pins, manifests, probes, process, provision, repo_root, report, retry,
    settings, timeouts,
};

pub mod cli;

#[cfg(test)]
mod structure_tests;
