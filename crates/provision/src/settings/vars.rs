//! The one definition of the settings: a clap derive struct with one field per variable (its
//! `env` name), its values (possible values, or a `value_name` saying what is accepted), its
//! default and its help. Parsing here, and the README's table and `--help`'s environment text
//! (`super::table`), all read it.
//!
//! A default decided after parsing (a path under the repository or the user cache directory,
//! the pinned Istio release, …) is not a clap default: such a field is an `Option` and its help
//! ends with `[default: …]`, the form clap itself appends to help for its own defaults.
//!
//! A field's doc comment is its help, as clap's derive reads it: the lines of a paragraph joined
//! by spaces, a trailing `.` of the first paragraph dropped (clap_derive 4.6.9
//! src/utils/doc_comments.rs `merge_lines`, `remove_period`); so one paragraph each, no `.`.

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command, CommandFactory as _, FromArgMatches as _};

use super::{ClusterChoice, DEFAULT_KIND_CLUSTER, IstioVersionRequest, KeepPolicy, PreflightMode};
use crate::{Error, Result};

#[derive(clap::Parser, Debug)]
#[command(
    name = "happy-istio settings",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub(super) struct Vars {
    /// Where to run: KinD (nightly target), k3s in a container, the current kubeconfig context,
    /// the in-process sandbox; auto = kind when a Docker daemon answers, else sandbox (announced
    /// in the output and report)
    #[arg(
        long,
        env = "HAPPY_CLUSTER",
        value_enum,
        ignore_case = true,
        default_value_t = ClusterChoice::Auto
    )]
    pub(super) cluster: ClusterChoice,

    #[arg(
        long,
        env = "ISTIO_VERSION",
        value_parser = istio_version,
        value_name = "unset | latest | dev | 1.31.1 | 1.31.0-rc.0 | 1.32.0-alpha.<sha> | \
                      1.30-alpha.<sha>",
        help = format!(
            "Istio to install and take istioctl and samples/addons from. latest = the newest \
             stable release on GitHub, judged by its tag (drafts and -alpha/-beta/-rc tags \
             skipped); dev = the newest dev build, named by the dev bucket's latest pointer \
             (blob.istio.io, else storage.googleapis.com). A release (MAJOR.MINOR.PATCH[-pre]) \
             is downloaded from GitHub; a dev build (MAJOR.MINOR.0-alpha.<40-hex commit>, or \
             MAJOR.MINOR-alpha.<commit> for builds before April 2026) from the dev bucket, \
             blob.istio.io first [default: {}]",
            crate::istio::releases::PINNED_DEFAULT
        )
    )]
    pub(super) istio_version: Option<IstioVersionRequest>,

    /// Where Istio's images (<hub>/pilot, <hub>/proxyv2) come from: istioctl install gets --set
    /// hub=<hub>, the sandbox's install names it. Unset, a release installs from docker.io/istio,
    /// where every release is published (whatever hub its istioctl has built in: 1.30's is
    /// registry.istio.io/release, being decommissioned), and a dev build from the hub built into
    /// it (registry.istio.io/testing, also being decommissioned). Every report states the hub
    /// (run.json istio_hub) [default: docker.io/istio for releases; a dev build's own]
    #[arg(
        long,
        env = crate::istio::hub::HUB_VAR,
        value_parser = crate::istio::hub::parse_hub,
        value_name = "unset | a hub, e.g. docker.io/istio or localhost:5000/istio"
    )]
    pub(super) istio_hub: Option<String>,

    /// Sent, only to api.github.com, when ISTIO_VERSION=latest (and by
    /// ci/resolve-istio-versions) reads GitHub's release list, to lift the anonymous rate limit;
    /// nothing else calls GitHub's API (dev and explicit versions are plain downloads)
    // Read from the process environment by `crate::istio::releases`; here for the table, the
    // known names and `Settings::explicit`.
    #[arg(
        long = "github-token",
        env = "GITHUB_TOKEN",
        value_name = "unset | a GitHub token",
        hide_env_values = true
    )]
    _github_token: Option<String>,

    /// 1 = reuse an existing kind cluster of that name (its node image stays as it was
    /// created); Istio is kept when it runs the wanted version, otherwise the wanted version is
    /// installed over it
    #[arg(
        long,
        env = "HAPPY_REUSE",
        action = ArgAction::Set,
        value_parser = PossibleValuesParser::new(["0", "1"]).map(|v| v == "1"),
        default_value = "0"
    )]
    pub(super) reuse: bool,

    /// Keep the kind cluster the suite created after the run: never, always, or when a scenario
    /// failed (its kubeconfig is in the cache; the `export KUBECONFIG=…` line is printed). kind
    /// only: a k3s container is always removed, which a k3s run with it set says
    #[arg(
        long,
        env = "HAPPY_KEEP",
        value_enum,
        ignore_case = true,
        default_value_t = KeepPolicy::Never
    )]
    pub(super) keep: KeepPolicy,

    /// The workshop's YAML files [default: manifests/ of the crate]
    #[arg(long, env = "HAPPY_MANIFESTS", value_name = "a directory", value_parser = directory)]
    pub(super) manifests: Option<PathBuf>,

    /// Downloads (Istio release archives with istioctl, kind), checksum verified
    /// [default: <user cache dir>/happy-istio]
    #[arg(long, env = "HAPPY_CACHE_DIR", value_name = "a directory")]
    pub(super) cache_dir: Option<PathBuf>,

    /// JUnit XML, Cucumber JSON and diagnostics bundles [default: target/happy]
    #[arg(long, env = "HAPPY_REPORT_DIR", value_name = "a directory")]
    pub(super) report_dir: Option<PathBuf>,

    /// Name of the kind cluster to create or reuse
    #[arg(
        long,
        env = "HAPPY_KIND_CLUSTER",
        value_name = "a kind cluster name",
        value_parser = kind_name,
        default_value = DEFAULT_KIND_CLUSTER
    )]
    pub(super) kind_cluster: String,

    /// Switch deviations off: run the workshop's text as written where the suite departs from it
    /// (see Deviations from the workshop) [default: unset (every deviation on)]
    #[arg(
        long,
        env = crate::deviations::VERBATIM_VAR,
        value_parser = deviation_ids,
        value_name = "all | deviation ids, comma-separated (D-legacy-image, D-istio-version, \
                      D-ingress-address, D-capture-command)"
    )]
    pub(super) verbatim: Option<DeviationIds>,

    #[arg(
        long,
        env = "HAPPY_LEGACY_IMAGE",
        value_name = "an image reference",
        help = format!(
            "Image of the legacy client pod (C18, C19, C22; deviation D-legacy-image); \
             radial/busyboxplus:curl = the workshop's pod as written (fails to pull on \
             containerd ≥ 2.1), any other image runs with command /bin/sleep infinity \
             [default: {}]",
            crate::deviations::SUITE_LEGACY_IMAGE
        )
    )]
    pub(super) legacy_image: Option<String>,

    /// Use this kind instead of the pinned release (downloaded into the cache, sha256 verified);
    /// its `kind version` is checked and a different version is warned about
    /// [default: the pinned kind, downloaded]
    #[arg(
        long,
        env = "HAPPY_KIND_BINARY",
        value_name = "a path, or a name on PATH",
        value_parser = resolve_binary
    )]
    pub(super) kind_binary: Option<PathBuf>,

    /// The kind node image, i.e. the Kubernetes version, passed as `kind create cluster
    /// --image`; a Kubernetes outside the Istio minor's supported window is refused
    #[arg(
        long,
        env = "HAPPY_KIND_NODE_IMAGE",
        value_name = "a kind node image",
        value_parser = node_image,
        default_value = crate::kind_pins::KIND_NODE_IMAGE
    )]
    pub(super) kind_node_image: String,

    /// Registry credentials for the kind node: the file is mounted read-only at
    /// /var/lib/kubelet/config.json, where the kubelet reads the credentials it pulls with (kind
    /// docs, private-registries.md); it must hold them in "auths" (a credsStore/credHelpers
    /// reference is refused: the node cannot call the host's helper). See Docker Hub login
    /// [default: unset (the node pulls anonymously)]
    // Checked (exists, JSON, plain credentials) by preflight and again before kind runs, where
    // a bad file is a problem with its fix rather than a setting error.
    #[arg(
        long,
        env = "HAPPY_KIND_REGISTRY_AUTH",
        value_name = "unset | a path to a Docker config.json"
    )]
    pub(super) kind_registry_auth: Option<PathBuf>,

    /// Map this port on 127.0.0.1 to the ingress gateway (NodePort 30080), for reading a kept
    /// cluster in a browser; checked free before the cluster is created
    #[arg(
        long,
        env = "HAPPY_KIND_HOST_PORT",
        value_name = "unset | 1-65535",
        value_parser = port
    )]
    pub(super) kind_host_port: Option<u16>,

    /// What a failed preflight check does to a kind or k3s run: stop before anything is
    /// created, or report and go on
    #[arg(
        long,
        env = "HAPPY_PREFLIGHT",
        value_enum,
        ignore_case = true,
        default_value_t = PreflightMode::Strict
    )]
    pub(super) preflight: PreflightMode,

    /// on = the run ends by writing its living documentation page (the matrix and chapter
    /// pages, see Living documentation) to site/index.html in the report directory and printing
    /// its path; off = it does not (the suite's own child runs set it)
    // `PossibleValuesParser` honours `ignore_case` but returns the value as written
    // (clap_builder 4.6.7 src/builder/value_parser.rs `impl TypedValueParser for
    // PossibleValuesParser`), hence the lower-casing.
    #[arg(
        long,
        env = "HAPPY_DOCS",
        action = ArgAction::Set,
        value_parser = PossibleValuesParser::new(["on", "off"]).map(|v| v.to_lowercase() == "on"),
        ignore_case = true,
        default_value = "on"
    )]
    pub(super) docs: bool,
}

/// The ids `HAPPY_VERBATIM` switches off (a newtype: clap reads a `Vec` field as many values).
#[derive(Debug, Clone)]
pub(super) struct DeviationIds(pub(super) Vec<String>);

/// The definition as a built clap `Command`, for introspection (built once: `build()` settles
/// each argument as parsing will, so an argument displays as in clap's errors).
pub(super) fn definition() -> &'static Command {
    static DEFINITION: LazyLock<Command> = LazyLock::new(|| {
        let mut command = Vars::command();
        command.build();
        command
    });
    &DEFINITION
}

/// The variable an argument is read from.
pub(super) fn variable(arg: &Arg) -> Option<&str> {
    arg.get_env()?.to_str()
}

/// Parses the variables `lookup` gives; also returns the names of those set (non-blank), in
/// the definition's order.
pub(super) fn parse(lookup: impl Fn(&str) -> Option<String>) -> Result<(Vars, Vec<&'static str>)> {
    // Each non-blank variable becomes `--long=value` (the `=` keeps a value starting with `-` a
    // value); a blank one is left out, i.e. unset.
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut argv: Vec<String> = Vec::new();
    for arg in definition().get_arguments() {
        let (Some(name), Some(long)) = (variable(arg), arg.get_long()) else {
            continue;
        };
        let Some(value) = lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        argv.push(format!("--{long}={value}"));
        given.push((name, value));
    }
    // Clap itself reads each `env` variable from the process when the argument is built and
    // hands an empty value to the value parser as it is (clap_builder 4.6.7
    // src/builder/arg.rs `Arg::env`: `let value = env::var_os(&name)`; src/parser/parser.rs
    // `add_env` reacts to any `Some(val)`). The values come from `lookup` instead, blank ones
    // dropped above, so the command that parses has no `env` names left to read.
    let command = definition().clone().mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(&argv)
        .map_err(|e| setting_error(&e, &given))?;
    let vars = Vars::from_arg_matches(&matches).map_err(|e| setting_error(&e, &given))?;
    Ok((vars, given.into_iter().map(|(name, _)| name).collect()))
}

/// A clap error as the setting error it is: the variable (not the `--flag`), its value as
/// given and why it is refused.
fn setting_error(err: &clap::Error, given: &[(&'static str, String)]) -> Error {
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    // Clap names the argument by its display, `--long <VALUE>` (clap_builder 4.6.7
    // src/builder/value_parser.rs passes `arg.to_string()` as `ContextKind::InvalidArg`).
    let var = context(ContextKind::InvalidArg).and_then(|shown| {
        definition()
            .get_arguments()
            .find(|arg| arg.to_string() == shown)
            .and_then(variable)
    });
    let Some(var) = var else {
        return Error::Other(format!("the settings could not be read: {err}"));
    };
    let value = given
        .iter()
        .find(|(name, _)| *name == var)
        .map(|(_, value)| value.as_str())
        .or(context(ContextKind::InvalidValue))
        .unwrap_or_default();
    let reason = match (err.kind(), err.get(ContextKind::ValidValue)) {
        (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => {
            let mut reason = format!("expected {}", or_list(valid));
            if let Some(suggested) = context(ContextKind::SuggestedValue) {
                reason.push_str(&format!("; did you mean {suggested}?"));
            }
            reason
        }
        // A value parser's own error (the functions below) is the error's source.
        _ => std::error::Error::source(err)
            .map_or_else(|| err.kind().to_string(), ToString::to_string),
    };
    Error::InvalidSetting {
        var: var.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn istio_version(value: &str) -> std::result::Result<IstioVersionRequest, String> {
    if value.eq_ignore_ascii_case("latest") {
        return Ok(IstioVersionRequest::Latest);
    }
    if value.eq_ignore_ascii_case("dev") {
        return Ok(IstioVersionRequest::LatestDev);
    }
    value
        .parse()
        .map(IstioVersionRequest::Exact)
        .map_err(|e: Error| {
            format!("{e}; or use latest, dev, or leave it unset for the pinned release")
        })
}

fn directory(value: &str) -> std::result::Result<PathBuf, String> {
    let dir = PathBuf::from(value);
    if !dir.is_dir() {
        return Err("not a directory".into());
    }
    Ok(dir)
}

fn kind_name(value: &str) -> std::result::Result<String, String> {
    super::validate_kind_name(value)?;
    Ok(value.to_string())
}

/// `all` is every deviation that can be switched off; the others stay on and the run's banner
/// says so.
fn deviation_ids(value: &str) -> std::result::Result<DeviationIds, String> {
    use crate::deviations::{DEVIATIONS, find, ids};
    if value.eq_ignore_ascii_case("all") {
        let all = DEVIATIONS.iter().filter(|d| d.switchable);
        return Ok(DeviationIds(all.map(|d| d.id.to_string()).collect()));
    }
    let wanted = value.split(',').map(str::trim).filter(|id| !id.is_empty());
    wanted
        .map(|id| match find(id) {
            Some(d) if !d.switchable => Err(format!("{} {}", d.id, d.switch_off)),
            Some(d) => Ok(d.id.to_string()),
            None => Err(format!(
                "no deviation {id:?}; expected all or ids among {}",
                ids().join(", ")
            )),
        })
        .collect::<std::result::Result<_, _>>()
        .map(DeviationIds)
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

fn node_image(value: &str) -> std::result::Result<String, String> {
    if crate::istio::support_window::parse_kube_minor(value).is_none() {
        return Err(
            "expected a kind node image tagged with its Kubernetes version, e.g. \
                    kindest/node:v1.35.8@sha256:<digest>"
                .into(),
        );
    }
    Ok(value.to_string())
}

fn port(value: &str) -> std::result::Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("expected a port number from 1 to 65535".into()),
    }
}
