//! The release's addons the workshop's claims use — Prometheus, Grafana and Kiali — applied
//! from its `samples/addons` through the suite's own kube-rs apply into istio-system.
//!
//! The top level of istio/istio `samples/addons` holds `grafana.yaml`, `jaeger.yaml`,
//! `kiali.yaml`, `loki.yaml` and `prometheus.yaml` (tags 1.29.0, 1.29.6, 1.30.0, 1.30.3,
//! 1.31.0-rc.0 and master of 2026-08-22). The workshop applies the whole directory
//! (`kubectl apply -f istio-1.12.2/samples/addons/`) but its text and claims only use
//! Prometheus (C12, C13), Grafana (`istioctl dashboard grafana`, C12, C13) and Kiali
//! (`istioctl dashboard kiali`, C12, C14, C22); nothing it says needs Jaeger or Loki. Those
//! two cost three anonymous Docker Hub pulls from the kind node against a limit of 10 an hour
//! (istio/istio@1.31.0-rc.0 `samples/addons/jaeger.yaml:23` `docker.io/jaegertracing/jaeger`,
//! `loki.yaml:287,331` `docker.io/grafana/loki` and `docker.io/kiwigrid/k8s-sidecar`), so they
//! are left out. The departure from the workshop's command is part of the declared deviation
//! D-istio-version.

use std::path::{Path, PathBuf};

use crate::cluster::Cluster;
use crate::manifests::ManifestDir;
use crate::{Error, Result};

/// The namespace the addons' manifests are written for.
pub(crate) const ADDONS_NAMESPACE: &str = "istio-system";

/// The addon files the workshop's claims use, in the order they are applied.
pub(crate) const USED_ADDONS: [&str; 3] = ["prometheus.yaml", "grafana.yaml", "kiali.yaml"];

/// The release's files for [`USED_ADDONS`]; a release lacking one is an error naming it.
pub(crate) fn addon_files(addons_dir: &Path) -> Result<Vec<String>> {
    let missing: Vec<&str> = USED_ADDONS
        .into_iter()
        .filter(|name| !addons_dir.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Archive {
            path: PathBuf::from(addons_dir),
            reason: format!(
                "the release has no {} in samples/addons",
                missing.join(", ")
            ),
        });
    }
    Ok(USED_ADDONS.map(String::from).to_vec())
}

/// Applies the addon files. When the first pass meets a kind the cluster does not serve yet,
/// the whole set is applied once more, by which time CRDs applied in the first pass are
/// established. No top-level addon of a current release defines a CRD (istio/istio
/// `samples/addons/*.yaml` at tags 1.11.0 through 1.31.0-rc.0 and master of 2026-08-22: none;
/// up to 1.10.x `kiali.yaml` carried the `monitoringdashboards.monitoring.kiali.io` CRD, and
/// the operator-based Prometheus lives in `extras/`, which is not applied). The second pass is
/// kept for such older releases and costs nothing when the first pass succeeds.
pub(crate) async fn apply_addons(cluster: &Cluster, addons_dir: &Path) -> Result<()> {
    let dir = ManifestDir::new(addons_dir);
    let mut manifests = Vec::new();
    for file in addon_files(addons_dir)? {
        manifests.extend(dir.load(&file)?);
    }
    match cluster.apply(&manifests, ADDONS_NAMESPACE).await {
        Ok(_) => Ok(()),
        Err(happy_claims::Error::UnknownKind { .. }) => {
            cluster.apply(&manifests, ADDONS_NAMESPACE).await?;
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top level of `samples/addons` as releases 1.29 to 1.31 ship it.
    const RELEASE_ADDONS: [&str; 6] = [
        "README.md",
        "grafana.yaml",
        "jaeger.yaml",
        "kiali.yaml",
        "loki.yaml",
        "prometheus.yaml",
    ];

    #[test]
    fn only_prometheus_grafana_and_kiali_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        for name in RELEASE_ADDONS {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("extras")).unwrap();
        std::fs::write(dir.path().join("extras/zipkin.yaml"), "").unwrap();
        assert_eq!(
            addon_files(dir.path()).unwrap(),
            ["prometheus.yaml", "grafana.yaml", "kiali.yaml"]
        );
    }

    #[test]
    fn a_missing_addon_or_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prometheus.yaml"), "").unwrap();
        let err = addon_files(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().display().to_string())
                && err.contains("grafana.yaml, kiali.yaml"),
            "{err}"
        );
        let missing = dir.path().join("nope");
        let err = addon_files(&missing).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
