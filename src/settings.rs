//! Every environment variable the suite reads (except the timeout table's `HAPPY_TIMEOUT_*`),
//! parsed once at start. A bad value is an error naming the variable and the value; an empty
//! value counts as unset, so CI matrices can pass blanks. `describe()` is the README's table.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::istio::IstioVersion;
use crate::{Error, Result};

/// Which cluster to run on (`HAPPY_CLUSTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterChoice {
    /// `kind` when a Docker daemon answers, else `sandbox`.
    Auto,
    /// KinD with Istio via istioctl.
    Kind,
    /// k3s in a container through testcontainers.
    K3s,
    /// The current kubeconfig context.
    Existing,
    /// happy-sandbox in-process.
    Sandbox,
}

impl fmt::Display for ClusterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterChoice::Auto => "auto",
            ClusterChoice::Kind => "kind",
            ClusterChoice::K3s => "k3s",
            ClusterChoice::Existing => "existing",
            ClusterChoice::Sandbox => "sandbox",
        })
    }
}

/// Which Istio to install (`ISTIO_VERSION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IstioVersionRequest {
    /// Unset: the suite's pinned release.
    Pinned,
    /// `latest`: the newest stable release on GitHub.
    Latest,
    /// `dev`: the newest dev build.
    LatestDev,
    /// An exact release or dev build.
    Exact(IstioVersion),
}

/// When to keep the cluster after the run (`HAPPY_KEEP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepPolicy {
    /// `0` (default): always delete what the suite created.
    Never,
    /// `1`: always keep it.
    Always,
    /// `on-failure`: keep it when a scenario failed.
    OnFailure,
}

impl KeepPolicy {
    /// Whether to keep the cluster, given whether any scenario failed.
    pub fn keep(self, any_failed: bool) -> bool {
        match self {
            KeepPolicy::Never => false,
            KeepPolicy::Always => true,
            KeepPolicy::OnFailure => any_failed,
        }
    }
}

/// The suite's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `HAPPY_CLUSTER`.
    pub cluster: ClusterChoice,
    /// `ISTIO_VERSION`.
    pub istio_version: IstioVersionRequest,
    /// `HAPPY_REUSE`: reuse a kind cluster of that name that already runs the wanted Istio.
    pub reuse: bool,
    /// `HAPPY_KEEP`.
    pub keep: KeepPolicy,
    /// `HAPPY_MANIFESTS`: the workshop's YAML.
    pub manifests_dir: PathBuf,
    /// `HAPPY_CACHE_DIR`: downloads (istioctl, release archives, kind).
    pub cache_dir: PathBuf,
    /// `HAPPY_REPORT_DIR`: reports and diagnostics.
    pub report_dir: PathBuf,
    /// `HAPPY_KIND_CLUSTER`: the kind cluster's name.
    pub kind_cluster: String,
}

/// One row of the settings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDoc {
    /// The variable.
    pub name: &'static str,
    /// Accepted values.
    pub values: &'static str,
    /// What applies when it is unset.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// The default kind cluster name.
pub const DEFAULT_KIND_CLUSTER: &str = "happy-istio";

/// The crate's root: defaults are relative to it, not to the working directory.
fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn invalid(var: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidSetting {
        var: var.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let cluster = match get("HAPPY_CLUSTER") {
            None => ClusterChoice::Auto,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "auto" => ClusterChoice::Auto,
                "kind" => ClusterChoice::Kind,
                "k3s" => ClusterChoice::K3s,
                "existing" => ClusterChoice::Existing,
                "sandbox" => ClusterChoice::Sandbox,
                _ => {
                    return Err(invalid(
                        "HAPPY_CLUSTER",
                        &v,
                        "expected kind, k3s, existing, sandbox or auto",
                    ));
                }
            },
        };

        let istio_version = match get("ISTIO_VERSION") {
            None => IstioVersionRequest::Pinned,
            Some(v) if v.eq_ignore_ascii_case("latest") => IstioVersionRequest::Latest,
            Some(v) if v.eq_ignore_ascii_case("dev") => IstioVersionRequest::LatestDev,
            Some(v) => IstioVersionRequest::Exact(v.parse().map_err(|e: Error| {
                invalid(
                    "ISTIO_VERSION",
                    &v,
                    format!("{e}; or use latest, dev, or leave it unset for the pinned release"),
                )
            })?),
        };

        let reuse = match get("HAPPY_REUSE").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => return Err(invalid("HAPPY_REUSE", v, "expected 1 or 0")),
        };

        let keep = match get("HAPPY_KEEP") {
            None => KeepPolicy::Never,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "0" => KeepPolicy::Never,
                "1" => KeepPolicy::Always,
                "on-failure" => KeepPolicy::OnFailure,
                _ => return Err(invalid("HAPPY_KEEP", &v, "expected 0, 1 or on-failure")),
            },
        };

        let manifests_dir = match get("HAPPY_MANIFESTS") {
            None => crate_root().join("manifests"),
            Some(v) => {
                let dir = PathBuf::from(&v);
                if !dir.is_dir() {
                    return Err(invalid("HAPPY_MANIFESTS", &v, "not a directory"));
                }
                dir
            }
        };

        let cache_dir = match get("HAPPY_CACHE_DIR") {
            Some(v) => PathBuf::from(v),
            None => dirs::cache_dir()
                .map(|dir| dir.join("happy-istio"))
                .ok_or_else(|| {
                    invalid(
                        "HAPPY_CACHE_DIR",
                        "",
                        "unset and this system has no user cache directory; set it to a writable directory",
                    )
                })?,
        };

        let report_dir = get("HAPPY_REPORT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate_root().join("target").join("happy"));

        let kind_cluster = match get("HAPPY_KIND_CLUSTER") {
            None => DEFAULT_KIND_CLUSTER.to_string(),
            Some(v) => {
                validate_kind_name(&v)
                    .map_err(|reason| invalid("HAPPY_KIND_CLUSTER", &v, reason))?;
                v
            }
        };

        Ok(Self {
            cluster,
            istio_version,
            reuse,
            keep,
            manifests_dir,
            cache_dir,
            report_dir,
            kind_cluster,
        })
    }

    /// The table of variables, for the README and `--help`.
    pub fn describe() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "HAPPY_CLUSTER",
                values: "kind | k3s | existing | sandbox | auto",
                default: "auto",
                meaning: "Where to run: KinD (nightly target), k3s in a container, the current kubeconfig context, the in-process sandbox; auto = kind when a Docker daemon answers, else sandbox (announced in the output and report)",
            },
            SettingDoc {
                name: "ISTIO_VERSION",
                values: "unset | latest | dev | 1.31.1 | 1.31.0-rc.0 | 1.32.0-alpha.<sha> | 1.30-alpha.<sha>",
                default: crate::istio::releases::PINNED_DEFAULT,
                meaning: "Istio to install and take istioctl and samples/addons from. latest = the newest stable release on GitHub, judged by its tag (drafts and -alpha/-beta/-rc tags skipped); dev = the newest dev build, named by the dev bucket's latest pointer (blob.istio.io, else storage.googleapis.com). A release (MAJOR.MINOR.PATCH[-pre]) is downloaded from GitHub; a dev build (MAJOR.MINOR.0-alpha.<40-hex commit>, or MAJOR.MINOR-alpha.<commit> for builds before April 2026) from the dev bucket, blob.istio.io first",
            },
            SettingDoc {
                name: "GITHUB_TOKEN",
                values: "unset | a GitHub token",
                default: "unset",
                meaning: "Sent, only to api.github.com, when ISTIO_VERSION=latest (and by ci/resolve-istio-versions) reads GitHub's release list, to lift the anonymous rate limit; nothing else calls GitHub's API (dev and explicit versions are plain downloads)",
            },
            SettingDoc {
                name: "HAPPY_REUSE",
                values: "0 | 1",
                default: "0",
                meaning: "1 = reuse an existing kind cluster of that name when it already runs the wanted Istio version",
            },
            SettingDoc {
                name: "HAPPY_KEEP",
                values: "0 | 1 | on-failure",
                default: "0",
                meaning: "Keep the cluster the suite created after the run: never, always, or when a scenario failed",
            },
            SettingDoc {
                name: "HAPPY_MANIFESTS",
                values: "a directory",
                default: "manifests/ of the crate",
                meaning: "The workshop's YAML files",
            },
            SettingDoc {
                name: "HAPPY_CACHE_DIR",
                values: "a directory",
                default: "<user cache dir>/happy-istio",
                meaning: "Downloads (Istio release archives with istioctl, kind), checksum verified",
            },
            SettingDoc {
                name: "HAPPY_REPORT_DIR",
                values: "a directory",
                default: "target/happy",
                meaning: "JUnit XML, Cucumber JSON and diagnostics bundles",
            },
            SettingDoc {
                name: "HAPPY_KIND_CLUSTER",
                values: "a kind cluster name",
                default: DEFAULT_KIND_CLUSTER,
                meaning: "Name of the kind cluster to create or reuse",
            },
        ]
    }

    /// `describe()` as a Markdown table.
    pub fn markdown_table() -> String {
        let mut out =
            String::from("| variable | values | default | meaning |\n|---|---|---|---|\n");
        // Cell text is escaped: `|` would split a cell and `<…>` would vanish as HTML.
        let cell = |text: &str| {
            text.replace('|', "\\|")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        for doc in Self::describe() {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                doc.name,
                cell(doc.values),
                cell(doc.default),
                cell(doc.meaning)
            ));
        }
        out
    }
}

/// kind names become Docker container names and kubeconfig contexts: lower-case letters,
/// digits and `-`, starting and ending with a letter or digit.
pub fn validate_kind_name(name: &str) -> std::result::Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_ends = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if !valid_chars || !valid_ends {
        return Err("expected lower-case letters, digits and '-', starting and ending with a letter or digit".into());
    }
    if name.len() > 50 {
        return Err("longer than 50 characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    fn error_of(vars: &[(&str, &str)]) -> String {
        settings(vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let s = settings(&[("HAPPY_CACHE_DIR", "/tmp/c")]).unwrap();
        assert_eq!(s.cluster, ClusterChoice::Auto);
        assert_eq!(s.istio_version, IstioVersionRequest::Pinned);
        assert!(!s.reuse);
        assert_eq!(s.keep, KeepPolicy::Never);
        assert_eq!(s.manifests_dir, crate_root().join("manifests"));
        assert_eq!(s.report_dir, crate_root().join("target/happy"));
        assert_eq!(s.cache_dir, PathBuf::from("/tmp/c"));
        assert_eq!(s.kind_cluster, "happy-istio");
    }

    #[test]
    fn cache_dir_defaults_to_the_user_cache_dir() {
        let s = settings(&[]).unwrap();
        if let Some(dir) = dirs::cache_dir() {
            assert_eq!(s.cache_dir, dir.join("happy-istio"));
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = settings(&[
            ("HAPPY_CLUSTER", ""),
            ("ISTIO_VERSION", " "),
            ("HAPPY_KEEP", ""),
        ])
        .unwrap();
        assert_eq!(s.cluster, ClusterChoice::Auto);
        assert_eq!(s.istio_version, IstioVersionRequest::Pinned);
    }

    #[test]
    fn cluster_choices() {
        for (value, want) in [
            ("kind", ClusterChoice::Kind),
            ("K3S", ClusterChoice::K3s),
            ("existing", ClusterChoice::Existing),
            ("sandbox", ClusterChoice::Sandbox),
            ("auto", ClusterChoice::Auto),
        ] {
            assert_eq!(settings(&[("HAPPY_CLUSTER", value)]).unwrap().cluster, want);
        }
        let err = error_of(&[("HAPPY_CLUSTER", "minikube")]);
        assert!(
            err.contains("HAPPY_CLUSTER") && err.contains("minikube") && err.contains("sandbox"),
            "{err}"
        );
    }

    #[test]
    fn istio_versions() {
        assert_eq!(
            settings(&[("ISTIO_VERSION", "latest")])
                .unwrap()
                .istio_version,
            IstioVersionRequest::Latest
        );
        assert_eq!(
            settings(&[("ISTIO_VERSION", "dev")]).unwrap().istio_version,
            IstioVersionRequest::LatestDev
        );
        assert_eq!(
            settings(&[("ISTIO_VERSION", "1.28.1")])
                .unwrap()
                .istio_version,
            IstioVersionRequest::Exact("1.28.1".parse().unwrap())
        );
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for dev in [format!("1.29-alpha.{sha}"), format!("1.32.0-alpha.{sha}")] {
            assert!(matches!(
                settings(&[("ISTIO_VERSION", &dev)]).unwrap().istio_version,
                IstioVersionRequest::Exact(v) if v.is_dev() && v.to_string() == dev
            ));
        }
        let err = error_of(&[("ISTIO_VERSION", "1.28")]);
        assert!(
            err.contains("ISTIO_VERSION") && err.contains("\"1.28\"") && err.contains("latest"),
            "{err}"
        );
    }

    #[test]
    fn reuse_and_keep() {
        assert!(settings(&[("HAPPY_REUSE", "1")]).unwrap().reuse);
        assert!(!settings(&[("HAPPY_REUSE", "0")]).unwrap().reuse);
        let err = error_of(&[("HAPPY_REUSE", "yes")]);
        assert!(err.contains("HAPPY_REUSE") && err.contains("yes"), "{err}");

        assert_eq!(
            settings(&[("HAPPY_KEEP", "1")]).unwrap().keep,
            KeepPolicy::Always
        );
        assert_eq!(
            settings(&[("HAPPY_KEEP", "on-failure")]).unwrap().keep,
            KeepPolicy::OnFailure
        );
        assert_eq!(
            settings(&[("HAPPY_KEEP", "0")]).unwrap().keep,
            KeepPolicy::Never
        );
        let err = error_of(&[("HAPPY_KEEP", "always")]);
        assert!(
            err.contains("HAPPY_KEEP") && err.contains("always") && err.contains("on-failure"),
            "{err}"
        );
    }

    #[test]
    fn keep_policy_decisions() {
        assert!(!KeepPolicy::Never.keep(true));
        assert!(KeepPolicy::Always.keep(false));
        assert!(KeepPolicy::OnFailure.keep(true));
        assert!(!KeepPolicy::OnFailure.keep(false));
    }

    #[test]
    fn directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        let s = settings(&[
            ("HAPPY_MANIFESTS", dir),
            ("HAPPY_REPORT_DIR", "/r"),
            ("HAPPY_CACHE_DIR", "/c"),
        ])
        .unwrap();
        assert_eq!(s.manifests_dir, tmp.path());
        assert_eq!(s.report_dir, PathBuf::from("/r"));
        let err = error_of(&[("HAPPY_MANIFESTS", "/does/not/exist")]);
        assert!(
            err.contains("HAPPY_MANIFESTS") && err.contains("/does/not/exist"),
            "{err}"
        );
    }

    #[test]
    fn kind_cluster_names() {
        assert_eq!(
            settings(&[("HAPPY_KIND_CLUSTER", "ci-7")])
                .unwrap()
                .kind_cluster,
            "ci-7"
        );
        for bad in ["Happy", "-x", "x-", "a_b", &"a".repeat(51)] {
            let err = error_of(&[("HAPPY_KIND_CLUSTER", bad)]);
            assert!(
                err.contains("HAPPY_KIND_CLUSTER") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn describe_covers_every_variable_read() {
        let names: Vec<&str> = Settings::describe().iter().map(|d| d.name).collect();
        let source = include_str!("settings.rs");
        for name in [
            "HAPPY_CLUSTER",
            "ISTIO_VERSION",
            "HAPPY_REUSE",
            "HAPPY_KEEP",
            "HAPPY_MANIFESTS",
            "HAPPY_CACHE_DIR",
            "HAPPY_REPORT_DIR",
            "HAPPY_KIND_CLUSTER",
        ] {
            assert!(names.contains(&name), "{name} missing from describe()");
            assert!(
                source.contains(&format!("get(\"{name}\")")),
                "{name} is documented but never read"
            );
        }
        let table = Settings::markdown_table();
        assert_eq!(table.lines().count(), 2 + names.len());
    }
}
