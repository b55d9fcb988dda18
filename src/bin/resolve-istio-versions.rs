//! Prints the nightly workflow's Istio matrix as JSON on stdout: the newest patch of each of
//! the newest minors (GitHub's releases API) and the newest dev build (istio's dev `latest`
//! pointer), e.g. `{"istio":["1.31.1","1.30.5","1.29.2","1.32-alpha.<sha>"]}`.
//!
//! Usage: resolve-istio-versions [--minors N] [--no-dev]
//! The choice itself lives in `happy_istio::istio::releases` (unit-tested); this binary only
//! fetches. `GITHUB_TOKEN`, when set, lifts GitHub's anonymous rate limit.

use std::process::ExitCode;
use std::time::Duration;

use happy_istio::download::Downloader;
use happy_istio::istio::releases;

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
            Ok(version) => Some(version),
            // The stable versions are still worth testing; say so in the workflow's summary.
            Err(e) => {
                eprintln!("::warning::no dev build in the matrix: {e}");
                None
            }
        }
    } else {
        None
    };
    let versions = releases::nightly_versions(&list, args.minors, dev.as_ref());
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
}
