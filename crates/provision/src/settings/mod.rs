//! Every environment variable the suite reads (except the timeout table's `HAPPY_TIMEOUT_*`),
//! parsed once at start. A bad value is an error naming the variable and the value. An empty
//! (or all-blank) value counts as unset, here and in the timeout table alike, so CI matrices can
//! pass blanks. `describe()` is the README's table.
//!
//! No setting is accepted and then ignored: [`Settings::not_applicable`] names the explicit
//! settings the chosen cluster kind has no use for (the runner reports them once), and
//! [`unknown_variables`] names each `HAPPY_*` variable the suite does not know, with the
//! nearest known name (a typo such as `HAPPY_CLUSTR` would otherwise be silently ignored).

use std::fmt;
use std::path::PathBuf;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightMode {
    /// `strict` (default): any problem stops the run before anything is created.
    Strict,
    /// `warn`: problems are reported and the run goes on.
    Warn,
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

/// The repository's root: defaults are relative to it, not to the working directory.
fn crate_root() -> PathBuf {
    crate::repo_root()
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

        let istio_hub = match get(crate::istio::hub::HUB_VAR) {
            None => None,
            Some(v) => Some(
                crate::istio::hub::parse_hub(&v)
                    .map_err(|reason| invalid(crate::istio::hub::HUB_VAR, &v, reason))?,
            ),
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

        let explicit: Vec<&'static str> = Self::describe()
            .iter()
            .map(|d| d.name)
            .filter(|name| get(name).is_some())
            .collect();

        let kind_cluster = match get("HAPPY_KIND_CLUSTER") {
            None => DEFAULT_KIND_CLUSTER.to_string(),
            Some(v) => {
                validate_kind_name(&v)
                    .map_err(|reason| invalid("HAPPY_KIND_CLUSTER", &v, reason))?;
                v
            }
        };

        let verbatim: Vec<String> = match get(crate::deviations::VERBATIM_VAR) {
            None => Vec::new(),
            // `all` means every deviation that can be switched off; the others stay on and
            // the run's banner says so.
            Some(v) if v.eq_ignore_ascii_case("all") => crate::deviations::DEVIATIONS
                .iter()
                .filter(|d| d.switchable)
                .map(|d| d.id.to_string())
                .collect(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(|id| match crate::deviations::find(id) {
                    Some(d) if !d.switchable => Err(invalid(
                        crate::deviations::VERBATIM_VAR,
                        &v,
                        format!("{} {}", d.id, d.switch_off),
                    )),
                    Some(d) => Ok(d.id.to_string()),
                    None => Err(invalid(
                        crate::deviations::VERBATIM_VAR,
                        &v,
                        format!(
                            "no deviation {id:?}; expected all or ids among {}",
                            crate::deviations::ids().join(", ")
                        ),
                    )),
                })
                .collect::<Result<_>>()?,
        };
        let verbatim_has = |id: &str| verbatim.iter().any(|v| v == id);

        let mut legacy_image = get("HAPPY_LEGACY_IMAGE");
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
        let mut istio_version = istio_version;
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
        let kind_binary = match get("HAPPY_KIND_BINARY") {
            None => None,
            Some(v) => Some(
                resolve_binary(&v).map_err(|reason| invalid("HAPPY_KIND_BINARY", &v, reason))?,
            ),
        };

        let kind_node_image = match get("HAPPY_KIND_NODE_IMAGE") {
            None => crate::kind_pins::KIND_NODE_IMAGE.to_string(),
            Some(v) => {
                if crate::istio::support_window::parse_kube_minor(&v).is_none() {
                    return Err(invalid(
                        "HAPPY_KIND_NODE_IMAGE",
                        &v,
                        "expected a kind node image tagged with its Kubernetes version, e.g. kindest/node:v1.35.8@sha256:<digest>",
                    ));
                }
                v
            }
        };

        // Checked (exists, JSON, plain credentials) by preflight and again before kind runs,
        // where a bad file is a problem with its fix rather than a setting error.
        let kind_registry_auth = get("HAPPY_KIND_REGISTRY_AUTH").map(PathBuf::from);

        let kind_host_port = match get("HAPPY_KIND_HOST_PORT") {
            None => None,
            Some(v) => match v.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    return Err(invalid(
                        "HAPPY_KIND_HOST_PORT",
                        &v,
                        "expected a port number from 1 to 65535",
                    ));
                }
            },
        };

        let preflight = match get("HAPPY_PREFLIGHT") {
            None => PreflightMode::Strict,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "strict" => PreflightMode::Strict,
                "warn" => PreflightMode::Warn,
                _ => return Err(invalid("HAPPY_PREFLIGHT", &v, "expected strict or warn")),
            },
        };

        let docs = match get("HAPPY_DOCS") {
            None => true,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(invalid("HAPPY_DOCS", &v, "expected on or off")),
            },
        };

        Ok(Self {
            cluster,
            istio_version,
            istio_hub,
            reuse,
            keep,
            manifests_dir,
            cache_dir,
            report_dir,
            kind_cluster,
            explicit,
            legacy_image,
            verbatim,
            kind_binary,
            kind_node_image,
            kind_registry_auth,
            kind_host_port,
            preflight,
            docs,
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

    /// `--help`'s text on the environment: every variable of the settings and timeout tables.
    pub fn help_text() -> String {
        let mut out = String::from("Environment variables (an empty value counts as unset):\n");
        for doc in Self::describe() {
            out.push_str(&format!(
                "  {}={}  (default: {})\n      {}\n",
                doc.name, doc.values, doc.default, doc.meaning
            ));
        }
        for (name, meaning) in OTHER_VARIABLES {
            out.push_str(&format!("  {name}\n      {meaning}\n"));
        }
        out.push_str(
            "\nTimeouts (a duration such as 90s, 2m, 500ms, 1h or a number of seconds):\n",
        );
        for doc in crate::timeouts::Timeouts::describe() {
            out.push_str(&format!(
                "  {}  (default: {})\n      {}\n",
                doc.env_var, doc.default, doc.bounds
            ));
        }
        out
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
                name: "HAPPY_ISTIO_HUB",
                values: "unset | a hub, e.g. docker.io/istio or localhost:5000/istio",
                default: "docker.io/istio for releases; a dev build's own",
                meaning: "Where Istio's images (<hub>/pilot, <hub>/proxyv2) come from: istioctl install gets --set hub=<hub>, the sandbox's install names it. Unset, a release installs from docker.io/istio, where every release is published (whatever hub its istioctl has built in: 1.30's is registry.istio.io/release, being decommissioned), and a dev build from the hub built into it (registry.istio.io/testing, also being decommissioned). Every report states the hub (run.json istio_hub)",
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
                meaning: "1 = reuse an existing kind cluster of that name (its node image stays as it was created); Istio is kept when it runs the wanted version, otherwise the wanted version is installed over it",
            },
            SettingDoc {
                name: "HAPPY_KEEP",
                values: "0 | 1 | on-failure",
                default: "0",
                meaning: "Keep the kind cluster the suite created after the run: never, always, or when a scenario failed (its kubeconfig is in the cache; the `export KUBECONFIG=…` line is printed). kind only: a k3s container is always removed, which a k3s run with it set says",
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
            SettingDoc {
                name: "HAPPY_VERBATIM",
                values: "all | deviation ids, comma-separated (D-legacy-image, D-istio-version, D-ingress-address, D-capture-command)",
                default: "unset (every deviation on)",
                meaning: "Switch deviations off: run the workshop's text as written where the suite departs from it (see Deviations from the workshop)",
            },
            SettingDoc {
                name: "HAPPY_LEGACY_IMAGE",
                values: "an image reference",
                default: crate::deviations::SUITE_LEGACY_IMAGE,
                meaning: "Image of the legacy client pod (C18, C19, C22; deviation D-legacy-image); radial/busyboxplus:curl = the workshop's pod as written (fails to pull on containerd ≥ 2.1), any other image runs with command /bin/sleep infinity",
            },
            SettingDoc {
                name: "HAPPY_KIND_BINARY",
                values: "a path, or a name on PATH",
                default: "the pinned kind, downloaded",
                meaning: "Use this kind instead of the pinned release (downloaded into the cache, sha256 verified); its `kind version` is checked and a different version is warned about",
            },
            SettingDoc {
                name: "HAPPY_KIND_NODE_IMAGE",
                values: "a kind node image",
                default: crate::kind_pins::KIND_NODE_IMAGE,
                meaning: "The kind node image, i.e. the Kubernetes version, passed as `kind create cluster --image`; a Kubernetes outside the Istio minor's supported window is refused",
            },
            SettingDoc {
                name: "HAPPY_KIND_REGISTRY_AUTH",
                values: "unset | a path to a Docker config.json",
                default: "unset (the node pulls anonymously)",
                meaning: "Registry credentials for the kind node: the file is mounted read-only at /var/lib/kubelet/config.json, where the kubelet reads the credentials it pulls with (kind docs, private-registries.md); it must hold them in \"auths\" (a credsStore/credHelpers reference is refused: the node cannot call the host's helper). See Docker Hub login",
            },
            SettingDoc {
                name: "HAPPY_KIND_HOST_PORT",
                values: "unset | 1-65535",
                default: "unset",
                meaning: "Map this port on 127.0.0.1 to the ingress gateway (NodePort 30080), for reading a kept cluster in a browser; checked free before the cluster is created",
            },
            SettingDoc {
                name: "HAPPY_PREFLIGHT",
                values: "strict | warn",
                default: "strict",
                meaning: "What a failed preflight check does to a kind or k3s run: stop before anything is created, or report and go on",
            },
            SettingDoc {
                name: "HAPPY_DOCS",
                values: "on | off",
                default: "on",
                meaning: "on = the run ends by writing its living documentation page (the matrix and chapter pages, see Living documentation) to site/index.html in the report directory and printing its path; off = it does not (the suite's own child runs set it)",
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
pub const OTHER_VARIABLES: &[(&str, &str)] = &[
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
pub fn known_variables() -> Vec<String> {
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

/// A binary named by path, or by a bare name looked up on PATH; it must be executable.
fn resolve_binary(value: &str) -> std::result::Result<PathBuf, String> {
    let path = if value.contains(std::path::MAIN_SEPARATOR) || value.contains('/') {
        PathBuf::from(value)
    } else {
        crate::process::which(value).ok_or("not found on PATH")?
    };
    if !crate::process::is_executable(&path) {
        return Err("not an executable file".into());
    }
    Ok(path)
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

    #[test]
    fn describe_covers_every_variable_read() {
        let names: Vec<&str> = Settings::describe().iter().map(|d| d.name).collect();
        let source = include_str!("mod.rs");
        for name in [
            "HAPPY_CLUSTER",
            "ISTIO_VERSION",
            "HAPPY_REUSE",
            "HAPPY_KEEP",
            "HAPPY_MANIFESTS",
            "HAPPY_CACHE_DIR",
            "HAPPY_REPORT_DIR",
            "HAPPY_KIND_CLUSTER",
            "HAPPY_LEGACY_IMAGE",
            "HAPPY_KIND_BINARY",
            "HAPPY_KIND_NODE_IMAGE",
            "HAPPY_KIND_REGISTRY_AUTH",
            "HAPPY_KIND_HOST_PORT",
            "HAPPY_PREFLIGHT",
            "HAPPY_DOCS",
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
