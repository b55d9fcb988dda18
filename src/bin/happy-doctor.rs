//! Runs the preflight of a real run alone: what a kind (or k3s) run needs — the container
//! engine as kind finds it, the kind binary and its version, a mapped host port, the Kubernetes
//! window of the Istio minor, memory and disk — and every problem with its fix.
//!
//! Usage: happy-doctor [kind|k3s]   (default: k3s when HAPPY_CLUSTER=k3s, else kind)
//! Exit status: 0 when nothing would stop the run, 1 with the list of problems, 2 for a bad
//! setting or argument. It reads the same environment as the suite (README, "Options").

use std::process::ExitCode;

use happy_istio::preflight::{self, Target};
use happy_istio::settings::{ClusterChoice, Settings};
use happy_istio::timeouts::Timeouts;

/// The target named on the command line, else the one `HAPPY_CLUSTER` implies.
fn target(arg: Option<&str>, cluster: ClusterChoice) -> Result<Target, String> {
    match arg {
        Some("kind") => Ok(Target::Kind),
        Some("k3s") => Ok(Target::K3s),
        Some(other) => Err(format!(
            "unknown argument {other:?}; usage: happy-doctor [kind|k3s]"
        )),
        None if cluster == ClusterChoice::K3s => Ok(Target::K3s),
        None => Ok(Target::Kind),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    happy_istio::download::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 1 {
        eprintln!("happy-doctor: usage: happy-doctor [kind|k3s]");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("happy-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let timeouts = match Timeouts::from_env() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("happy-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let target = match target(args.first().map(String::as_str), settings.cluster) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("happy-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let report = preflight::run(target, &settings, &timeouts).await;
    print!("{}", report.render());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_comes_from_the_argument_then_happy_cluster() {
        assert_eq!(target(Some("k3s"), ClusterChoice::Kind), Ok(Target::K3s));
        assert_eq!(target(None, ClusterChoice::K3s), Ok(Target::K3s));
        assert_eq!(target(None, ClusterChoice::Auto), Ok(Target::Kind));
        assert_eq!(target(Some("kind"), ClusterChoice::K3s), Ok(Target::Kind));
        assert!(target(Some("minikube"), ClusterChoice::Auto).is_err());
    }
}
