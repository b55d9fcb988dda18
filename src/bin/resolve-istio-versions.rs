//! Prints the nightly workflow's Istio matrix as JSON on stdout: the newest patch of each of
//! the newest minors (GitHub's releases API) and the newest dev build (istio's dev `latest`
//! pointer), e.g. `{"istio":["1.31.1","1.30.5","1.29.8","1.32.0-alpha.<sha>"]}`.
//!
//! When the dev pointer cannot be resolved, the matrix still gets a dev cell, `dev`, and an
//! `::error::` annotation says why: that cell resolves the pointer again itself and fails
//! visibly if it still cannot, so the nightly never goes green without its dev build.
//!
//! The command line is `happy_istio::cli::resolve` (`resolve-istio-versions --help`).
//! The choice itself lives in `happy_istio::istio::releases` (unit-tested); this binary only
//! fetches. `GITHUB_TOKEN`, when set, lifts GitHub's anonymous rate limit.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use happy_istio::cli::resolve::{ResolveArgs, unresolved_dev_annotation};
use happy_istio::download::Downloader;
use happy_istio::istio::releases::{self, DevChoice};

async fn run(args: ResolveArgs) -> happy_istio::ProvisionResult<String> {
    let cache = std::env::temp_dir().join("happy-istio-resolve");
    let downloader = Downloader::new(cache, Duration::from_secs(60))?;
    let list = releases::fetch_release_list(&downloader).await?;
    let dev = if !args.no_dev {
        match releases::fetch_latest_dev(&downloader).await {
            Ok(version) => DevChoice::Resolved(version),
            Err(e) => {
                // An annotation on the run's summary page, and a red `dev` cell (see above).
                eprintln!("{}", unresolved_dev_annotation(&e));
                DevChoice::Unresolved(e)
            }
        }
    } else {
        DevChoice::Skipped
    };
    let versions = releases::nightly_versions(&list, args.minors, &dev);
    if versions.is_empty() {
        return Err(happy_istio::ProvisionError::IstioVersion {
            input: "nightly matrix".into(),
            reason: format!("no stable release found in {}", releases::RELEASES_URL),
        });
    }
    Ok(releases::matrix_json(&versions))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = ResolveArgs::parse();
    match run(args).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("resolve-istio-versions: {e}");
            ExitCode::FAILURE
        }
    }
}
