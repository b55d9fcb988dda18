//! `happy-doctor`: the preflight of a real run, alone.

use clap::{Parser, ValueEnum};

use crate::provision::preflight::Target;
use crate::settings::ClusterChoice;

/// Runs the preflight of a real run alone: what a kind (or k3s) run needs — the container
/// engine as kind finds it, the kind binary and its version, a mapped host port, the
/// Kubernetes window of the Istio minor, memory and disk — and every problem with its fix.
///
/// Exit status: 0 when nothing would stop the run, 1 with the list of problems, 2 for a bad
/// setting or argument. It reads the same environment as the suite (README, "Options").
#[derive(Debug, Parser)]
#[command(name = "happy-doctor")]
pub struct DoctorArgs {
    /// The cluster kind to check for (default: k3s when HAPPY_CLUSTER=k3s, else kind).
    #[arg(value_enum)]
    pub target: Option<DoctorTarget>,
}

/// The cluster kinds the preflight knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorTarget {
    Kind,
    K3s,
}

impl DoctorArgs {
    /// The target named on the command line, else the one `HAPPY_CLUSTER` implies.
    pub fn target(&self, cluster: ClusterChoice) -> Target {
        match self.target {
            Some(DoctorTarget::Kind) => Target::Kind,
            Some(DoctorTarget::K3s) => Target::K3s,
            None if cluster == ClusterChoice::K3s => Target::K3s,
            None => Target::Kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<DoctorArgs, clap::Error> {
        DoctorArgs::try_parse_from(std::iter::once("happy-doctor").chain(list.iter().copied()))
    }

    #[test]
    fn the_target_comes_from_the_argument_then_happy_cluster() {
        assert_eq!(
            args(&["k3s"]).unwrap().target(ClusterChoice::Kind),
            Target::K3s
        );
        assert_eq!(args(&[]).unwrap().target(ClusterChoice::K3s), Target::K3s);
        assert_eq!(args(&[]).unwrap().target(ClusterChoice::Auto), Target::Kind);
        assert_eq!(
            args(&["kind"]).unwrap().target(ClusterChoice::K3s),
            Target::Kind
        );
        let err = args(&["minikube"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("minikube"), "{err}");
        assert_eq!(args(&["kind", "k3s"]).unwrap_err().exit_code(), 2);
    }
}
