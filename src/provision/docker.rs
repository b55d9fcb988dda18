//! Which container engine kind will use, and does it answer? kind and k3s (testcontainers)
//! need one; `auto` picks the sandbox without.
//!
//! The endpoint is resolved the way the Docker CLI resolves it, because kind drives the
//! `docker` CLI (kubernetes-sigs/kind v0.31.0 … v0.33.0 `pkg/cluster/internal/providers/docker`):
//! `DOCKER_HOST`, else the context named by `DOCKER_CONTEXT`, else `currentContext` of
//! `config.json` (in `DOCKER_CONFIG`, default `~/.docker`), whose endpoint is
//! `Endpoints.docker.Host` of `contexts/meta/<sha256 of the name>/meta.json`; the `default`
//! context is `unix:///var/run/docker.sock` (docker/cli v29.7 `cli/command/cli.go`
//! `resolveContextName`, `cli/config/config.go`, `cli/context/store/{store,metadatastore}.go`,
//! `cli/context/endpoint.go`; moby `client/client_unix.go` `DefaultDockerHost`). When that
//! default answers nothing, the well-known sockets of Docker Desktop, colima, Rancher Desktop,
//! OrbStack, rootless Docker and podman are tried, and kind is then run with `DOCKER_HOST` set
//! to the one that answered. `KIND_EXPERIMENTAL_PROVIDER` picks podman or nerdctl instead
//! (kind v0.31.0 … v0.33.0 `pkg/internal/runtime/runtime.go`); those are checked through their
//! own CLI.
//!
//! The check speaks the daemon's `/_ping` with a short limit, so a missing daemon costs at most
//! that limit; endpoints it cannot speak (TLS, ssh) are asked through `docker info`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::process::{Cmd, which};

/// How long the check waits for a daemon to answer.
pub const PING_LIMIT: Duration = Duration::from_secs(3);

/// Where a Docker daemon may listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
    /// `host:port` over TLS (`DOCKER_TLS_VERIFY`, port 2376, or a context with TLS material).
    Tls(String),
    /// An endpoint this check cannot speak (ssh://, npipe://, …).
    Unsupported(String),
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Tcp(addr) | DockerEndpoint::Tls(addr) => write!(f, "tcp://{addr}"),
            DockerEndpoint::Unsupported(raw) => f.write_str(raw),
        }
    }
}

/// The environment the resolution reads (tests pass their own).
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
        }
    }

    /// The Docker CLI's configuration directory.
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.docker_config
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".docker")))
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

/// An endpoint and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where the daemon listens.
    pub endpoint: DockerEndpoint,
    /// Why this endpoint (`DOCKER_HOST`, a context, a well-known socket).
    pub origin: String,
}

/// Where the Docker CLI will go, and the well-known sockets present on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The CLI's endpoint; `Err` says why none can be named (a context that does not exist).
    pub cli: std::result::Result<Candidate, String>,
    /// True when the CLI's choice is its built-in default (no DOCKER_HOST, no context), so a
    /// well-known socket may stand in for it.
    pub cli_is_default: bool,
    /// Well-known sockets that exist as files, other than the CLI's endpoint.
    pub fallbacks: Vec<Candidate>,
}

/// The Docker CLI's default endpoint on Unix (moby `client/client_unix.go`).
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Well-known sockets of the common engines, in the order they are tried, each with whose it is.
pub fn well_known_sockets(env: &EngineEnv) -> Vec<(PathBuf, &'static str)> {
    let mut list = vec![(PathBuf::from(DEFAULT_SOCKET), "the default socket")];
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

/// The directory name of a context: the hex sha256 of its name (docker/cli
/// `cli/context/store/store.go`, `digest.FromString(name).Encoded()`).
pub fn context_dir_name(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// The endpoint stored for context `name` under the CLI's config directory.
pub fn context_endpoint(
    config_dir: &Path,
    name: &str,
) -> std::result::Result<DockerEndpoint, String> {
    let id = context_dir_name(name);
    let meta = config_dir.join("contexts/meta").join(&id).join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        format!(
            "Docker context {name:?} has no readable {} ({e}); `docker context ls` lists the contexts that exist",
            meta.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} (Docker context {name:?}) is not JSON: {e}",
            meta.display()
        )
    })?;
    let host = value["Endpoints"]["docker"]["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "{} (Docker context {name:?}) names no Endpoints.docker.Host",
                meta.display()
            )
        })?;
    // TLS material lives next to the metadata, under contexts/tls/<id>/docker/.
    let tls = config_dir
        .join("contexts/tls")
        .join(&id)
        .join("docker")
        .is_dir();
    Ok(parse_docker_host(host, tls))
}

/// Resolves the endpoint as the Docker CLI does, plus the well-known sockets that exist.
pub fn resolve(env: &EngineEnv) -> Resolution {
    let config_dir = env.config_dir();
    let (cli, cli_is_default) = if let Some(host) = &env.docker_host {
        let candidate = Candidate {
            endpoint: parse_docker_host(host, env.docker_tls_verify),
            origin: "DOCKER_HOST".into(),
        };
        (Ok(candidate), false)
    } else {
        let named = env
            .docker_context
            .clone()
            .map(|name| (name, "DOCKER_CONTEXT".to_string()))
            .or_else(|| {
                let path = config_dir.as_ref()?.join("config.json");
                let text = std::fs::read_to_string(&path).ok()?;
                let value: serde_json::Value = serde_json::from_str(&text).ok()?;
                let name = value["currentContext"].as_str()?.to_string();
                (!name.is_empty()).then(|| (name, format!("currentContext in {}", path.display())))
            });
        match named {
            // "default" is the CLI's built-in context, not a stored one.
            Some((name, why)) if name != "default" => {
                let found = match &config_dir {
                    Some(dir) => context_endpoint(dir, &name),
                    None => Err("there is no home directory to find Docker contexts in".into()),
                };
                let candidate = found.map(|endpoint| Candidate {
                    endpoint,
                    origin: format!("Docker context {name:?} ({why})"),
                });
                (candidate, false)
            }
            _ => {
                let candidate = Candidate {
                    endpoint: DockerEndpoint::Unix(PathBuf::from(DEFAULT_SOCKET)),
                    origin: "the Docker CLI's default context".into(),
                };
                (Ok(candidate), true)
            }
        }
    };
    let chosen = cli.as_ref().ok().map(|c| c.endpoint.clone());
    let fallbacks = well_known_sockets(env)
        .into_iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, whose)| Candidate {
            endpoint: DockerEndpoint::Unix(path),
            origin: format!("the well-known socket of {whose}"),
        })
        .filter(|c| Some(&c.endpoint) != chosen.as_ref())
        .collect();
    Resolution {
        cli,
        cli_is_default,
        fallbacks,
    }
}

/// Where testcontainers-rs 0.27 (k3s) goes: DOCKER_HOST, else the first of its sockets that
/// exists, else the default (testcontainers-0.27.3 `src/core/env/config.rs` `docker_host`).
/// It reads no Docker context.
pub fn testcontainers_endpoint(env: &EngineEnv) -> DockerEndpoint {
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

/// Parses a DOCKER_HOST value; `tls` marks a TCP endpoint that needs TLS.
pub fn parse_docker_host(host: &str, tls: bool) -> DockerEndpoint {
    if let Some(path) = host.strip_prefix("unix://") {
        DockerEndpoint::Unix(PathBuf::from(path))
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/').to_string();
        // 2376 is the daemon's TLS port by convention (Docker's "Protect the Docker daemon
        // socket" guide); 2375 is plain.
        if tls || addr.ends_with(":2376") {
            DockerEndpoint::Tls(addr)
        } else {
            DockerEndpoint::Tcp(addr)
        }
    } else {
        DockerEndpoint::Unsupported(host.to_string())
    }
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
        let cli = provider.cli().to_string();
        let Some(bin) = which(&cli) else {
            return Err(format!(
                "KIND_EXPERIMENTAL_PROVIDER selects {cli}, but `{cli}` is not on PATH; install it or unset KIND_EXPERIMENTAL_PROVIDER"
            ));
        };
        // `info` needs the engine (podman machine, nerdctl's containerd), not only the CLI.
        return match Cmd::new(&bin, limit.max(Duration::from_secs(10)))
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
        };
    }
    let resolution = resolve(env);
    let cli = match resolution.cli {
        Ok(cli) => cli,
        Err(reason) => {
            return Err(format!(
                "{reason}; switch with `docker context use default` or set DOCKER_HOST"
            ));
        }
    };
    let mut failures = match ask(&cli.endpoint, limit).await {
        Ok(()) => {
            return Ok(EngineFound {
                provider,
                endpoint: cli.endpoint.to_string(),
                origin: cli.origin,
                docker_host_for_kind: None,
            });
        }
        Err(reason) => vec![format!("{} from {}: {reason}", cli.endpoint, cli.origin)],
    };
    if resolution.cli_is_default {
        for fallback in &resolution.fallbacks {
            match ask(&fallback.endpoint, limit).await {
                Ok(()) => {
                    return Ok(EngineFound {
                        provider,
                        endpoint: fallback.endpoint.to_string(),
                        origin: format!(
                            "{}; kind is run with DOCKER_HOST={}",
                            fallback.origin, fallback.endpoint
                        ),
                        docker_host_for_kind: Some(fallback.endpoint.to_string()),
                    });
                }
                Err(reason) => failures.push(format!(
                    "{} ({}): {reason}",
                    fallback.endpoint, fallback.origin
                )),
            }
        }
    } else if !resolution.fallbacks.is_empty() {
        // The user chose an endpoint; the CLI (and kind) will not look elsewhere.
        failures.push(format!(
            "not tried, because {} names the endpoint: {}",
            cli.origin,
            resolution
                .fallbacks
                .iter()
                .map(|c| c.endpoint.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(format!(
        "no Docker daemon answered ({})",
        failures.join("; ")
    ))
}

/// Asks one endpoint: `/_ping` where this check speaks the protocol, else `docker info`.
async fn ask(endpoint: &DockerEndpoint, limit: Duration) -> Result<(), String> {
    let what = match endpoint {
        DockerEndpoint::Unix(_) | DockerEndpoint::Tcp(_) => return ping(endpoint, limit).await,
        DockerEndpoint::Tls(addr) => format!(
            "tcp://{addr} is a TLS endpoint (DOCKER_TLS_VERIFY, port 2376 or a context with TLS material), which this check does not speak"
        ),
        other => format!("{other} is not a unix:// or tcp:// endpoint"),
    };
    let Some(docker) = which("docker") else {
        return Err(format!(
            "{what}, and there is no `docker` CLI on PATH to ask instead"
        ));
    };
    Cmd::new(docker, limit.max(Duration::from_secs(10)))
        .args(["info", "--format", "{{.ServerVersion}}"])
        .run()
        .await
        .map(drop)
        .map_err(|e| format!("{what}; `docker info`, asked instead, failed: {e}"))
}

/// Finds the engine from the process environment (the check `auto` and the provisioners use).
pub async fn docker_available() -> Result<EngineFound, String> {
    find_engine(&EngineEnv::from_process(), PING_LIMIT).await
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
pub fn same_endpoint(a: &DockerEndpoint, b: &DockerEndpoint) -> bool {
    match (a, b) {
        (DockerEndpoint::Unix(x), DockerEndpoint::Unix(y)) => {
            let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            resolve(x) == resolve(y)
        }
        _ => a.to_string() == b.to_string(),
    }
}

/// Pings each endpoint in turn; the first that answers wins.
#[cfg(test)] // only the tests use it
pub async fn ping_any(list: &[DockerEndpoint], limit: Duration) -> Result<DockerEndpoint, String> {
    let mut failures = Vec::new();
    for endpoint in list {
        match ping(endpoint, limit).await {
            Ok(()) => return Ok(endpoint.clone()),
            Err(reason) => failures.push(format!("{endpoint}: {reason}")),
        }
    }
    Err(format!(
        "no Docker daemon answered ({})",
        failures.join("; ")
    ))
}

/// One `/_ping`, bounded by `limit`.
pub async fn ping(endpoint: &DockerEndpoint, limit: Duration) -> Result<(), String> {
    let work = async {
        match endpoint {
            DockerEndpoint::Unix(path) => {
                #[cfg(unix)]
                {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| format!("cannot connect: {e}"))?;
                    exchange(stream).await
                }
                #[cfg(not(unix))]
                {
                    let _ = path;
                    Err("Unix sockets are not supported on this OS".to_string())
                }
            }
            DockerEndpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                exchange(stream).await
            }
            DockerEndpoint::Tls(addr) => Err(format!(
                "tcp://{addr} needs TLS, which this check does not speak"
            )),
            DockerEndpoint::Unsupported(raw) => Err(format!(
                "cannot check a daemon at {raw:?} (only unix:// and tcp:// endpoints)"
            )),
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<(), String> {
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    // The status line is all we need; stop reading once it is complete.
    while !answer.contains(&b'\n') && answer.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    if status_line.starts_with("HTTP/") && status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("unexpected answer {status_line:?}"))
    }
}

/// Test support shared by the tests of the Docker context and of preflight.
#[cfg(all(test, unix))]
pub(crate) mod test_support {
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A socket answering `/_ping` like a Docker daemon, until the test ends.
    pub(crate) fn fake_daemon(path: &Path) -> tokio::task::JoinHandle<()> {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 512];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                    .await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use super::test_support::fake_daemon;
    use super::*;

    #[test]
    fn docker_host_parsing() {
        assert_eq!(
            parse_docker_host("unix:///run/user/1000/docker.sock", false),
            DockerEndpoint::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            parse_docker_host("tcp://127.0.0.1:2375", false),
            DockerEndpoint::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            parse_docker_host("tcp://h:2375", true),
            DockerEndpoint::Tls("h:2375".into())
        );
        assert_eq!(
            parse_docker_host("tcp://h:2376/", false),
            DockerEndpoint::Tls("h:2376".into())
        );
        assert!(matches!(
            parse_docker_host("ssh://me@host", false),
            DockerEndpoint::Unsupported(_)
        ));
    }

    /// A fake home with the Docker CLI's files.
    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self) -> PathBuf {
            self.dir.path().to_path_buf()
        }
        fn env(&self) -> EngineEnv {
            EngineEnv {
                home: Some(self.path()),
                xdg_runtime_dir: Some(self.path().join("run")),
                ..EngineEnv::default()
            }
        }
        fn write(&self, relative: &str, text: &str) {
            let path = self.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        /// A context as `docker context create NAME --docker host=HOST` stores it.
        fn context(&self, name: &str, host: &str) {
            self.write(
                &format!(".docker/contexts/meta/{}/meta.json", context_dir_name(name)),
                &serde_json::json!({
                    "Name": name,
                    "Metadata": {"Description": ""},
                    "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}
                })
                .to_string(),
            );
        }
    }

    #[test]
    fn context_directories_are_the_sha256_of_the_name() {
        // printf default | sha256sum
        assert_eq!(
            context_dir_name("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }

    #[test]
    fn docker_host_beats_every_context() {
        let home = Home::new();
        home.write(".docker/config.json", r#"{"currentContext": "colima"}"#);
        home.context("colima", "unix:///c.sock");
        let env = EngineEnv {
            docker_host: Some("tcp://h:2375".into()),
            docker_context: Some("colima".into()),
            ..home.env()
        };
        let r = resolve(&env);
        assert_eq!(
            r.cli.unwrap(),
            Candidate {
                endpoint: DockerEndpoint::Tcp("h:2375".into()),
                origin: "DOCKER_HOST".into()
            }
        );
        assert!(!r.cli_is_default);
    }

    #[test]
    fn docker_context_beats_the_config_files_current_context() {
        let home = Home::new();
        home.write(".docker/config.json", r#"{"currentContext": "colima"}"#);
        home.context("colima", "unix:///colima.sock");
        home.context("rootless", "unix:///run/user/1000/docker.sock");
        let env = EngineEnv {
            docker_context: Some("rootless".into()),
            ..home.env()
        };
        let cli = resolve(&env).cli.unwrap();
        assert_eq!(
            cli.endpoint,
            DockerEndpoint::Unix("/run/user/1000/docker.sock".into())
        );
        assert!(
            cli.origin.contains("\"rootless\" (DOCKER_CONTEXT)"),
            "{}",
            cli.origin
        );

        let cli = resolve(&home.env()).cli.unwrap();
        assert_eq!(cli.endpoint, DockerEndpoint::Unix("/colima.sock".into()));
        assert!(cli.origin.contains("currentContext in"), "{}", cli.origin);
    }

    #[test]
    fn docker_config_moves_the_config_directory() {
        let home = Home::new();
        home.write(
            "elsewhere/config.json",
            r#"{"currentContext": "desktop-linux"}"#,
        );
        home.write(
            &format!(
                "elsewhere/contexts/meta/{}/meta.json",
                context_dir_name("desktop-linux")
            ),
            r#"{"Name":"desktop-linux","Endpoints":{"docker":{"Host":"unix:///d.sock"}}}"#,
        );
        let env = EngineEnv {
            docker_config: Some(home.path().join("elsewhere")),
            ..home.env()
        };
        assert_eq!(
            resolve(&env).cli.unwrap().endpoint,
            DockerEndpoint::Unix("/d.sock".into())
        );
    }

    #[test]
    fn a_context_with_tls_material_is_a_tls_endpoint() {
        let home = Home::new();
        home.context("remote", "tcp://build.example:2375");
        home.write(
            &format!(
                ".docker/contexts/tls/{}/docker/ca.pem",
                context_dir_name("remote")
            ),
            "x",
        );
        let env = EngineEnv {
            docker_context: Some("remote".into()),
            ..home.env()
        };
        assert_eq!(
            resolve(&env).cli.unwrap().endpoint,
            DockerEndpoint::Tls("build.example:2375".into())
        );
    }

    #[test]
    fn a_missing_context_is_an_error_naming_it() {
        let home = Home::new();
        home.write(".docker/config.json", r#"{"currentContext": "gone"}"#);
        let err = resolve(&home.env()).cli.unwrap_err();
        assert!(
            err.contains("\"gone\"")
                && err.contains("meta.json")
                && err.contains("docker context ls"),
            "{err}"
        );
    }

    #[test]
    fn the_default_context_is_the_default_socket_and_lists_present_sockets() {
        let home = Home::new();
        home.write(".docker/config.json", r#"{"currentContext": "default"}"#);
        home.write(".colima/default/docker.sock", "");
        home.write(".rd/docker.sock", "");
        home.write("run/docker.sock", "");
        let r = resolve(&home.env());
        assert!(r.cli_is_default);
        assert_eq!(
            r.cli.unwrap().endpoint,
            DockerEndpoint::Unix(DEFAULT_SOCKET.into())
        );
        let found: Vec<(String, String)> = r
            .fallbacks
            .iter()
            .filter(|c| c.endpoint.to_string() != format!("unix://{DEFAULT_SOCKET}"))
            .map(|c| (c.endpoint.to_string(), c.origin.clone()))
            .collect();
        let home_path = home.path().display().to_string();
        assert_eq!(
            found,
            vec![
                (
                    format!("unix://{home_path}/.colima/default/docker.sock"),
                    "the well-known socket of colima".to_string()
                ),
                (
                    format!("unix://{home_path}/.rd/docker.sock"),
                    "the well-known socket of Rancher Desktop".to_string()
                ),
                (
                    format!("unix://{home_path}/run/docker.sock"),
                    "the well-known socket of rootless Docker".to_string()
                ),
            ]
        );
    }

    #[test]
    fn well_known_sockets_cover_the_common_engines() {
        let home = Home::new();
        let names: Vec<&str> = well_known_sockets(&home.env())
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        for engine in [
            "Docker Desktop for Linux",
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

    #[test]
    fn testcontainers_reads_no_context() {
        let home = Home::new();
        home.write(".docker/desktop/docker.sock", "");
        let env = home.env();
        let desktop = format!(
            "unix://{}/.docker/desktop/docker.sock",
            home.path().display()
        );
        // Only when /var/run/docker.sock is absent does testcontainers pick Docker Desktop's.
        if !Path::new(DEFAULT_SOCKET).exists() {
            assert_eq!(testcontainers_endpoint(&env).to_string(), desktop);
        }
        let colima = EngineFound {
            provider: Provider::Docker,
            endpoint: "unix:///home/u/.colima/default/docker.sock".into(),
            origin: "Docker context \"colima\"".into(),
            docker_host_for_kind: None,
        };
        let problem = testcontainers_mismatch(&env, &colima).unwrap();
        assert!(
            problem.contains("export DOCKER_HOST=unix:///home/u/.colima/default/docker.sock"),
            "{problem}"
        );
        let same = EngineFound {
            endpoint: testcontainers_endpoint(&env).to_string(),
            ..colima
        };
        assert_eq!(testcontainers_mismatch(&env, &same), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_socket_is_the_same_daemon() {
        let dir = tempfile::tempdir().unwrap();
        // Docker Desktop's layout: the per-user socket, and /var/run/docker.sock linking to it.
        let real = dir.path().join("run/docker.sock");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "").unwrap();
        let link = dir.path().join("var-run-docker.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let other = dir.path().join("colima.sock");
        std::fs::write(&other, "").unwrap();

        assert!(same_endpoint(
            &DockerEndpoint::Unix(link.clone()),
            &DockerEndpoint::Unix(real.clone())
        ));
        assert!(!same_endpoint(
            &DockerEndpoint::Unix(link.clone()),
            &DockerEndpoint::Unix(other.clone())
        ));
        // Paths that do not exist are compared as written.
        assert!(!same_endpoint(
            &DockerEndpoint::Unix(dir.path().join("a.sock")),
            &DockerEndpoint::Unix(dir.path().join("b.sock"))
        ));
        assert!(same_endpoint(
            &DockerEndpoint::Tcp("h:2375".into()),
            &DockerEndpoint::Tcp("h:2375".into())
        ));

        // testcontainers reaching the daemon through the link is no mismatch (F10).
        let env = EngineEnv {
            docker_host: Some(format!("unix://{}", link.display())),
            ..EngineEnv::default()
        };
        let found = |path: &Path| EngineFound {
            provider: Provider::Docker,
            endpoint: format!("unix://{}", path.display()),
            origin: "Docker context \"desktop-linux\"".into(),
            docker_host_for_kind: None,
        };
        assert_eq!(testcontainers_mismatch(&env, &found(&real)), None);
        let problem = testcontainers_mismatch(&env, &found(&other)).unwrap();
        assert!(
            problem.contains(&format!("export DOCKER_HOST=unix://{}", other.display())),
            "{problem}"
        );
    }

    #[tokio::test]
    async fn a_docker_host_pointing_at_nothing_fails_fast_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("unix://{}/docker.sock", dir.path().display());
        // A TCP port that was just free: bind, note, drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = format!("tcp://127.0.0.1:{port}");
        let mut hosts = vec![missing.as_str(), closed.as_str()];
        // Without a docker CLI an ssh:// endpoint fails at once; with one, `docker info` decides.
        if which("docker").is_none() {
            hosts.push("ssh://nobody@nowhere");
        }
        for host in hosts {
            let started = std::time::Instant::now();
            let env = EngineEnv {
                docker_host: Some(host.to_string()),
                ..EngineEnv::default()
            };
            let err = find_engine(&env, Duration::from_secs(2)).await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{host} took {:?}",
                started.elapsed()
            );
            assert!(
                err.contains("no Docker daemon answered")
                    && err.contains(host.trim_end_matches('/')),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_tls_docker_host_says_it_is_tls() {
        if which("docker").is_some() {
            return; // `docker info` would be asked instead; nothing fixed to assert.
        }
        let env = EngineEnv {
            docker_host: Some("tcp://192.0.2.1:2375".into()),
            docker_tls_verify: true,
            ..EngineEnv::default()
        };
        let err = find_engine(&env, Duration::from_secs(2)).await.unwrap_err();
        assert!(
            err.contains("tcp://192.0.2.1:2375 is a TLS endpoint")
                && err.contains("no `docker` CLI on PATH"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_context_endpoint_that_answers_is_used_as_it_is() {
        let home = Home::new();
        let sock = home.path().join(".colima/default/docker.sock");
        let daemon = fake_daemon(&sock);
        home.write(".docker/config.json", r#"{"currentContext": "colima"}"#);
        home.context("colima", &format!("unix://{}", sock.display()));
        let found = find_engine(&home.env(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(found.endpoint, format!("unix://{}", sock.display()));
        assert!(found.origin.contains("\"colima\""), "{}", found.origin);
        assert_eq!(found.docker_host_for_kind, None, "the CLI finds it itself");
        daemon.abort();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn without_a_context_a_well_known_socket_stands_in_and_kind_is_told() {
        if Path::new(DEFAULT_SOCKET).exists() {
            return; // A real default daemon would win; the fallback is not reached.
        }
        let home = Home::new();
        let sock = home.path().join(".rd/docker.sock");
        let daemon = fake_daemon(&sock);
        let found = find_engine(&home.env(), Duration::from_secs(5))
            .await
            .unwrap();
        let host = format!("unix://{}", sock.display());
        assert_eq!(found.endpoint, host);
        assert_eq!(found.docker_host_for_kind.as_deref(), Some(host.as_str()));
        assert!(found.origin.contains("Rancher Desktop"), "{}", found.origin);
        daemon.abort();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_chosen_context_that_does_not_answer_is_not_silently_replaced() {
        let home = Home::new();
        let sock = home.path().join(".orbstack/run/docker.sock");
        let daemon = fake_daemon(&sock);
        home.context(
            "dead",
            &format!("unix://{}/dead.sock", home.path().display()),
        );
        let env = EngineEnv {
            docker_context: Some("dead".into()),
            ..home.env()
        };
        let err = find_engine(&env, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            err.contains("dead.sock") && err.contains("not tried") && err.contains(".orbstack"),
            "{err}"
        );
        daemon.abort();
    }

    #[tokio::test]
    async fn a_silent_listener_is_bounded_by_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let err = ping(
            &DockerEndpoint::Tcp(addr.to_string()),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(err.contains("no answer within 300ms"), "{err}");
        hold.abort();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_daemon_answering_ping_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                .await;
        });
        let list = vec![
            DockerEndpoint::Unix(dir.path().join("absent.sock")),
            DockerEndpoint::Unix(path.clone()),
        ];
        assert_eq!(
            ping_any(&list, Duration::from_secs(5)).await.unwrap(),
            DockerEndpoint::Unix(path)
        );
    }
}
