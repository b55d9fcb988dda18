//! happy-claims: the claim path of the happy-istio suite, from a cluster's API to a verdict.
//! `cluster` drives any cluster through kube-rs only (apply, wait, exec, port-forward, logs,
//! events); `probes` read what a reader would see (curl's output, Prometheus text, fake-service
//! bodies); `checks` judge it, with request counts chosen for an error bound; `manifests` reads
//! the workshop's files; `claims` is the registry of the workshop's claims (its words, the
//! scenarios, checks, bounds, upstream facts, negative cases and deviations of each);
//! `deviations` is the registry of every departure from the workshop's text; `timeouts` is the one timeout table and `retry` the convergence every wait uses.
//!
//! It may use no other crate of the workspace but the sandbox in its tests; the provisioning
//! and report crates build on it.

pub mod checks;
pub mod claims;
pub mod cluster;
pub mod cluster_kind;
pub mod deviations;
pub mod error;
pub mod evidence;
pub mod image_ref;
pub mod manifests;
pub mod probes;
pub mod retry;
pub mod timeouts;

pub use error::{Error, Result};

use std::path::{Path, PathBuf};

/// The repository's root: the workshop's manifests, the features, `kind-config.yaml` and the
/// templates are there (this crate is its `crates/claims/`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest_dir.join("../.."), Path::to_path_buf)
}
