//! Which container engine kind will use, and does it answer? kind and k3s (testcontainers)
//! need one; `auto` picks the sandbox without.
//!
//! kind runs the `docker` CLI with this process's environment (kind v0.32.0
//! `pkg/cluster/internal/providers/docker/*.go` `exec.Command("docker", …)`, `pkg/exec/local.go`
//! sets no environment of its own), so the endpoint is the one that CLI names: `docker context
//! inspect` of its current context, asked with the same `DOCKER_*` variables. The CLI's rule
//! (docker/cli v29.7.2 `cli/command/cli.go` `resolveContextName`, `getServerHost`): a non-empty
//! `DOCKER_HOST` selects the `default` context, whose endpoint is `DOCKER_HOST` itself, over
//! `DOCKER_CONTEXT` and over `currentContext` in `config.json`; with none of them the `default`
//! context is `unix:///var/run/docker.sock` (`opts/hosts.go` `ParseHost`). When that built-in
//! default answers nothing, the well-known sockets of Docker Desktop, colima, Rancher Desktop,
//! OrbStack, rootless Docker and podman are tried, and kind is then run with `DOCKER_HOST` set
//! to the one that answered. `KIND_EXPERIMENTAL_PROVIDER` picks podman or nerdctl instead (kind
//! v0.31.0 … v0.33.0 `pkg/internal/runtime/runtime.go`); those are checked through their own CLI.
//!
//! Unix and plain TCP endpoints are pinged (`/_ping`, through bollard) with a short limit, so a
//! missing daemon costs at most that limit; TLS and ssh endpoints are asked through `docker
//! info`, which knows the context's certificates and ssh set-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{Cmd, which};

/// How long the check waits for a daemon to answer.
pub(crate) const PING_LIMIT: Duration = Duration::from_secs(3);

/// The Docker CLI's default endpoint on Unix (docker/cli v29.7.2 `opts/hosts.go`).
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where a Docker daemon listens, as this check reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DockerEndpoint {
    /// A Unix socket, pinged.
    Unix(PathBuf),
    /// `host:port` over plain TCP, pinged.
    Tcp(String),
    /// TLS (`DOCKER_TLS_VERIFY`, port 2376, a context with TLS material), ssh://, …: the
    /// endpoint as written, asked through `docker info`.
    ViaCli(String),
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
            DockerEndpoint::ViaCli(host) => f.write_str(host),
        }
    }
}

/// Parses a `DOCKER_HOST` value; `tls` marks a TCP endpoint that needs TLS, as does port 2376,
/// the daemon's TLS port by convention (Docker's "Protect the Docker daemon socket" guide).
fn parse_docker_host(host: &str, tls: bool) -> DockerEndpoint {
    let host = host.trim_end_matches('/');
    match (host.strip_prefix("unix://"), host.strip_prefix("tcp://")) {
        (Some(path), _) => DockerEndpoint::Unix(PathBuf::from(path)),
        (_, Some(addr)) if !tls && !addr.ends_with(":2376") => DockerEndpoint::Tcp(addr.into()),
        _ => DockerEndpoint::ViaCli(host.into()),
    }
}

/// The environment the check reads (tests pass their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineEnv {
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `DOCKER_CONTEXT`.
    pub docker_context: Option<String>,
    /// `DOCKER_CONFIG` (the CLI's config directory; default `~/.docker`).
    pub docker_config: Option<PathBuf>,
    /// `DOCKER_TLS_VERIFY` is set to a non-empty value.
    pub docker_tls_verify: bool,
    /// `KIND_EXPERIMENTAL_PROVIDER`.
    pub kind_provider: Option<String>,
    /// The home directory.
    pub home: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// The `docker` CLI kind will run (`docker` on `PATH`).
    pub docker_cli: Option<PathBuf>,
}

impl EngineEnv {
    /// The process environment.
    pub fn from_process() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Self {
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            docker_config: var("DOCKER_CONFIG").map(PathBuf::from),
            docker_tls_verify: var("DOCKER_TLS_VERIFY").is_some(),
            kind_provider: var("KIND_EXPERIMENTAL_PROVIDER"),
            home: dirs::home_dir(),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            docker_cli: which("docker"),
        }
    }

    /// `docker ARGS` with exactly this environment's `DOCKER_*` variables. An empty value is
    /// the CLI's "unset" for each (docker/cli v29.7.2 `cli/command/cli.go` `resolveContextName`,
    /// `opts/hosts.go` `ParseHost`, `cli/config/config.go` `Dir`, `cli/flags/options.go`).
    fn docker(&self, cli: &Path, limit: Duration, args: &[&str]) -> Cmd {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("DOCKER_HOST", self.docker_host.clone()),
            ("DOCKER_CONTEXT", self.docker_context.clone()),
            ("DOCKER_CONFIG", path(&self.docker_config)),
            (
                "DOCKER_TLS_VERIFY",
                self.docker_tls_verify.then(|| "1".into()),
            ),
        ]
        .into_iter()
        .fold(Cmd::new(cli, limit).args(args), |cmd, (name, value)| {
            cmd.env(name, value.unwrap_or_default())
        })
    }
}

/// The node provider kind uses (kind v0.31.0 … v0.33.0 `pkg/internal/runtime/runtime.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// The `docker` CLI (kind's default).
    Docker,
    /// `podman`.
    Podman,
    /// `nerdctl`, `finch` or `nerdctl.lima`: the CLI binary's name.
    Nerdctl(String),
}

impl Provider {
    /// The CLI kind runs for this provider.
    pub fn cli(&self) -> &str {
        match self {
            Provider::Docker => "docker",
            Provider::Podman => "podman",
            Provider::Nerdctl(name) => name,
        }
    }
}

/// The provider `KIND_EXPERIMENTAL_PROVIDER` selects, and a warning for a value kind ignores.
pub fn provider(env: &EngineEnv) -> (Provider, Option<String>) {
    match env.kind_provider.as_deref() {
        None | Some("docker") => (Provider::Docker, None),
        Some("podman") => (Provider::Podman, None),
        Some(name @ ("nerdctl" | "finch" | "nerdctl.lima")) => {
            (Provider::Nerdctl(name.to_string()), None)
        }
        Some(other) => (
            Provider::Docker,
            Some(format!(
                "KIND_EXPERIMENTAL_PROVIDER={other:?} is not a value kind knows (docker, podman, nerdctl, finch, nerdctl.lima); kind ignores it and auto-detects, docker first"
            )),
        ),
    }
}

/// Well-known sockets of the common engines, in the order they are tried, each with whose it
/// is. The default socket is not among them: it is the CLI's own default.
fn well_known_sockets(env: &EngineEnv) -> Vec<(PathBuf, &'static str)> {
    let mut list = Vec::new();
    if let Some(home) = &env.home {
        // Docker Desktop for Linux binds no /var/run/docker.sock; its `desktop-linux` context
        // points here (docker/docs#23308, docker/desktop-linux#23).
        list.push((
            home.join(".docker/desktop/docker.sock"),
            "Docker Desktop for Linux",
        ));
        // Docker Desktop for Mac's per-user socket (docker/for-mac#6529).
        list.push((
            home.join(".docker/run/docker.sock"),
            "Docker Desktop (macOS)",
        ));
        // colima's default profile; the `colima` context it creates points here.
        list.push((home.join(".colima/default/docker.sock"), "colima"));
        // Rancher Desktop without administrative access.
        list.push((home.join(".rd/docker.sock"), "Rancher Desktop"));
        list.push((home.join(".orbstack/run/docker.sock"), "OrbStack"));
    }
    if let Some(run) = &env.xdg_runtime_dir {
        // Rootless Docker: "The socket path is set to $XDG_RUNTIME_DIR/docker.sock by default"
        // (docs.docker.com/engine/security/rootless/tips).
        list.push((run.join("docker.sock"), "rootless Docker"));
        // testcontainers-rs 0.27 also looks here.
        list.push((
            run.join(".docker/run/docker.sock"),
            "rootless Docker Desktop",
        ));
        // Rootless podman's API socket (`systemctl --user enable --now podman.socket`).
        list.push((run.join("podman/podman.sock"), "podman (rootless)"));
    }
    list.push((PathBuf::from("/run/podman/podman.sock"), "podman (rootful)"));
    if let Some(home) = &env.home {
        list.push((
            home.join(".local/share/containers/podman/machine/podman.sock"),
            "podman machine (macOS)",
        ));
    }
    list
}

/// The endpoint the `docker` CLI will use, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CliChoice {
    endpoint: DockerEndpoint,
    origin: String,
    /// The CLI's built-in default (no `DOCKER_HOST`, no context): a well-known socket may
    /// stand in for it.
    is_default: bool,
}

/// Asks the `docker` CLI which endpoint it will use. Without the CLI, `DOCKER_HOST` is still
/// what it would use, and otherwise its default.
async fn cli_choice(env: &EngineEnv, limit: Duration) -> Result<CliChoice, String> {
    let Some(cli) = &env.docker_cli else {
        return Ok(match &env.docker_host {
            Some(host) => CliChoice {
                endpoint: parse_docker_host(host, env.docker_tls_verify),
                origin: "DOCKER_HOST".into(),
                is_default: false,
            },
            None => CliChoice {
                endpoint: DockerEndpoint::Unix(DEFAULT_SOCKET.into()),
                origin: "the default socket (no `docker` CLI on PATH to name a context)".into(),
                is_default: true,
            },
        });
    };
    let out = env
        .docker(
            cli,
            limit,
            &["context", "inspect", "--format", "{{json .}}"],
        )
        .run()
        .await
        .map_err(|e| format!("{e}; switch with `docker context use default` or set DOCKER_HOST"))?;
    let read = |text: &str| -> Option<(String, String, bool)> {
        let value: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
        let docker = &value["Endpoints"]["docker"];
        let host = docker["Host"].as_str().filter(|h| !h.is_empty())?;
        // TLS files listed, or SkipTLSVerify, make the CLI speak TLS (docker/cli v29.7.2
        // `cli/context/docker/load.go` `tlsConfig`).
        let tls = value["TLSMaterial"]["docker"]
            .as_array()
            .is_some_and(|files| !files.is_empty())
            || docker["SkipTLSVerify"].as_bool() == Some(true);
        Some((value["Name"].as_str()?.to_string(), host.to_string(), tls))
    };
    let (name, host, tls) = read(&out.stdout).ok_or_else(|| {
        format!(
            "`docker context inspect` printed no context with an Endpoints.docker.Host: {:?}",
            out.stdout.trim()
        )
    })?;
    let origin = match (&env.docker_host, &env.docker_context) {
        (Some(_), _) => "DOCKER_HOST".to_string(),
        _ if name == "default" => "the Docker CLI's default context".to_string(),
        (None, Some(_)) => format!("Docker context {name:?} (DOCKER_CONTEXT)"),
        (None, None) => format!("Docker context {name:?} (the CLI's current context)"),
    };
    Ok(CliChoice {
        endpoint: parse_docker_host(&host, tls),
        is_default: name == "default" && env.docker_host.is_none(),
        origin,
    })
}

/// The engine found, and how kind must be run to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFound {
    /// The provider kind will use.
    pub provider: Provider,
    /// The endpoint that answered (Docker provider), or the CLI that did (others).
    pub endpoint: String,
    /// How it was found.
    pub origin: String,
    /// `DOCKER_HOST` to give kind's process, when the answer came from a well-known socket the
    /// CLI would not use by itself.
    pub docker_host_for_kind: Option<String>,
}

impl std::fmt::Display for EngineFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.endpoint, self.origin)
    }
}

/// Finds the engine kind will use and checks that it answers. `Err` says what was tried, why
/// each failed, and what to do.
pub(crate) async fn find_engine(env: &EngineEnv, limit: Duration) -> Result<EngineFound, String> {
    let (provider, _) = provider(env);
    if provider != Provider::Docker {
        return other_engine(provider, limit).await;
    }
    let choice = cli_choice(env, limit).await?;
    let found = |endpoint: &DockerEndpoint, origin: String, docker_host_for_kind| EngineFound {
        provider: Provider::Docker,
        endpoint: endpoint.to_string(),
        origin,
        docker_host_for_kind,
    };
    let mut failures = match ask(env, &choice.endpoint, limit).await {
        Ok(()) => return Ok(found(&choice.endpoint, choice.origin, None)),
        Err(reason) => vec![format!(
            "{} from {}: {reason}",
            choice.endpoint, choice.origin
        )],
    };
    let fallbacks: Vec<(DockerEndpoint, &str)> = well_known_sockets(env)
        .into_iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, whose)| (DockerEndpoint::Unix(path), whose))
        .filter(|(endpoint, _)| *endpoint != choice.endpoint)
        .collect();
    if choice.is_default {
        for (endpoint, whose) in &fallbacks {
            let origin = format!("the well-known socket of {whose}");
            match ask(env, endpoint, limit).await {
                Ok(()) => {
                    let why = format!("{origin}; kind is run with DOCKER_HOST={endpoint}");
                    return Ok(found(endpoint, why, Some(endpoint.to_string())));
                }
                Err(reason) => failures.push(format!("{endpoint} ({origin}): {reason}")),
            }
        }
    } else if !fallbacks.is_empty() {
        // The user chose an endpoint; the CLI (and kind) will not look elsewhere.
        let list: Vec<String> = fallbacks.iter().map(|(e, _)| e.to_string()).collect();
        failures.push(format!(
            "not tried, because {} names the endpoint: {}",
            choice.origin,
            list.join(", ")
        ));
    }
    Err(format!(
        "no Docker daemon answered ({})",
        failures.join("; ")
    ))
}

/// podman or nerdctl: `info` needs the engine (podman machine, nerdctl's containerd), not
/// only the CLI.
async fn other_engine(provider: Provider, limit: Duration) -> Result<EngineFound, String> {
    let cli = provider.cli().to_string();
    let Some(bin) = which(&cli) else {
        return Err(format!(
            "KIND_EXPERIMENTAL_PROVIDER selects {cli}, but `{cli}` is not on PATH; install it or unset KIND_EXPERIMENTAL_PROVIDER"
        ));
    };
    match Cmd::new(&bin, limit.max(Duration::from_secs(10)))
        .arg("info")
        .run()
        .await
    {
        Ok(_) => Ok(EngineFound {
            provider,
            endpoint: bin.display().to_string(),
            origin: format!("`{cli} info` answered (KIND_EXPERIMENTAL_PROVIDER)"),
            docker_host_for_kind: None,
        }),
        Err(e) => Err(format!(
            "`{cli} info` failed ({e}); start {cli} (podman on macOS: `podman machine start`)"
        )),
    }
}

/// Asks one endpoint: `/_ping` where bollard speaks it, else `docker info` with the same
/// environment (the CLI then reaches the endpoint with its own TLS or ssh set-up).
async fn ask(env: &EngineEnv, endpoint: &DockerEndpoint, limit: Duration) -> Result<(), String> {
    let DockerEndpoint::ViaCli(host) = endpoint else {
        return ping(endpoint, limit).await;
    };
    let what = format!("{host} is not a plain unix:// or tcp:// endpoint (TLS, ssh)");
    let Some(cli) = &env.docker_cli else {
        return Err(format!(
            "{what}, and there is no `docker` CLI on PATH to ask instead"
        ));
    };
    // An ssh endpoint first opens an ssh session, hence more time than a ping.
    env.docker(
        cli,
        limit.max(Duration::from_secs(10)),
        &["info", "--format", "{{.ServerVersion}}"],
    )
    .run()
    .await
    .map(drop)
    .map_err(|e| format!("{what}; `docker info`, asked instead, failed: {e}"))
}

/// One `/_ping` (bollard), bounded by `limit`; only a 200 counts.
async fn ping(endpoint: &DockerEndpoint, limit: Duration) -> Result<(), String> {
    use bollard::{API_DEFAULT_VERSION, Docker};
    let secs = limit.as_secs().max(1);
    let client = match endpoint {
        #[cfg(unix)]
        DockerEndpoint::Unix(path) => {
            Docker::connect_with_unix(&path.display().to_string(), secs, API_DEFAULT_VERSION)
        }
        DockerEndpoint::Tcp(addr) => Docker::connect_with_http(addr, secs, API_DEFAULT_VERSION),
        other => {
            return Err(format!(
                "{other}: only unix:// and plain tcp:// are pinged here"
            ));
        }
    }
    .map_err(|e| format!("cannot connect: {e}"))?;
    match tokio::time::timeout(limit, client.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Finds the engine from the process environment, for `auto`, which then runs kind: without
/// the `docker` CLI that kind drives, no daemon is of use to it.
pub(crate) async fn docker_available() -> Result<EngineFound, String> {
    let env = EngineEnv::from_process();
    usable_by_kind(&env)?;
    find_engine(&env, PING_LIMIT).await
}

/// `Err` when kind's provider is Docker and there is no `docker` CLI.
fn usable_by_kind(env: &EngineEnv) -> Result<(), String> {
    match (provider(env).0, &env.docker_cli) {
        (Provider::Docker, None) => Err("there is no `docker` CLI on PATH, and kind drives that \
             CLI: install it (Docker Desktop, colima and OrbStack bring one)"
            .into()),
        _ => Ok(()),
    }
}

/// Where testcontainers-rs 0.27 (k3s) goes: DOCKER_HOST, else the first of its sockets that
/// exists, else the default (testcontainers-0.27.3 `src/core/env/config.rs` `docker_host`).
/// It reads no Docker context.
fn testcontainers_endpoint(env: &EngineEnv) -> DockerEndpoint {
    if let Some(host) = &env.docker_host {
        return parse_docker_host(host, env.docker_tls_verify);
    }
    let mut list = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Some(run) = &env.xdg_runtime_dir {
        list.push(run.join(".docker/run/docker.sock"));
    }
    if let Some(home) = &env.home {
        list.push(home.join(".docker/run/docker.sock"));
        list.push(home.join(".docker/desktop/docker.sock"));
    }
    let first = list.iter().find(|p| p.exists()).cloned();
    DockerEndpoint::Unix(first.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)))
}

/// For k3s: a problem when testcontainers would talk to another endpoint than the one that
/// answered (it reads no Docker context and only some of the well-known sockets).
pub(crate) fn testcontainers_mismatch(env: &EngineEnv, found: &EngineFound) -> Option<String> {
    if found.provider != Provider::Docker {
        return Some(format!(
            "k3s runs through testcontainers, which needs a Docker API socket; KIND_EXPERIMENTAL_PROVIDER={} does not apply to it. Fix: set DOCKER_HOST to the engine's Docker-compatible socket (rootless podman: unix://$XDG_RUNTIME_DIR/podman/podman.sock)",
            found.provider.cli()
        ));
    }
    let theirs = testcontainers_endpoint(env);
    let ours = parse_docker_host(&found.endpoint, false);
    (!same_endpoint(&theirs, &ours)).then(|| {
        format!(
            "the daemon answers at {} ({}), but testcontainers (k3s) would use {theirs}: it reads no Docker context. Fix: export DOCKER_HOST={}",
            found.endpoint, found.origin, found.endpoint
        )
    })
}

/// Whether two endpoints reach the same daemon: Unix sockets are compared after resolving
/// symlinks, because `/var/run/docker.sock`, which testcontainers tries first, is often a
/// symlink to the socket the CLI context names: Docker Desktop for Mac makes it one to
/// `~/.docker/run/docker.sock` with "Allow the default Docker socket to be used" (Settings →
/// Advanced; docs.docker.com/desktop/mac/permission-requirements, docker/for-mac#6529), and
/// OrbStack, when allowed to "improve Docker socket compatibility" (orbstack/orbstack#281;
/// `ls -l /var/run/docker.sock` in orgs/orbstack discussion #225 shows the link), to
/// `~/.orbstack/run/docker.sock`. A path that cannot be resolved is compared as written.
fn same_endpoint(a: &DockerEndpoint, b: &DockerEndpoint) -> bool {
    match (a, b) {
        (DockerEndpoint::Unix(x), DockerEndpoint::Unix(y)) => {
            let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            resolve(x) == resolve(y)
        }
        _ => a.to_string() == b.to_string(),
    }
}

/// Test support shared by the tests of the engine check and of preflight.
#[cfg(all(test, unix))]
pub(crate) mod test_support;

#[cfg(all(test, unix))]
mod tests;
