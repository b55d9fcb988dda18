//! The kinds of cluster the suite runs on. The claims layer needs the names as well as the
//! provisioners: a deviation's re-check may not apply on one kind (its premise is not that
//! cluster's), and the settings say which of them a variable means nothing to.

use std::fmt;

/// The kinds of cluster the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// KinD + Istio via istioctl.
    Kind,
    /// k3s in a container (testcontainers) + istioctl.
    K3s,
    /// The current kubeconfig context.
    Existing,
    /// happy-sandbox in-process.
    Sandbox,
}

impl fmt::Display for ClusterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterKind::Kind => "kind",
            ClusterKind::K3s => "k3s",
            ClusterKind::Existing => "existing",
            ClusterKind::Sandbox => "sandbox",
        })
    }
}
