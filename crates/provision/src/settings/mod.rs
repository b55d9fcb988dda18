//! Every environment variable the suite reads (except the timeout table's `HAPPY_TIMEOUT_*`),
//! parsed once at start. A bad value is an error naming the variable and the value. An empty
//! (or all-blank) value counts as unset, here and in the timeout table alike, so CI matrices can
//! pass blanks.
//!
//! The variables have one definition, a clap derive struct (`vars`): parsing, the README's
//! table and `--help`'s text on the environment (`table`, [`Settings::describe`]) all read it.
//!
//! No setting is accepted and then ignored: [`Settings::not_applicable`] names the explicit
//! settings the chosen cluster kind has no use for (the runner reports them once), and
//! [`unknown_variables`] names each `HAPPY_*` variable the suite does not know, with the
//! nearest known name (a typo such as `HAPPY_CLUSTR` would otherwise be silently ignored).

use std::fmt;
use std::path::PathBuf;

use crate::istio::IstioVersion;
use crate::{Error, Result};

mod table;
mod vars;

pub use table::SettingDoc;

/// Which cluster to run on (`HAPPY_CLUSTER`). The variants' order is the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterChoice {
    /// KinD with Istio via istioctl.
    Kind,
    /// k3s in a container through testcontainers.
    K3s,
    /// The current kubeconfig context.
    Existing,
    /// happy-sandbox in-process.
    Sandbox,
    /// `kind` when a Docker daemon answers, else `sandbox`.
    Auto,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeepPolicy {
    /// `0` (default): always delete what the suite created.
    #[value(name = "0")]
    Never,
    /// `1`: always keep it.
    #[value(name = "1")]
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
    /// `HAPPY_ISTIO_HUB`: the hub of Istio's images instead of the default
    /// ([`crate::istio::hub`]).
    pub istio_hub: Option<String>,
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
    /// The variables that were set (non-empty), for [`Settings::not_applicable`].
    pub explicit: Vec<&'static str>,
    /// `HAPPY_LEGACY_IMAGE`: the legacy client's image; `None` = the deviation's own
    /// (see [`crate::deviations`]). `HAPPY_VERBATIM` naming `D-legacy-image` sets it to the
    /// workshop's image.
    pub legacy_image: Option<String>,
    /// `HAPPY_VERBATIM`: the ids of the deviations switched off (every id for `all`).
    pub verbatim: Vec<String>,
    /// `HAPPY_KIND_BINARY`: a kind binary to use instead of the pinned, downloaded one.
    pub kind_binary: Option<PathBuf>,
    /// `HAPPY_KIND_NODE_IMAGE`: the node image (the Kubernetes version) of the kind cluster.
    pub kind_node_image: String,
    /// `HAPPY_KIND_REGISTRY_AUTH`: a Docker `config.json` with registry credentials, mounted
    /// into the kind node for its kubelet's pulls (`crate::provision::registry_auth`).
    pub kind_registry_auth: Option<PathBuf>,
    /// `HAPPY_KIND_HOST_PORT`: a host port (on 127.0.0.1) mapped to the ingress gateway.
    pub kind_host_port: Option<u16>,
    /// `HAPPY_PREFLIGHT`: whether a failed preflight stops a kind or k3s run.
    pub preflight: PreflightMode,
    /// `HAPPY_DOCS`: whether the run ends by writing its living documentation page
    /// (`crate::docs`) into `site/` of the report directory.
    pub docs: bool,
}

/// What a preflight problem does to a run (`HAPPY_PREFLIGHT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PreflightMode {
    /// `strict` (default): any problem stops the run before anything is created.
    Strict,
    /// `warn`: problems are reported and the run goes on.
    Warn,
}

/// The default kind cluster name.
pub(crate) const DEFAULT_KIND_CLUSTER: &str = "happy-istio";

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

    /// Reads settings through `lookup` (tests pass a map): parses them with their definition
    /// ([`vars`]), then fills in the defaults decided here and checks the settings that must
    /// agree with each other.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (vars, explicit) = vars::parse(lookup)?;
        // Defaults are relative to the repository's root, not to the working directory.
        let root = crate::repo_root();
        let cache_dir = match vars.cache_dir {
            Some(dir) => dir,
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
        let verbatim = vars.verbatim.map(|ids| ids.0).unwrap_or_default();
        let verbatim_has = |id: &str| verbatim.iter().any(|v| v == id);

        let mut legacy_image = vars.legacy_image;
        if verbatim_has("D-legacy-image") {
            let workshop = crate::deviations::WORKSHOP_LEGACY_IMAGE;
            match &legacy_image {
                Some(image) if !crate::deviations::same_image(image, workshop) => {
                    return Err(invalid(
                        "HAPPY_LEGACY_IMAGE",
                        image,
                        format!(
                            "HAPPY_VERBATIM switches D-legacy-image off, which runs the \
                             workshop's {workshop}; unset one of the two"
                        ),
                    ));
                }
                _ => legacy_image = Some(workshop.to_string()),
            }
        }
        let mut istio_version = vars.istio_version.unwrap_or(IstioVersionRequest::Pinned);
        if verbatim_has("D-istio-version") {
            let workshop = crate::deviations::WORKSHOP_ISTIO_VERSION;
            match &istio_version {
                IstioVersionRequest::Pinned => {
                    istio_version = IstioVersionRequest::Exact(workshop.parse()?);
                }
                IstioVersionRequest::Exact(v) if v.to_string() == workshop => {}
                other => {
                    return Err(invalid(
                        "ISTIO_VERSION",
                        &format!("{other:?}"),
                        format!(
                            "HAPPY_VERBATIM switches D-istio-version off, which installs the \
                             workshop's {workshop}; unset one of the two"
                        ),
                    ));
                }
            }
        }

        Ok(Self {
            cluster: vars.cluster,
            istio_version,
            istio_hub: vars.istio_hub,
            reuse: vars.reuse,
            keep: vars.keep,
            manifests_dir: vars.manifests.unwrap_or_else(|| root.join("manifests")),
            cache_dir,
            report_dir: vars
                .report_dir
                .unwrap_or_else(|| root.join("target").join("happy")),
            kind_cluster: vars.kind_cluster,
            explicit,
            legacy_image,
            verbatim,
            kind_binary: vars.kind_binary,
            kind_node_image: vars.kind_node_image,
            kind_registry_auth: vars.kind_registry_auth,
            kind_host_port: vars.kind_host_port,
            preflight: vars.preflight,
            docs: vars.docs,
        })
    }

    /// The explicit settings a cluster kind has no use for, each with why, to report once.
    /// (`ISTIO_VERSION` on the sandbox is not here: asking it for another Istio is an error.)
    pub fn not_applicable(&self, kind: crate::cluster_kind::ClusterKind) -> Vec<String> {
        use crate::cluster_kind::ClusterKind;
        // The kind-only settings (their rows in `describe()` say "kind cluster"/"kind run").
        let kind_only: [(&str, &str); 4] = [
            ("HAPPY_KIND_BINARY", "only kind runs use a kind binary"),
            ("HAPPY_KIND_NODE_IMAGE", "only kind runs make kind nodes"),
            (
                "HAPPY_KIND_REGISTRY_AUTH",
                "only a kind node mounts registry credentials",
            ),
            (
                "HAPPY_KIND_HOST_PORT",
                "only a kind cluster maps a host port",
            ),
        ];
        let preflight = (
            "HAPPY_PREFLIGHT",
            "preflight checks run before kind and k3s runs only",
        );
        let mut unused: Vec<(&str, &str)> = match kind {
            ClusterKind::Sandbox => vec![
                (
                    "HAPPY_KEEP",
                    "the sandbox runs inside this process and always ends with it",
                ),
                ("HAPPY_REUSE", "the sandbox is made fresh for every run"),
                (
                    "HAPPY_KIND_CLUSTER",
                    "no kind cluster is made on the sandbox",
                ),
                preflight,
            ],
            ClusterKind::Existing => vec![
                (
                    "HAPPY_KEEP",
                    "the suite never deletes a cluster it did not create",
                ),
                ("HAPPY_REUSE", "an existing cluster is always the one used"),
                (
                    "HAPPY_KIND_CLUSTER",
                    "the current kubeconfig context is used",
                ),
                preflight,
            ],
            ClusterKind::K3s => vec![
                ("HAPPY_REUSE", "every k3s container is made fresh"),
                ("HAPPY_KIND_CLUSTER", "k3s runs no kind cluster"),
            ],
            ClusterKind::Kind => vec![],
        };
        if kind != ClusterKind::Kind {
            unused.extend(kind_only);
        }
        unused
            .iter()
            .filter(|(name, _)| self.explicit.contains(name))
            .map(|(name, why)| format!("{name} is set but does not apply to a {kind} run: {why}"))
            .collect()
    }
}

/// What the settings say about the deviations, for [`crate::deviations::Deviations::resolve`]:
/// `HAPPY_VERBATIM`, `HAPPY_LEGACY_IMAGE` and `ISTIO_VERSION` as plain values.
impl From<&Settings> for crate::deviations::Switches {
    fn from(settings: &Settings) -> Self {
        crate::deviations::Switches {
            verbatim: settings.verbatim.clone(),
            legacy_image: settings.legacy_image.clone(),
            istio_version: match &settings.istio_version {
                IstioVersionRequest::Pinned => None,
                IstioVersionRequest::Latest => Some("latest".to_string()),
                IstioVersionRequest::LatestDev => Some("dev".to_string()),
                IstioVersionRequest::Exact(v) => Some(v.to_string()),
            },
        }
    }
}

/// Variables read elsewhere than [`Settings`] and the timeout table, documented in the README's
/// "The sandbox also reads" table: they count as known for [`unknown_variables`].
pub(crate) const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "HAPPY_ENVOY",
        "The Envoy binary of the sandbox's sidecars and gateways (default: envoy on PATH, else the cache)",
    ),
    (
        "HAPPY_SANDBOX_READY_TIMEOUT",
        "How long happy-sandbox up --istio --addons waits for each component to be ready (default 300s)",
    ),
    (
        "HAPPY_NEGATIVE_CHILD",
        "Internal: marks a child run of the negative tests (tests/runs/negative.rs)",
    ),
    (
        "HAPPY_FAILFAST_CHILD",
        "Internal: marks a child run of the fail-fast tests (tests/runs/failfast.rs)",
    ),
    (
        "HAPPY_SCRAPE15_CHILD",
        "Internal: marks a child run of the 15 s scrape test (tests/runs/scrape15.rs)",
    ),
    (
        "HAPPY_RUNS_GROUP",
        "Internal: marks a child of the runs test binary that runs one group (tests/runs/main.rs)",
    ),
    (
        "HAPPY_NEGATIVE_JOBS",
        "the negative tests (tests/runs/negative.rs): how many runs go at once (default: 3 per core)",
    ),
    (
        "HAPPY_SANDBOX_FAULTS",
        "Faults on purpose in the sandbox's image pulls: pull:<image pattern>=<fault> rules separated by ; (faults unreachable, ratelimit, notfound with an optional :N, or slow:SECONDS)",
    ),
    (
        "HAPPY_SANDBOX_PULL_SCHEMA1",
        "Test-only: the sandbox's node pulls Docker schema-1 images, as no current containerd does (tests/runs/negative.rs breaks D-legacy-image's premise with it)",
    ),
    (
        "HAPPY_SANDBOX_ISTIO_PROFILE",
        "Test-only: the profile the sandbox installs Istio with, demo (the default) or default, which has no egress gateway (tests/runs/negative.rs breaks C05 with it)",
    ),
    (
        "HAPPY_SANDBOX_ADDON_FILES",
        "Test-only: the files of samples/addons the sandbox applies, comma-separated (unset: all; the sandbox runs prometheus.yaml's), as a reader who applied only some (tests/runs/negative.rs breaks C12 with kiali.yaml)",
    ),
    (
        "HAPPY_BENCH_TARGET_DIR",
        "ci/bench: the target dir it builds the commits it compares in (default target/bench)",
    ),
    (
        "HAPPY_SANDBOX_API_LOG",
        "Test-only: a file the sandbox's API server appends one line per request to (ci/bench counts them)",
    ),
];

/// Every `HAPPY_*` variable the suite knows: the rows of [`Settings::describe`] and
/// [`crate::timeouts::Timeouts::describe`] (so a new row counts at once) and
/// [`OTHER_VARIABLES`].
pub(crate) fn known_variables() -> Vec<String> {
    Settings::describe()
        .iter()
        .map(|d| d.name.to_string())
        .chain(
            crate::timeouts::Timeouts::describe()
                .into_iter()
                .map(|d| d.env_var),
        )
        .chain(OTHER_VARIABLES.iter().map(|(name, _)| name.to_string()))
        .collect()
}

/// A warning for each `HAPPY_*` variable among `names` the suite does not know, with the
/// nearest known name when one is close (at most a third of the name's letters apart).
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let known = known_variables();
    let mut out = Vec::new();
    for name in names {
        if !name.starts_with("HAPPY_") || known.iter().any(|k| k == name) {
            continue;
        }
        let nearest = known
            .iter()
            .map(|k| (strsim::levenshtein(name, k), k))
            .min()
            .filter(|(d, _)| *d <= name.len().div_ceil(3));
        out.push(match nearest {
            Some((_, k)) => format!("{name} is not a variable the suite reads; did you mean {k}?"),
            None => format!(
                "{name} is not a variable the suite reads (see --help for the ones it does)"
            ),
        });
    }
    out
}

/// kind names become Docker container names and kubeconfig contexts: lower-case letters,
/// digits and `-`, starting and ending with a letter or digit.
pub(crate) fn validate_kind_name(name: &str) -> std::result::Result<(), String> {
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
        assert_eq!(s.manifests_dir, crate::repo_root().join("manifests"));
        assert_eq!(s.report_dir, crate::repo_root().join("target/happy"));
        assert_eq!(s.cache_dir, PathBuf::from("/tmp/c"));
        assert_eq!(s.kind_cluster, "happy-istio");
        assert_eq!(s.kind_binary, None);
        assert_eq!(s.kind_node_image, crate::kind_pins::KIND_NODE_IMAGE);
        assert_eq!(s.kind_host_port, None);
        assert_eq!(s.preflight, PreflightMode::Strict);
    }

    #[test]
    fn kind_options() {
        let s = settings(&[
            ("HAPPY_KIND_BINARY", "sh"),
            ("HAPPY_KIND_NODE_IMAGE", "kindest/node:v1.34.0"),
            ("HAPPY_KIND_HOST_PORT", "18080"),
            ("HAPPY_PREFLIGHT", "warn"),
        ])
        .unwrap();
        assert!(s.kind_binary.unwrap().ends_with("sh"));
        assert_eq!(s.kind_node_image, "kindest/node:v1.34.0");
        assert_eq!(s.kind_host_port, Some(18080));
        assert_eq!(s.preflight, PreflightMode::Warn);
        for (var, bad) in [
            ("HAPPY_KIND_BINARY", "/does/not/exist/kind"),
            ("HAPPY_KIND_BINARY", "no-such-kind-binary"),
            ("HAPPY_KIND_NODE_IMAGE", "kindest/node:latest"),
            ("HAPPY_KIND_HOST_PORT", "0"),
            ("HAPPY_KIND_HOST_PORT", "80800"),
            ("HAPPY_PREFLIGHT", "off"),
        ] {
            let err = error_of(&[(var, bad)]);
            assert!(err.contains(var) && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_living_documentation_page_is_on_unless_switched_off() {
        assert!(settings(&[]).unwrap().docs);
        assert!(!settings(&[("HAPPY_DOCS", "off")]).unwrap().docs);
        assert!(settings(&[("HAPPY_DOCS", "ON")]).unwrap().docs);
        let err = error_of(&[("HAPPY_DOCS", "no")]);
        assert!(err.contains("HAPPY_DOCS") && err.contains("no"), "{err}");
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
    fn istio_hub_is_checked_and_unset_by_default() {
        assert_eq!(settings(&[]).unwrap().istio_hub, None);
        assert_eq!(
            settings(&[("HAPPY_ISTIO_HUB", "localhost:5000/istio/")])
                .unwrap()
                .istio_hub
                .as_deref(),
            Some("localhost:5000/istio")
        );
        let err = error_of(&[("HAPPY_ISTIO_HUB", "docker.io/istio/pilot:1.30.5")]);
        assert!(
            err.contains("HAPPY_ISTIO_HUB") && err.contains("docker.io/istio/pilot:1.30.5"),
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
    fn verbatim_and_the_legacy_image() {
        let s = settings(&[]).unwrap();
        assert!(s.verbatim.is_empty() && s.legacy_image.is_none());
        let s = settings(&[("HAPPY_VERBATIM", "d-legacy-image")]).unwrap();
        assert_eq!(s.verbatim, ["D-legacy-image"]);
        assert_eq!(s.legacy_image.as_deref(), Some("radial/busyboxplus:curl"));
        assert_eq!(s.istio_version, IstioVersionRequest::Pinned);
        let s = settings(&[("HAPPY_VERBATIM", "all")]).unwrap();
        assert_eq!(
            s.verbatim.len(),
            crate::deviations::DEVIATIONS
                .iter()
                .filter(|d| d.switchable)
                .count()
        );
        assert!(s.verbatim.iter().any(|id| id == "D-capture-command"));
        let s2 = settings(&[("HAPPY_VERBATIM", "D-capture-command")]).unwrap();
        assert_eq!(s2.verbatim, ["D-capture-command"]);
        assert_eq!(
            s.istio_version.clone(),
            IstioVersionRequest::Exact("1.12.2".parse().unwrap())
        );
        let s = settings(&[("HAPPY_LEGACY_IMAGE", "my/curl:1")]).unwrap();
        assert_eq!(s.legacy_image.as_deref(), Some("my/curl:1"));

        let err = error_of(&[("HAPPY_VERBATIM", "D-legacy-image,D-nope")]);
        assert!(
            err.contains("HAPPY_VERBATIM")
                && err.contains("D-nope")
                && err.contains("D-legacy-image"),
            "{err}"
        );
        let err = error_of(&[
            ("HAPPY_VERBATIM", "D-legacy-image"),
            ("HAPPY_LEGACY_IMAGE", "my/curl:1"),
        ]);
        assert!(
            err.contains("HAPPY_LEGACY_IMAGE") && err.contains("my/curl:1"),
            "{err}"
        );
        let err = error_of(&[("HAPPY_VERBATIM", "all"), ("ISTIO_VERSION", "latest")]);
        assert!(
            err.contains("ISTIO_VERSION") && err.contains("D-istio-version"),
            "{err}"
        );
        assert!(
            settings(&[
                ("HAPPY_VERBATIM", "all"),
                ("HAPPY_LEGACY_IMAGE", "docker.io/radial/busyboxplus:curl")
            ])
            .is_ok()
        );
    }

    /// The variables, in the table's order: one clap argument each, and each read (a field of
    /// the definition that nothing reads is dead code, which the workspace's lints deny).
    const VARIABLES: [&str; 18] = [
        "HAPPY_CLUSTER",
        "ISTIO_VERSION",
        "HAPPY_ISTIO_HUB",
        "GITHUB_TOKEN",
        "HAPPY_REUSE",
        "HAPPY_KEEP",
        "HAPPY_MANIFESTS",
        "HAPPY_CACHE_DIR",
        "HAPPY_REPORT_DIR",
        "HAPPY_KIND_CLUSTER",
        "HAPPY_VERBATIM",
        "HAPPY_LEGACY_IMAGE",
        "HAPPY_KIND_BINARY",
        "HAPPY_KIND_NODE_IMAGE",
        "HAPPY_KIND_REGISTRY_AUTH",
        "HAPPY_KIND_HOST_PORT",
        "HAPPY_PREFLIGHT",
        "HAPPY_DOCS",
    ];

    #[test]
    fn describe_covers_every_variable_read() {
        let names: Vec<&str> = Settings::describe().iter().map(|d| d.name).collect();
        assert_eq!(names, VARIABLES);
        let arguments: Vec<&str> = vars::definition()
            .get_arguments()
            .map(|arg| vars::variable(arg).expect("every argument is a variable"))
            .collect();
        assert_eq!(arguments, VARIABLES);
        let table = Settings::markdown_table();
        assert_eq!(table.lines().count(), 2 + names.len());
        for name in names {
            assert!(table.contains(&format!("| `{name}` |")), "{name}");
        }
    }

    /// Each variable reaches the settings: a valid value other than the default changes them.
    #[test]
    fn every_variable_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        let base = settings(&[]).unwrap();
        let values = [
            ("HAPPY_CLUSTER", "kind"),
            ("ISTIO_VERSION", "latest"),
            ("HAPPY_ISTIO_HUB", "localhost:5000/istio"),
            ("HAPPY_REUSE", "1"),
            ("HAPPY_KEEP", "on-failure"),
            ("HAPPY_MANIFESTS", dir),
            ("HAPPY_CACHE_DIR", "/c"),
            ("HAPPY_REPORT_DIR", "/r"),
            ("HAPPY_KIND_CLUSTER", "ci"),
            ("HAPPY_VERBATIM", "D-capture-command"),
            ("HAPPY_LEGACY_IMAGE", "my/curl:1"),
            ("HAPPY_KIND_BINARY", "sh"),
            ("HAPPY_KIND_NODE_IMAGE", "kindest/node:v1.34.0"),
            ("HAPPY_KIND_REGISTRY_AUTH", "/auth.json"),
            ("HAPPY_KIND_HOST_PORT", "18080"),
            ("HAPPY_PREFLIGHT", "warn"),
            ("HAPPY_DOCS", "off"),
        ];
        for (name, value) in values {
            let mut s = settings(&[(name, value)]).unwrap();
            assert_eq!(s.explicit, [name]);
            s.explicit.clear();
            assert_ne!(s, base, "{name}={value} changed nothing");
        }
        // GITHUB_TOKEN is read from the process by the release lookup; here it is only known.
        let s = settings(&[("GITHUB_TOKEN", "t")]).unwrap();
        assert_eq!(s.explicit, ["GITHUB_TOKEN"]);
        assert_eq!(values.len() + 1, VARIABLES.len());
    }

    #[test]
    fn a_bad_value_names_the_variable_not_a_flag() {
        for (var, bad, reason) in [
            (
                "HAPPY_CLUSTER",
                "sandbx",
                "expected kind, k3s, existing, sandbox or auto; did you mean sandbox?",
            ),
            ("HAPPY_KEEP", "always", "expected 0, 1 or on-failure"),
            ("HAPPY_REUSE", "yes", "expected 0 or 1"),
            ("HAPPY_DOCS", "-1", "expected on or off"),
            ("HAPPY_KIND_CLUSTER", "-x", "expected lower-case letters"),
            (
                "HAPPY_KIND_HOST_PORT",
                "-1",
                "expected a port number from 1 to 65535",
            ),
            (
                "HAPPY_ISTIO_HUB",
                "docker.io/istio/pilot:1.30.5",
                "expected a hub such as",
            ),
        ] {
            let err = settings(&[(var, bad)]).unwrap_err();
            let Error::InvalidSetting {
                var: got,
                value,
                reason: why,
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!((got.as_str(), value.as_str()), (var, bad.trim()), "{err}");
            assert!(why.starts_with(reason), "{err}");
            assert!(!err.to_string().contains("--"), "{err}");
        }
        // Upper case is accepted where it was, trimmed too.
        assert_eq!(
            settings(&[("HAPPY_KEEP", " ON-FAILURE ")]).unwrap().keep,
            KeepPolicy::OnFailure
        );
    }

    #[test]
    fn the_table_reads_values_and_defaults_from_the_definition() {
        let docs = Settings::describe();
        let row = |name: &str| docs.iter().find(|d| d.name == name).unwrap().clone();
        let cluster = row("HAPPY_CLUSTER");
        assert_eq!(
            (cluster.values.as_str(), cluster.default.as_str()),
            ("kind | k3s | existing | sandbox | auto", "auto")
        );
        let keep = row("HAPPY_KEEP");
        assert_eq!(
            (keep.values.as_str(), keep.default.as_str()),
            ("0 | 1 | on-failure", "0")
        );
        assert_eq!(row("HAPPY_DOCS").values, "on | off");
        assert_eq!(
            row("ISTIO_VERSION").default,
            crate::istio::releases::PINNED_DEFAULT
        );
        assert_eq!(
            row("HAPPY_LEGACY_IMAGE").default,
            crate::deviations::SUITE_LEGACY_IMAGE
        );
        assert_eq!(
            row("HAPPY_KIND_NODE_IMAGE").default,
            crate::kind_pins::KIND_NODE_IMAGE
        );
        let cache = row("HAPPY_CACHE_DIR");
        assert_eq!(
            (cache.values.as_str(), cache.default.as_str()),
            ("a directory", "<user cache dir>/happy-istio")
        );
        assert_eq!(row("HAPPY_KIND_HOST_PORT").default, "unset");
        for doc in &docs {
            assert!(
                !doc.meaning.contains("[default:") && !doc.meaning.is_empty(),
                "{doc:?}"
            );
            assert!(!doc.values.is_empty() && !doc.default.is_empty(), "{doc:?}");
        }
    }

    /// `from_lookup` reads its lookup only, never the process environment (clap would read each
    /// `env` variable itself): a child run of [`from_lookup_reads_only_its_lookup`] with bad
    /// values in its environment still passes.
    #[test]
    fn the_process_environment_does_not_reach_from_lookup() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "settings::tests::from_lookup_reads_only_its_lookup",
            ])
            .env("HAPPY_CLUSTER", "minikube")
            .env("HAPPY_KIND_HOST_PORT", "0")
            .env("HAPPY_DOCS", "off")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}"
        );
    }

    #[test]
    fn from_lookup_reads_only_its_lookup() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.cluster, ClusterChoice::Auto);
        assert_eq!(s.kind_host_port, None);
        assert!(s.docs && s.explicit.is_empty());
    }

    #[test]
    fn unknown_variables_get_the_nearest_known_name() {
        let warnings = unknown_variables([
            "HAPPY_CLUSTR",
            "HAPPY_TIMEOUT_ROLOUT",
            "HAPPY_ENVOI",
            "HAPPY_CLUSTER",
            "HAPPY_TIMEOUT_ASSERTION",
            "HAPPY_ENVOY",
            "PATH",
            "HAPPY_SOMETHING_ELSE_ENTIRELY",
        ]);
        assert_eq!(
            warnings,
            [
                "HAPPY_CLUSTR is not a variable the suite reads; did you mean HAPPY_CLUSTER?",
                "HAPPY_TIMEOUT_ROLOUT is not a variable the suite reads; did you mean HAPPY_TIMEOUT_ROLLOUT?",
                "HAPPY_ENVOI is not a variable the suite reads; did you mean HAPPY_ENVOY?",
                "HAPPY_SOMETHING_ELSE_ENTIRELY is not a variable the suite reads (see --help for the ones it does)",
            ]
        );
        // Every row of both tables counts as known.
        let known = known_variables();
        assert!(known.contains(&"HAPPY_CONSECUTIVE".to_string()));
        assert!(known.contains(&"HAPPY_KIND_CLUSTER".to_string()));
    }

    #[test]
    fn settings_the_sandbox_cannot_use_are_named_once() {
        use crate::cluster_kind::ClusterKind;
        let s = settings(&[
            ("HAPPY_KEEP", "1"),
            ("HAPPY_REUSE", "0"),
            ("HAPPY_KIND_CLUSTER", "ci"),
            ("HAPPY_REPORT_DIR", "/r"),
        ])
        .unwrap();
        let notes = s.not_applicable(ClusterKind::Sandbox);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("HAPPY_KEEP is set but does not apply to a sandbox run"));
        assert!(notes[1].starts_with("HAPPY_REUSE"));
        assert!(notes[2].starts_with("HAPPY_KIND_CLUSTER"));
        assert!(s.not_applicable(ClusterKind::Kind).is_empty());
        // Unset or empty: nothing to report.
        let quiet = settings(&[("HAPPY_KEEP", " ")]).unwrap();
        assert!(quiet.not_applicable(ClusterKind::Sandbox).is_empty());
    }

    #[test]
    fn help_lists_every_variable() {
        let help = Settings::help_text();
        for name in known_variables() {
            assert!(help.contains(&name), "{name} missing from --help");
        }
    }
}

#[cfg(test)]
mod deviations_tests;
