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
pub const PING_LIMIT: Duration = Duration::from_secs(3);

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
pub async fn find_engine(env: &EngineEnv, limit: Duration) -> Result<EngineFound, String> {
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
pub async fn docker_available() -> Result<EngineFound, String> {
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
pub fn testcontainers_mismatch(env: &EngineEnv, found: &EngineFound) -> Option<String> {
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
pub(crate) mod test_support {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// A socket answering every request with a 200 like a Docker daemon, until the test ends.
    pub(crate) fn fake_daemon(path: &std::path::Path) -> tokio::task::JoinHandle<()> {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                answer(socket, "200 OK").await;
            }
        })
    }

    /// Reads one request, answers it with `status`, returns its request line.
    pub(crate) async fn answer(
        mut io: impl AsyncRead + AsyncWrite + Unpin,
        status: &str,
    ) -> String {
        let mut buf = [0u8; 1024];
        let n = io.read(&mut buf).await.unwrap_or(0);
        let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nOK");
        let _ = io.write_all(reply.as_bytes()).await;
        let request = String::from_utf8_lossy(&buf[..n]);
        request.lines().next().unwrap_or_default().to_string()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use super::test_support::{answer, fake_daemon};
    use super::*;

    /// The fake CLI's `context inspect`: the current context as docker/cli v29.7.2 picks it
    /// (`resolveContextName`: a non-empty DOCKER_HOST, then DOCKER_CONTEXT, then the config's
    /// current context, else `default`), printed as the real CLI (28.2.2) prints
    /// `--format '{{json .}}'`. A context is a file `ctx/<name>` holding its host, `<name>.tls`
    /// marks its TLS material, `current` is `currentContext`, `default-host` stands in for
    /// `/var/run/docker.sock`; all under `$DOCKER_CONFIG`.
    const INSPECT: &str = r#"c=$DOCKER_CONFIG; name=default; host=unix:///var/run/docker.sock
      [ -f "$c/default-host" ] && host=$(cat "$c/default-host")
      if [ -n "$DOCKER_HOST" ]; then host=$DOCKER_HOST
      else
        if [ -n "$DOCKER_CONTEXT" ]; then name=$DOCKER_CONTEXT
        elif [ -f "$c/current" ]; then name=$(cat "$c/current"); fi
        if [ "$name" != default ]; then
          [ -f "$c/ctx/$name" ] || { echo "context \"$name\": context not found: open $c/contexts/meta/x/meta.json: no such file or directory" >&2; exit 1; }
          host=$(cat "$c/ctx/$name")
        fi
      fi
      tls=; [ -f "$c/ctx/$name.tls" ] && tls='"docker":["ca.pem","cert.pem","key.pem"]'
      printf '{"Name":"%s","Endpoints":{"docker":{"Host":"%s","SkipTLSVerify":false}},"TLSMaterial":{%s}}\n' "$name" "$host" "$tls""#;

    /// A fake home: the well-known sockets live under it, `run/` is `XDG_RUNTIME_DIR`,
    /// `.docker` is `DOCKER_CONFIG`, and `bin/docker` is a fake CLI that logs each call's
    /// arguments and DOCKER_* variables to `.docker/calls`.
    struct Home(tempfile::TempDir);

    impl Home {
        /// The fake CLI runs the shell `context` for `docker context …`, `info` for `docker info`.
        fn new(context: &str, info: &str) -> Self {
            let home = Self(tempfile::tempdir().unwrap());
            let script = format!(
                "#!/bin/sh\necho \"$*|$DOCKER_HOST|$DOCKER_CONTEXT|$DOCKER_TLS_VERIFY\" >> \"$DOCKER_CONFIG/calls\"\n\
                 case \"$1\" in\ncontext) {context} ;;\ninfo) {info} ;;\nesac\n"
            );
            home.write("bin/docker", &script);
            std::fs::create_dir(home.path(".docker")).unwrap();
            let mode = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(home.path("bin/docker"), mode).unwrap();
            home
        }
        /// A CLI that resolves as the real one and must not be asked `docker info`.
        fn emulating() -> Self {
            Self::new(INSPECT, "echo 'docker info must not be asked' >&2; exit 1")
        }
        fn path(&self, relative: &str) -> PathBuf {
            self.0.path().join(relative)
        }
        fn env(&self) -> EngineEnv {
            EngineEnv {
                home: Some(self.path("")),
                xdg_runtime_dir: Some(self.path("run")),
                docker_config: Some(self.path(".docker")),
                docker_cli: Some(self.path("bin/docker")),
                ..EngineEnv::default()
            }
        }
        fn write(&self, relative: &str, text: &str) {
            std::fs::create_dir_all(self.path(relative).parent().unwrap()).unwrap();
            std::fs::write(self.path(relative), text).unwrap();
        }
        fn calls(&self) -> String {
            std::fs::read_to_string(self.path(".docker/calls")).unwrap_or_default()
        }
    }

    fn unix(path: &Path) -> String {
        format!("unix://{}", path.display())
    }

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn docker_host_parsing() {
        use DockerEndpoint::*;
        let cases = [
            (
                "unix:///run/docker.sock",
                false,
                Unix("/run/docker.sock".into()),
            ),
            ("tcp://127.0.0.1:2375", false, Tcp("127.0.0.1:2375".into())),
            ("tcp://h:2375", true, ViaCli("tcp://h:2375".into())),
            ("tcp://h:2376/", false, ViaCli("tcp://h:2376".into())),
            ("ssh://me@host", false, ViaCli("ssh://me@host".into())),
        ];
        for (host, tls, endpoint) in cases {
            assert_eq!(parse_docker_host(host, tls), endpoint, "{host}");
        }
    }

    #[tokio::test]
    async fn the_cli_is_asked_with_this_environments_docker_variables() {
        let home = Home::emulating();
        home.write(".docker/ctx/colima", "unix:///colima.sock");
        home.write(".docker/ctx/remote", "tcp://build.example:2375");
        home.write(".docker/ctx/remote.tls", "");
        home.write(".docker/current", "colima");
        let with = |host: Option<&str>, context: Option<&str>| EngineEnv {
            docker_host: host.map(String::from),
            docker_context: context.map(String::from),
            ..home.env()
        };
        let choose = |env: EngineEnv| async move { cli_choice(&env, LIMIT).await.unwrap() };

        let choice = choose(with(Some("tcp://h:2375"), Some("remote"))).await;
        assert_eq!(choice.endpoint, DockerEndpoint::Tcp("h:2375".into()));
        assert_eq!(
            (choice.origin.as_str(), choice.is_default),
            ("DOCKER_HOST", false)
        );
        let call = "context inspect --format {{json .}}|tcp://h:2375|remote|\n";
        assert!(home.calls().contains(call), "{}", home.calls());

        let choice = choose(with(None, Some("remote"))).await;
        assert_eq!(
            choice.endpoint,
            DockerEndpoint::ViaCli("tcp://build.example:2375".into())
        );
        assert_eq!(choice.origin, "Docker context \"remote\" (DOCKER_CONTEXT)");

        let choice = choose(home.env()).await;
        assert_eq!(choice.endpoint, DockerEndpoint::Unix("/colima.sock".into()));
        assert_eq!(
            choice.origin,
            "Docker context \"colima\" (the CLI's current context)"
        );
        assert!(!choice.is_default);

        std::fs::remove_file(home.path(".docker/current")).unwrap();
        let choice = choose(home.env()).await;
        assert_eq!(choice.endpoint, DockerEndpoint::Unix(DEFAULT_SOCKET.into()));
        assert!(choice.is_default, "{choice:?}");

        // DOCKER_TLS_VERIFY reaches the CLI, which then lists the certificates as TLS
        // material; without a CLI it decides by itself.
        let env = EngineEnv {
            docker_tls_verify: true,
            ..with(Some("tcp://h:2375"), None)
        };
        choose(env.clone()).await;
        assert!(
            home.calls().contains("|tcp://h:2375||1\n"),
            "{}",
            home.calls()
        );
        let choice = choose(EngineEnv {
            docker_cli: None,
            ..env
        })
        .await;
        assert_eq!(
            choice.endpoint,
            DockerEndpoint::ViaCli("tcp://h:2375".into())
        );
    }

    #[tokio::test]
    async fn a_failing_or_hanging_cli_is_an_error_saying_so() {
        let home = Home::emulating();
        let env = EngineEnv {
            docker_context: Some("gone".into()),
            ..home.env()
        };
        let err = find_engine(&env, LIMIT).await.unwrap_err();
        assert!(
            err.contains("context \"gone\": context not found")
                && err.contains("meta.json")
                && err.contains("docker context use default"),
            "{err}"
        );
        let garbled = Home::new("echo 'not json'", "exit 1");
        let err = cli_choice(&garbled.env(), LIMIT).await.unwrap_err();
        assert!(
            err.contains("printed no context") && err.contains("\"not json\""),
            "{err}"
        );

        let hanging = Home::new("exec sleep 30", "exit 1");
        let started = Instant::now();
        let err = find_engine(&hanging.env(), Duration::from_millis(500))
            .await
            .unwrap_err();
        println!(
            "a hanging `docker context inspect` took {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.contains("did not finish within 500ms"), "{err}");
    }

    #[tokio::test]
    async fn without_the_cli_docker_host_is_used_and_kind_is_refused() {
        let env = EngineEnv {
            docker_host: Some("unix:///somewhere/docker.sock".into()),
            ..EngineEnv::default()
        };
        let choice = cli_choice(&env, LIMIT).await.unwrap();
        assert_eq!(
            choice.endpoint,
            DockerEndpoint::Unix("/somewhere/docker.sock".into())
        );
        assert_eq!(
            (choice.origin.as_str(), choice.is_default),
            ("DOCKER_HOST", false)
        );
        let choice = cli_choice(&EngineEnv::default(), LIMIT).await.unwrap();
        assert!(choice.is_default && choice.origin.contains("no `docker` CLI on PATH"));

        let err = usable_by_kind(&env).unwrap_err();
        assert!(
            err.contains("no `docker` CLI on PATH") && err.contains("kind drives"),
            "{err}"
        );
        let podman = EngineEnv {
            kind_provider: Some("podman".into()),
            ..env
        };
        assert_eq!(usable_by_kind(&podman), Ok(()));
        assert_eq!(usable_by_kind(&Home::emulating().env()), Ok(()));
    }

    /// The fake's rules, checked against the real CLI where there is one (it needs no daemon).
    #[tokio::test]
    async fn the_real_docker_cli_resolves_as_cited() {
        let Some(cli) = which("docker") else {
            println!("skipped: no `docker` CLI on PATH to check the fake against");
            return;
        };
        let config = tempfile::tempdir().unwrap();
        let env = |host: Option<&str>, context: Option<&str>| EngineEnv {
            docker_host: host.map(String::from),
            docker_context: context.map(String::from),
            docker_cli: Some(cli.clone()),
            docker_config: Some(config.path().to_path_buf()),
            ..EngineEnv::default()
        };
        let choice = cli_choice(&env(None, None), LIMIT).await.unwrap();
        assert_eq!(choice.endpoint, DockerEndpoint::Unix(DEFAULT_SOCKET.into()));
        assert!(choice.is_default);
        Cmd::new(&cli, LIMIT)
            .env("DOCKER_CONFIG", config.path())
            .args([
                "context",
                "create",
                "other",
                "--docker",
                "host=unix:///other.sock",
            ])
            .run()
            .await
            .unwrap();
        let current = r#"{"currentContext": "other"}"#;
        std::fs::write(config.path().join("config.json"), current).unwrap();
        let choice = cli_choice(&env(None, None), LIMIT).await.unwrap();
        assert_eq!(choice.endpoint, DockerEndpoint::Unix("/other.sock".into()));
        assert!(!choice.is_default);
        let err = cli_choice(&env(None, Some("gone")), LIMIT)
            .await
            .unwrap_err();
        assert!(err.contains("context \"gone\": context not found"), "{err}");
        let choice = cli_choice(&env(Some("tcp://h:2375"), Some("gone")), LIMIT)
            .await
            .unwrap();
        assert_eq!(choice.endpoint, DockerEndpoint::Tcp("h:2375".into()));
    }

    #[tokio::test]
    async fn a_docker_host_pointing_at_nothing_fails_fast_and_names_it() {
        let home = Home::emulating();
        let missing = unix(&home.path("docker.sock"));
        // A TCP port that was just free: bind, note, drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = format!("tcp://127.0.0.1:{port}");
        for host in [missing, closed] {
            for docker_cli in [home.env().docker_cli, None] {
                let started = Instant::now();
                let env = EngineEnv {
                    docker_host: Some(host.clone()),
                    docker_cli,
                    ..home.env()
                };
                let err = find_engine(&env, Duration::from_secs(2)).await.unwrap_err();
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "{host}: {:?}",
                    started.elapsed()
                );
                let tried = format!("{host} from DOCKER_HOST: cannot connect");
                assert!(
                    err.contains("no Docker daemon answered") && err.contains(&tried),
                    "{err}"
                );
            }
        }
    }

    #[tokio::test]
    async fn tls_and_ssh_endpoints_are_asked_through_docker_info() {
        let ok = Home::new(INSPECT, "echo 29.4.2");
        for host in ["tcp://192.0.2.1:2376", "ssh://me@build.example"] {
            let env = EngineEnv {
                docker_host: Some(host.into()),
                ..ok.env()
            };
            let found = find_engine(&env, LIMIT).await.unwrap();
            assert_eq!(
                (found.endpoint.as_str(), found.origin.as_str()),
                (host, "DOCKER_HOST")
            );
            let call = format!("info --format {{{{.ServerVersion}}}}|{host}|");
            assert!(ok.calls().contains(&call), "{}", ok.calls());
        }
        let failing = Home::new(INSPECT, "echo 'error during connect' >&2; exit 1");
        let env = EngineEnv {
            docker_host: Some("tcp://192.0.2.1:2376".into()),
            ..failing.env()
        };
        let err = find_engine(&env, LIMIT).await.unwrap_err();
        assert!(
            err.contains("tcp://192.0.2.1:2376 is not a plain unix:// or tcp:// endpoint (TLS")
                && err.contains("`docker info`, asked instead, failed")
                && err.contains("error during connect"),
            "{err}"
        );
        let env = EngineEnv {
            docker_cli: None,
            ..env
        };
        let err = find_engine(&env, LIMIT).await.unwrap_err();
        assert!(
            err.contains("no `docker` CLI on PATH to ask instead"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn ping_asks_an_unversioned_ping_and_wants_a_200() {
        let home = Home::emulating();
        for (status, ok) in [("200 OK", true), ("500 Internal Server Error", false)] {
            let path = home.path(&format!("{}.sock", &status[..3]));
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            let daemon =
                tokio::spawn(
                    async move { answer(listener.accept().await.unwrap().0, status).await },
                );
            let result = ping(&DockerEndpoint::Unix(path), LIMIT).await;
            assert_eq!(result.is_ok(), ok, "{status}: {result:?}");
            // Unversioned, so that a daemon of any API version answers it.
            assert_eq!(daemon.await.unwrap(), "GET /_ping HTTP/1.1");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { answer(listener.accept().await.unwrap().0, "200 OK").await });
        ping(&DockerEndpoint::Tcp(addr), LIMIT).await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_listener_is_bounded_by_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hold = tokio::spawn(async move {
            let _socket = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let started = Instant::now();
        let err = ping(&DockerEndpoint::Tcp(addr), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(err.contains("no answer within 300ms"), "{err}");
        hold.abort();
    }

    #[tokio::test]
    async fn a_context_endpoint_that_answers_is_used_as_it_is() {
        let home = Home::emulating();
        let sock = home.path(".colima/default/docker.sock");
        let daemon = fake_daemon(&sock);
        home.write(".docker/current", "colima");
        home.write(".docker/ctx/colima", &unix(&sock));
        let found = find_engine(&home.env(), LIMIT).await.unwrap();
        assert_eq!(found.endpoint, unix(&sock));
        assert!(found.origin.contains("\"colima\""), "{}", found.origin);
        assert_eq!(found.docker_host_for_kind, None, "the CLI finds it itself");
        daemon.abort();
    }

    #[tokio::test]
    async fn without_a_context_the_first_well_known_socket_that_answers_stands_in() {
        let home = Home::emulating();
        // The CLI's default socket, absent here whatever this machine has.
        home.write(
            ".docker/default-host",
            &unix(&home.path("var-run-docker.sock")),
        );
        // Present but not answering: tried, and named in what was tried.
        home.write(".colima/default/docker.sock", "");
        let order = [
            (".rd/docker.sock", "Rancher Desktop"),
            (".orbstack/run/docker.sock", "OrbStack"),
            ("run/docker.sock", "rootless Docker"),
        ];
        let daemons: Vec<_> = order
            .iter()
            .map(|(p, _)| fake_daemon(&home.path(p)))
            .collect();
        for ((path, whose), daemon) in order.iter().zip(daemons) {
            let found = find_engine(&home.env(), LIMIT).await.unwrap();
            let host = unix(&home.path(path));
            assert_eq!(found.docker_host_for_kind.as_ref(), Some(&host));
            assert_eq!(found.endpoint, host);
            assert!(found.origin.contains(whose), "{}", found.origin);
            daemon.abort();
            std::fs::remove_file(home.path(path)).unwrap();
        }
        let err = find_engine(&home.env(), LIMIT).await.unwrap_err();
        assert!(
            err.contains("var-run-docker.sock from the Docker CLI's default context")
                && err.contains(".colima/default/docker.sock (the well-known socket of colima)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_chosen_context_that_does_not_answer_is_not_silently_replaced() {
        let home = Home::emulating();
        let daemon = fake_daemon(&home.path(".orbstack/run/docker.sock"));
        home.write(".docker/ctx/dead", &unix(&home.path("dead.sock")));
        let env = EngineEnv {
            docker_context: Some("dead".into()),
            ..home.env()
        };
        let err = find_engine(&env, LIMIT).await.unwrap_err();
        assert!(
            err.contains("dead.sock") && err.contains("not tried") && err.contains(".orbstack"),
            "{err}"
        );
        daemon.abort();
    }

    #[test]
    fn well_known_sockets_cover_the_common_engines() {
        let names: Vec<&str> = well_known_sockets(&Home::emulating().env())
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        for engine in [
            "Docker Desktop for Linux",
            "Docker Desktop (macOS)",
            "colima",
            "Rancher Desktop",
            "OrbStack",
            "rootless Docker",
            "podman (rootless)",
            "podman machine (macOS)",
        ] {
            assert!(names.contains(&engine), "{engine} missing from {names:?}");
        }
    }

    #[test]
    fn kind_providers() {
        let with = |v: &str| EngineEnv {
            kind_provider: Some(v.into()),
            ..EngineEnv::default()
        };
        assert_eq!(provider(&EngineEnv::default()), (Provider::Docker, None));
        assert_eq!(provider(&with("podman")).0, Provider::Podman);
        assert_eq!(
            provider(&with("finch")).0,
            Provider::Nerdctl("finch".into())
        );
        let (p, warning) = provider(&with("lxc"));
        assert_eq!(p, Provider::Docker);
        assert!(warning.unwrap().contains("ignores"));
    }

    fn found(endpoint: String) -> EngineFound {
        EngineFound {
            provider: Provider::Docker,
            endpoint,
            origin: "Docker context \"colima\"".into(),
            docker_host_for_kind: None,
        }
    }

    #[test]
    fn testcontainers_reads_no_context() {
        let home = Home::emulating();
        home.write(".docker/desktop/docker.sock", "");
        let env = home.env();
        // Only when /var/run/docker.sock is absent does testcontainers pick Docker Desktop's.
        if !Path::new(DEFAULT_SOCKET).exists() {
            let desktop = unix(&home.path(".docker/desktop/docker.sock"));
            assert_eq!(testcontainers_endpoint(&env).to_string(), desktop);
        }
        let colima = found("unix:///home/u/.colima/default/docker.sock".into());
        let problem = testcontainers_mismatch(&env, &colima).unwrap();
        let fix = "export DOCKER_HOST=unix:///home/u/.colima/default/docker.sock";
        assert!(problem.contains(fix), "{problem}");
        let same = found(testcontainers_endpoint(&env).to_string());
        assert_eq!(testcontainers_mismatch(&env, &same), None);
    }

    #[test]
    fn a_symlinked_socket_is_the_same_daemon() {
        let home = Home::emulating();
        // Docker Desktop's layout: the per-user socket, and /var/run/docker.sock linking to it.
        let (real, link, other) = (
            home.path("run.sock"),
            home.path("link.sock"),
            home.path("c.sock"),
        );
        home.write("run.sock", "");
        home.write("c.sock", "");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let u = |p: &Path| DockerEndpoint::Unix(p.to_path_buf());
        assert!(same_endpoint(&u(&link), &u(&real)));
        assert!(!same_endpoint(&u(&link), &u(&other)));
        // Paths that do not exist are compared as written.
        assert!(!same_endpoint(
            &u(&home.path("a.sock")),
            &u(&home.path("b.sock"))
        ));
        let tcp = DockerEndpoint::Tcp("h:2375".into());
        assert!(same_endpoint(&tcp, &tcp.clone()));

        // testcontainers reaching the daemon through the link is no mismatch (F10).
        let env = EngineEnv {
            docker_host: Some(unix(&link)),
            ..EngineEnv::default()
        };
        assert_eq!(testcontainers_mismatch(&env, &found(unix(&real))), None);
        let problem = testcontainers_mismatch(&env, &found(unix(&other))).unwrap();
        let fix = format!("export DOCKER_HOST={}", unix(&other));
        assert!(problem.contains(&fix), "{problem}");
    }
}
