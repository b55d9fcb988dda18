//! Registry credentials for the kind node (`HAPPY_KIND_REGISTRY_AUTH`): a Docker `config.json`
//! holding the credentials themselves, mounted read-only into the node at
//! `/var/lib/kubelet/config.json`, so that the kubelet pulls from Docker Hub (or any registry
//! listed) authenticated instead of anonymously, where 10 pulls an hour is the limit.
//!
//! Why this works, from the sources:
//! - kind documents exactly this mount (kubernetes-sigs/kind
//!   `site/content/docs/user/private-registries.md`, "Mount a Config File to Each Node":
//!   `extraMounts` with `containerPath: /var/lib/kubelet/config.json`), and that "the mounted
//!   file must contain the actual base64-encoded credentials in the `auths` field. It cannot
//!   reference an external credential store or helper" — the node has no `credsStore` /
//!   `credHelpers` binary to call.
//! - The kubelet reads `config.json` from its root directory first: it calls
//!   `credentialprovider.SetPreferredDockercfgPath(kubeServer.RootDirectory)` (kubernetes
//!   `cmd/kubelet/app/server.go`; `--root-dir` defaults to `/var/lib/kubelet`), and
//!   `DefaultDockerConfigJSONPaths` starts with that preferred path (`pkg/credentialprovider/
//!   config.go`, `ReadDockerConfigJSONFile`), reading only `auths` (`DockerConfigJSON`) with
//!   `auth` as base64 of `user:password` (`decodeDockerConfigFieldAuth`) or `username` and
//!   `password`. It passes what matches to the runtime with each pull; Docker Hub's
//!   `https://index.docker.io/v1/` key (what `docker login` writes) matches `docker.io/…`
//!   images (`pkg/credentialprovider/keyring.go` `defaultRegistryKey`,
//!   `isDefaultRegistryMatch`, v1.35.0).
//! - A Docker CLI that finds no auth in its config file picks the platform's credential helper
//!   (docker/cli `cli/config/config.go` `LoadDefaultConfigFile`: `if
//!   !configFile.ContainsAuth() { … DetectDefaultStore … }`), which is why a plain file is
//!   made by logging in with a config that already names the registry (see [`HOW_TO_MAKE`]).

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Where the kubelet of a kind node looks first for registry credentials.
pub(crate) const NODE_PATH: &str = "/var/lib/kubelet/config.json";

/// Docker Hub's keys in a `config.json`: what `docker login` writes, and the spellings the
/// kubelet's keyring also takes for Docker Hub.
const DOCKER_HUB_KEYS: &[&str] = &[
    "https://index.docker.io/v1/",
    "index.docker.io",
    "https://index.docker.io",
    "docker.io",
    "registry-1.docker.io",
];

/// How to make a file with the credentials in it (kind `private-registries.md`; the seeded
/// `auths` entry keeps the Docker CLI from choosing a credential helper).
pub(crate) const HOW_TO_MAKE: &str = "make a file with the credentials in it: \
    `d=$(mktemp -d) && echo '{\"auths\":{\"https://index.docker.io/v1/\":{}}}' > $d/config.json && \
    docker --config $d login -u <user>` (give a read-only access token as the password), then \
    HAPPY_KIND_REGISTRY_AUTH=$d/config.json";

/// Why a credentials file was refused, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What is wrong, naming the variable and the file.
    pub problem: String,
    /// How to make a file the node can use.
    pub fix: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.problem, self.fix)
    }
}

/// A checked credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The file, absolute (kind resolves a relative `hostPath` against its own working
    /// directory, which need not be the suite's).
    pub path: PathBuf,
    /// The registries it holds credentials for, as written.
    pub registries: Vec<String>,
}

impl RegistryAuth {
    /// True when it holds credentials for Docker Hub.
    pub fn covers_docker_hub(&self) -> bool {
        let bare = |k: &str| k.trim_end_matches('/').to_string();
        self.registries
            .iter()
            .any(|r| DOCKER_HUB_KEYS.iter().any(|k| bare(k) == bare(r)))
    }

    /// The `extraMounts` entry that puts it where the kubelet reads it.
    pub fn extra_mount(&self) -> serde_json::Value {
        serde_json::json!({
            "containerPath": NODE_PATH,
            "hostPath": self.path.display().to_string(),
            "readOnly": true,
        })
    }
}

/// Checks `HAPPY_KIND_REGISTRY_AUTH`'s file: it must exist, be a JSON object, and hold
/// credentials in `auths` (not only a `credsStore`/`credHelpers` reference). The error names
/// the variable and the file and says what to do; it never quotes a credential.
pub fn check(path: &Path) -> Result<RegistryAuth, Refused> {
    let at = format!("HAPPY_KIND_REGISTRY_AUTH={}", path.display());
    let refused = |problem: String| Refused {
        problem,
        fix: HOW_TO_MAKE.to_string(),
    };
    let absolute = std::path::absolute(path).map_err(|e| refused(format!("{at}: {e}")))?;
    let text = std::fs::read_to_string(&absolute)
        .map_err(|e| refused(format!("{at} cannot be read ({e})")))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        refused(format!(
            "{at} is not JSON ({e}); it must be a Docker config.json"
        ))
    })?;
    let Some(object) = value.as_object() else {
        return Err(refused(format!(
            "{at} is not a Docker config.json (a JSON object)"
        )));
    };
    let auths = object
        .get("auths")
        .and_then(|a| a.as_object())
        .cloned()
        .unwrap_or_default();
    let mut registries = Vec::new();
    for (registry, entry) in &auths {
        match entry_credentials(entry) {
            Ok(true) => registries.push(registry.clone()),
            Ok(false) => {}
            Err(why) => {
                return Err(refused(format!(
                    "{at}: the entry for {registry} {why}, so the kubelet would reject the \
                     whole file"
                )));
            }
        }
    }
    if registries.is_empty() {
        let helper = object
            .get("credsStore")
            .and_then(|s| s.as_str())
            .map(|s| format!("the credential store {s:?} (credsStore)"))
            .or_else(|| {
                object
                    .get("credHelpers")
                    .and_then(|h| h.as_object())
                    .filter(|h| !h.is_empty())
                    .map(|h| {
                        let names: Vec<&String> = h.keys().collect();
                        format!("credential helpers for {names:?} (credHelpers)")
                    })
            });
        return Err(refused(match helper {
            Some(helper) => format!(
                "{at} holds no credentials, only a reference to {helper}: the credentials are \
                 in a helper program on this machine, which the kind node cannot call (kind \
                 docs, private-registries.md)"
            ),
            None => format!("{at} holds no credentials in \"auths\""),
        }));
    }
    Ok(RegistryAuth {
        path: absolute,
        registries,
    })
}

/// Whether one `auths` entry carries credentials the kubelet can use (`auth`, or `username`
/// and `password`); an error when its `auth` cannot be what the kubelet decodes.
fn entry_credentials(entry: &serde_json::Value) -> Result<bool, String> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|_| "has an \"auth\" that is not base64".to_string())?;
        let text = String::from_utf8_lossy(&decoded);
        return match text.split_once(':') {
            Some((user, secret)) if !user.is_empty() && !secret.is_empty() => Ok(true),
            _ => Err("has an \"auth\" that is not base64 of user:password".into()),
        };
    }
    Ok(field("username").is_some() && field("password").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// base64("reader:dckr_pat_example")
    const AUTH: &str = "cmVhZGVyOmRja3JfcGF0X2V4YW1wbGU=";

    #[test]
    fn a_plain_auths_file_is_accepted_and_mounted_where_the_kubelet_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "config.json",
            &format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{AUTH}"}}}}}}"#),
        );
        let auth = check(&path).unwrap();
        assert_eq!(auth.path, path);
        assert_eq!(auth.registries, ["https://index.docker.io/v1/"]);
        assert!(auth.covers_docker_hub());
        assert_eq!(
            auth.extra_mount(),
            serde_json::json!({
                "containerPath": "/var/lib/kubelet/config.json",
                "hostPath": path.display().to_string(),
                "readOnly": true,
            })
        );
        // username/password entries count too; another registry is not Docker Hub.
        let other = file(
            dir.path(),
            "quay.json",
            r#"{"auths": {"quay.io": {"username": "u", "password": "p"}}}"#,
        );
        let auth = check(&other).unwrap();
        assert_eq!(auth.registries, ["quay.io"]);
        assert!(!auth.covers_docker_hub());
    }

    #[test]
    fn a_relative_path_is_made_absolute_for_kind() {
        let auth = check(Path::new("Cargo.toml"));
        // Not JSON, but the error names the file as given.
        assert!(
            auth.unwrap_err()
                .problem
                .contains("HAPPY_KIND_REGISTRY_AUTH=Cargo.toml is not JSON")
        );
        let dir = tempfile::tempdir().unwrap();
        file(
            dir.path(),
            "c.json",
            &format!(r#"{{"auths": {{"docker.io": {{"auth": "{AUTH}"}}}}}}"#),
        );
        let relative = pathdiff(dir.path().join("c.json"));
        let auth = check(&relative).unwrap();
        assert!(auth.path.is_absolute(), "{}", auth.path.display());
    }

    /// `path` relative to the current directory (`../../tmp/x/c.json`).
    fn pathdiff(path: PathBuf) -> PathBuf {
        let cwd = std::env::current_dir().unwrap();
        let ups = cwd.components().count() - 1;
        let mut relative = PathBuf::new();
        for _ in 0..ups {
            relative.push("..");
        }
        relative.join(path.strip_prefix("/").unwrap())
    }

    #[test]
    fn files_the_node_cannot_use_are_refused_with_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (dir.path().join("absent.json"), "cannot be read"),
            (file(dir.path(), "bad.json", "{ not json"), "is not JSON"),
            (
                file(dir.path(), "array.json", "[]"),
                "not a Docker config.json",
            ),
            (
                file(
                    dir.path(),
                    "desktop.json",
                    r#"{"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"}"#,
                ),
                "only a reference to the credential store \"desktop\" (credsStore)",
            ),
            (
                file(
                    dir.path(),
                    "helpers.json",
                    r#"{"credHelpers": {"gcr.io": "gcloud"}}"#,
                ),
                "credential helpers for [\"gcr.io\"] (credHelpers)",
            ),
            (
                file(dir.path(), "empty.json", r#"{"auths": {}}"#),
                "holds no credentials in \"auths\"",
            ),
            (
                file(
                    dir.path(),
                    "garbled.json",
                    r#"{"auths": {"https://index.docker.io/v1/": {"auth": "%%%"}}}"#,
                ),
                "the entry for https://index.docker.io/v1/ has an \"auth\" that is not base64",
            ),
            (
                file(
                    dir.path(),
                    "nocolon.json",
                    // base64("justatoken")
                    r#"{"auths": {"docker.io": {"auth": "anVzdGF0b2tlbg=="}}}"#,
                ),
                "not base64 of user:password",
            ),
        ];
        for (path, want) in cases {
            let err = check(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("HAPPY_KIND_REGISTRY_AUTH={}", path.display()))
                    && err.contains(want)
                    && err.contains("docker --config")
                    && err.contains("login"),
                "{want:?} in {err}"
            );
        }
        // A credential never appears in an error.
        let leaky = file(
            dir.path(),
            "leaky.json",
            r#"{"auths": {"docker.io": {"auth": "c2VjcmV0LW5vLWNvbG9u"}}}"#,
        );
        let err = check(&leaky).unwrap_err().to_string();
        assert!(
            !err.contains("c2VjcmV0") && !err.contains("secret"),
            "{err}"
        );
    }
}
