//! happy-istio: the conformance suite's library, as one name for the step layer (`steps/`,
//! `happy_steps`), the tools and the tests. Its parts are crates of their own under `crates/`:
//! the claim path (`happy_claims`), provisioning (`happy_provision`) and the reports and living
//! documentation (`happy_report`); this crate re-exports their modules and adds the tools'
//! command lines (`cli`).
//!
//! Each of those crates has its own error type. `Error`, `Result` and `error` here are the
//! claim path's, which the steps fail with; provisioning's is `ProvisionError` (with
//! `ProvisionResult`), for the runner and the tools that provision or download.

pub use happy_claims::{Error, Result, error};
pub use happy_provision::{Error as ProvisionError, Result as ProvisionResult};
pub use happy_report::{
    checks, cluster, cluster_kind, deviations, diagnostics, docs, download, evidence, image_ref,
    istio, kind_pins, manifests, probes, process, provision, repo_root, report, retry, settings,
    timeouts,
};

pub mod cli;
