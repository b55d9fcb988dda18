//! `resolve-istio-versions`: the nightly workflow's Istio matrix.

use clap::Parser;

use crate::istio::releases;

/// Prints the nightly workflow's Istio matrix as JSON on stdout: the newest patch of each of
/// the newest minors (GitHub's releases API) and the newest dev build (istio's dev `latest`
/// pointer), e.g. `{"istio":["1.31.1","1.30.5","1.29.8","1.32.0-alpha.<sha>"]}`.
///
/// When the dev pointer cannot be resolved, the matrix still gets a dev cell, `dev`, and an
/// `::error::` annotation says why: that cell resolves the pointer again itself and fails
/// visibly if it still cannot, so the nightly never goes green without its dev build.
/// `GITHUB_TOKEN`, when set, lifts GitHub's anonymous rate limit.
#[derive(Debug, Parser)]
#[command(name = "resolve-istio-versions")]
pub struct ResolveArgs {
    /// How many of the newest minors.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub minors: usize,
    /// Leave out the dev build.
    #[arg(long)]
    pub no_dev: bool,
}

/// The GitHub Actions workflow command that shows the dev build's failure on the run's page
/// (docs.github.com, "Workflow commands for GitHub Actions", "Setting an error message").
/// The message is escaped as actions/toolkit `packages/core/src/command.ts` `escapeData` does
/// and the runner undoes: `%` → `%25`, CR → `%0D`, LF → `%0A` (a raw newline ends the command).
pub fn unresolved_dev_annotation(error: &crate::ProvisionError) -> String {
    let message = format!(
        "the newest Istio dev build could not be resolved; its matrix cell runs with \
         ISTIO_VERSION={} and fails unless it resolves there: {error}",
        releases::UNRESOLVED_DEV
    );
    let escaped = message
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    format!("::error title=Istio dev build::{escaped}")
}
