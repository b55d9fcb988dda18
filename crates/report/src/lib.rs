//! happy-report: what a run of the happy-istio suite leaves behind. `report` writes `run.json`
//! (from the run's start, after every scenario), JUnit XML and Cucumber JSON; `diagnostics`
//! captures a bundle for each failed scenario; `docs` builds the living documentation from the
//! reports of one or many runs.
//!
//! It builds on the claim path and the provisioning crate, whose modules it re-exports so that
//! its own code names them as `crate::cluster`, `crate::istio`, …. Its errors are its own
//! (`error`: a diagnostics bundle that cannot be written).

pub use happy_provision::{
    checks, cluster, cluster_kind, deviations, download, evidence, image_ref, istio, kind_pins,
    manifests, probes, process, provision, repo_root, retry, settings, timeouts,
};

pub mod diagnostics;
pub mod docs;
pub mod error;
pub mod report;

pub use error::{Error, Result};
