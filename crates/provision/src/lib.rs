//! happy-provision: where the happy-istio suite's cluster and Istio come from. `provision`
//! holds the provisioners (kind, k3s, an existing cluster, the sandbox) and their preflight;
//! `istio` the Istio toolchain (releases, istioctl, the hub, the addons); `download` fetches
//! and verifies tools; `settings` reads the run's `HAPPY_*` environment; `process` runs
//! commands with limits; `kind_pins` holds kind's pinned versions.
//!
//! It builds on the claim path (`happy_claims`), whose modules it re-exports so that its own
//! code names them as `crate::cluster`, `crate::timeouts`, …; the report crate builds on both.
//! Its errors are its own (`error`): the claim path's pass through them unchanged, so `?`
//! works on a claim-path call, and `Error::class` gives each its class as the claim path does.

pub use happy_claims::{
    checks, cluster, cluster_kind, deviations, evidence, image_ref, manifests, probes, repo_root,
    retry, timeouts,
};

pub mod download;
pub mod error;
pub mod istio;
pub mod kind_pins;
pub mod process;
pub mod provision;
pub mod settings;

pub use error::{Error, Result};
