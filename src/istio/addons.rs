//! The release's addons (`samples/addons/*.yaml`: Prometheus, Grafana, Kiali, Jaeger, Loki —
//! the top level of istio/istio `samples/addons` at tags 1.28.0 to 1.31.0-rc.0), applied
//! through the suite's own kube-rs apply into istio-system.

use std::path::{Path, PathBuf};

use crate::cluster::Cluster;
use crate::manifests::ManifestDir;
use crate::{Error, Result};

/// The namespace the addons' manifests are written for.
pub const ADDONS_NAMESPACE: &str = "istio-system";

/// The addon files of a release, sorted by name (top level only: `extras/` are not addons
/// the workshop installs).
pub fn addon_files(addons_dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(addons_dir).map_err(|source| Error::LocalIo {
        action: "list Istio addons in".into(),
        path: addons_dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Archive {
            path: PathBuf::from(addons_dir),
            reason: "the release has no addon manifests in samples/addons".into(),
        });
    }
    Ok(files)
}

/// Applies every addon file. When the first pass meets a kind the cluster does not serve yet,
/// the whole set is applied once more, by which time CRDs applied in the first pass are
/// established. No top-level addon of a current release defines a CRD (istio/istio
/// `samples/addons/*.yaml` at tags 1.11.0 through 1.31.0-rc.0 and master of 2026-08-22: none;
/// up to 1.10.x `kiali.yaml` carried the `monitoringdashboards.monitoring.kiali.io` CRD, and
/// the operator-based Prometheus lives in `extras/`, which is not applied). The second pass is
/// kept for such older releases and costs nothing when the first pass succeeds.
pub async fn apply_addons(cluster: &Cluster, addons_dir: &Path) -> Result<()> {
    let dir = ManifestDir::new(addons_dir);
    let mut manifests = Vec::new();
    for file in addon_files(addons_dir)? {
        manifests.extend(dir.load(&file)?);
    }
    match cluster.apply(&manifests, ADDONS_NAMESPACE).await {
        Ok(_) => Ok(()),
        Err(Error::UnknownKind { .. }) => {
            cluster.apply(&manifests, ADDONS_NAMESPACE).await.map(drop)
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_top_level_yaml_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["prometheus.yaml", "grafana.yaml", "kiali.yaml", "README.md"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("extras")).unwrap();
        std::fs::write(dir.path().join("extras/zipkin.yaml"), "").unwrap();
        assert_eq!(
            addon_files(dir.path()).unwrap(),
            ["grafana.yaml", "kiali.yaml", "prometheus.yaml"]
        );
    }

    #[test]
    fn an_empty_or_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = addon_files(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        let missing = dir.path().join("nope");
        let err = addon_files(&missing).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
