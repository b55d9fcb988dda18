//! Kubeconfigs the provisioners obtain (from `kind get kubeconfig`, the k3s container, the
//! sandbox): written where istioctl can read them, and turned into a kube-rs client.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// A client for `context` of a kubeconfig's text; `what` names the cluster in errors.
pub(crate) async fn client_from_yaml(
    text: &str,
    context: Option<&str>,
    what: &str,
) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| Error::Provision {
        cluster: what.to_string(),
        reason: format!("its kubeconfig cannot be read: {e}"),
    })?;
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Provision {
            cluster: what.to_string(),
            reason: format!("its kubeconfig is unusable: {e}"),
        })?;
    kube::Client::try_from(config).map_err(|e| Error::kube(format!("build a client for {what}"), e))
}

/// Replaces every cluster's `server` (k3s writes `https://127.0.0.1:6443`, the port inside
/// its container; the host reaches it on a mapped port).
pub(crate) fn with_server(text: &str, server: &str, what: &str) -> Result<String> {
    let mut kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| Error::Provision {
        cluster: what.to_string(),
        reason: format!("its kubeconfig cannot be read: {e}"),
    })?;
    if kubeconfig.clusters.is_empty() {
        return Err(Error::Provision {
            cluster: what.to_string(),
            reason: "its kubeconfig names no cluster".into(),
        });
    }
    for named in &mut kubeconfig.clusters {
        if let Some(cluster) = named.cluster.as_mut() {
            cluster.server = Some(server.to_string());
        }
    }
    serde_saphyr::to_string(&kubeconfig).map_err(|e| Error::Provision {
        cluster: what.to_string(),
        reason: format!("cannot write its kubeconfig: {e}"),
    })
}

/// Writes a kubeconfig readable only by the user (it holds credentials).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    let io = |action: &str| {
        let action = action.to_string();
        move |source| Error::LocalIo {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create directory for kubeconfig"))?;
    }
    std::fs::write(path, text).map_err(io("write kubeconfig"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("restrict permissions of kubeconfig"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Zm9v
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Zm9v
    client-key-data: Zm9v
"#;

    #[test]
    fn server_is_rewritten_and_the_rest_kept() {
        let text = with_server(K3S, "https://127.0.0.1:40123", "k3s").unwrap();
        let parsed = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://127.0.0.1:40123")
        );
        assert_eq!(parsed.current_context.as_deref(), Some("default"));
        assert_eq!(parsed.auth_infos.len(), 1);
    }

    #[test]
    fn garbage_names_the_cluster() {
        for bad in ["[not, a, mapping", "kind: Config\nclusters: []\n"] {
            let err = with_server(bad, "https://x", "k3s container abc")
                .unwrap_err()
                .to_string();
            assert!(err.contains("k3s container abc"), "{err}");
        }
    }

    #[test]
    fn written_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube/config");
        write_private(&path, K3S).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), K3S);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
