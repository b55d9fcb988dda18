//! Prints the nightly workflow's Istio matrix as JSON on stdout: the newest patch of each of
//! the newest minors (GitHub's releases API) and the newest dev build (istio's dev `latest`
//! pointer), e.g. `{"istio":["1.31.1","1.30.5","1.29.8","1.32.0-alpha.<sha>"]}`.
//!
//! When the dev pointer cannot be resolved, the matrix still gets a dev cell, `dev`, and an
//! `::error::` annotation says why: that cell resolves the pointer again itself and fails
//! visibly if it still cannot, so the nightly never goes green without its dev build.
//!
//! Usage: resolve-istio-versions [--minors N] [--no-dev]
//! The choice itself lives in `happy_istio::istio::releases` (unit-tested); this binary only
//! fetches. `GITHUB_TOKEN`, when set, lifts GitHub's anonymous rate limit.

use std::process::ExitCode;
use std::time::Duration;

use happy_istio::download::Downloader;
use happy_istio::istio::releases::{self, DevChoice};

/// The GitHub Actions workflow command that shows the dev build's failure on the run's page
/// (docs.github.com, "Workflow commands for GitHub Actions", "Setting an error message").
/// The message is escaped as actions/toolkit `packages/core/src/command.ts` `escapeData` does
/// and the runner undoes: `%` → `%25`, CR → `%0D`, LF → `%0A` (a raw newline ends the command).
fn unresolved_dev_annotation(error: &happy_istio::Error) -> String {
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

#[derive(Debug)]
struct Args {
    minors: usize,
    dev: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        minors: 3,
        dev: true,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minors" => {
                let value = args.next().ok_or("--minors needs a number")?;
                parsed.minors = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--minors {value:?}: expected a positive number"))?;
            }
            "--no-dev" => parsed.dev = false,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: resolve-istio-versions [--minors N] [--no-dev]"
                ));
            }
        }
    }
    Ok(parsed)
}

async fn run(args: Args) -> happy_istio::Result<String> {
    let cache = std::env::temp_dir().join("happy-istio-resolve");
    let downloader = Downloader::new(cache, Duration::from_secs(60))?;
    let list = releases::fetch_release_list(&downloader).await?;
    let dev = if args.dev {
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
        return Err(happy_istio::Error::IstioVersion {
            input: "nightly matrix".into(),
            reason: format!("no stable release found in {}", releases::RELEASES_URL),
        });
    }
    Ok(releases::matrix_json(&versions))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("resolve-istio-versions: {message}");
            return ExitCode::from(2);
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let default = args(&[]).unwrap();
        assert_eq!((default.minors, default.dev), (3, true));
        let custom = args(&["--minors", "2", "--no-dev"]).unwrap();
        assert_eq!((custom.minors, custom.dev), (2, false));
        assert!(args(&["--minors"]).unwrap_err().contains("--minors"));
        assert!(args(&["--minors", "0"]).unwrap_err().contains("\"0\""));
        assert!(args(&["--bogus"]).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn an_unresolved_dev_build_is_an_error_annotation_on_one_line() {
        let error = happy_istio::Error::Download {
            url: "the Istio dev build pointer".into(),
            reason: "every source failed: a: HTTP 404\nb: 100% gone".into(),
        };
        let line = unresolved_dev_annotation(&error);
        assert!(
            line.starts_with("::error title=Istio dev build::"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("ISTIO_VERSION=dev") && line.contains("HTTP 404%0Ab: 100%25 gone"),
            "{line}"
        );
    }
}
