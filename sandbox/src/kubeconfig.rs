//! The kubeconfig the sandbox writes: one cluster (its CA inline), one user (its bearer
//! token), one context with namespace `default`; written with mode 0600 because it holds the
//! token.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;

/// Writing the kubeconfig failed; names the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the kubeconfig {path}: {source}")]
pub struct KubeconfigError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub const CONTEXT: &str = "happy-sandbox";

/// The kubeconfig document (YAML).
pub fn render(server_url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: {CONTEXT}
  user:
    token: {token}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
preferences: {{}}
"
    )
}

/// Write the kubeconfig with mode 0600 (created that way, so it is never readable by others,
/// not even briefly). Missing parent directories are created.
pub fn write(path: &Path, contents: &str) -> Result<(), KubeconfigError> {
    let err = |source| KubeconfigError {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    // An existing file keeps its old mode on open: tighten it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    file.write_all(contents.as_bytes()).map_err(err)?;
    Ok(())
}
