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
