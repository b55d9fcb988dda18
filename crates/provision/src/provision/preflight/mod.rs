//! Preflight: before a kind or k3s run creates anything, check everything it needs and report
//! every problem at once, each with its fix. The same checks run alone as `happy-doctor`.
//!
//! What is checked, and the figures used:
//! - the container engine, found the way kind finds it ([`crate::provision::docker`]);
//! - for kind: the `docker` CLI kind drives (kind v0.31.0 … v0.33.0
//!   `pkg/cluster/internal/providers/docker/util.go` `IsAvailable`: `docker -v` must print
//!   `Docker version …`), the kind binary and its version, podman's version against kind's
//!   (podman ≥ 6 needs kind ≥ v0.33.0, [`platform::judge_podman_for_kind`]), `kind get
//!   clusters` itself (the first command of a kind run) when the binary is at hand, the host
//!   port if `HAPPY_KIND_HOST_PORT` maps one;
//! - for k3s: that testcontainers reaches the same daemon;
//! - the Kubernetes version against the Istio minor's window ([`crate::istio::support_window`]);
//! - the engine's cgroup version: Kubernetes ≥ 1.35 refuses cgroup v1
//!   ([`platform::CGROUP_V1_REFUSED_FROM`]);
//! - the host's architecture: a note on arm64 ([`platform::judge_architecture`]);
//! - memory: the engine's `MemTotal` against [`MEMORY_NEEDED`]. istio.io asks for "8.0 GB of
//!   memory and 4 CPUs" to run Istio with a sample app (istio/istio.io
//!   `content/en/docs/setup/platform-setup/docker/index.md`); a VM given 8 GB reports a little
//!   less to `docker info`, hence the 7 GiB threshold; fewer than [`CPUS_WANTED`] CPUs is a
//!   warning. The threshold is about what runs, not what is requested: the memory requests of
//!   Istio's demo profile are 100Mi for istiod, 40Mi per gateway and per sidecar
//!   (istio/istio 1.30.3 and 1.31.0-rc.0 `manifests/helm-profiles/demo.yaml`), and of the
//!   addons only Kiali's 64Mi (`samples/addons/kiali.yaml`; Prometheus, Grafana, Loki and
//!   Jaeger request no memory) — well under 1 GiB with the workshop's pods — while Prometheus,
//!   the proxies and the control plane use far more. On a GitHub-hosted runner the fix names
//!   the runner class ([`platform::Runner`]);
//! - disk: [`ENGINE_DISK_NEEDED`] free where the engine keeps images (`DockerRootDir`, when it
//!   is on this machine) and [`CACHE_DISK_NEEDED`] in `HAPPY_CACHE_DIR`. These two are the
//!   suite's own estimates, not upstream figures: the node image, Istio's pilot and proxyv2,
//!   three addons (Prometheus, Grafana, Kiali) and the workshop's images are a few
//!   GB unpacked; an Istio release archive plus its unpacked tree and kind are under 300 MB.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod platform;

use crate::istio::support_window::{self, Support};
use crate::process::{Cmd, is_executable, which};
use crate::provision::docker::{self, EngineEnv, EngineFound, Provider};
use crate::provision::kind;
use crate::settings::{IstioVersionRequest, Settings};
use crate::timeouts::Timeouts;
use platform::Runner;

const GIB: u64 = 1 << 30;

/// Memory the engine should have: istio.io's 8 GB, less what a VM of that size keeps back.
pub(crate) const MEMORY_NEEDED: u64 = 7 * GIB;
/// CPUs istio.io asks for; fewer is a warning (things get slow, not broken).
pub(crate) const CPUS_WANTED: u64 = 4;
/// Free disk where the engine stores images (the suite's estimate; see the module doc).
pub(crate) const ENGINE_DISK_NEEDED: u64 = 10 * GIB;
/// Free disk in the cache directory (the suite's estimate; see the module doc).
pub(crate) const CACHE_DISK_NEEDED: u64 = GIB;

/// What a run is about to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A kind cluster.
    Kind,
    /// A k3s container.
    K3s,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Kind => "kind",
            Target::K3s => "k3s",
        })
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fine, with what was found.
    Ok(String),
    /// Works, but worth knowing.
    Warning(String),
    /// Would make the run fail: what is wrong, and what to do.
    Problem {
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
}

impl Outcome {
    fn problem(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Outcome::Problem {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// What came of it.
    pub outcome: Outcome,
}

/// All checks of one preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What the run would create.
    pub target: Target,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The engine found, when one answered.
    pub engine: Option<EngineFound>,
}

impl Report {
    /// The problems, in order.
    pub fn problems(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Problem { .. }))
            .collect()
    }

    /// True when nothing would stop the run.
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }

    /// The report as text: one line per check, every problem with its fix.
    pub fn render(&self) -> String {
        let mut out = format!("happy-istio preflight for HAPPY_CLUSTER={}:\n", self.target);
        for check in &self.checks {
            match &check.outcome {
                Outcome::Ok(text) => out.push_str(&format!("  ok       {}: {text}\n", check.name)),
                Outcome::Warning(text) => {
                    out.push_str(&format!("  WARNING  {}: {text}\n", check.name))
                }
                Outcome::Problem { problem, fix } => out.push_str(&format!(
                    "  PROBLEM  {}: {problem}\n           fix: {fix}\n",
                    check.name
                )),
            }
        }
        let problems = self.problems().len();
        out.push_str(&match problems {
            0 => "  all checks passed\n".to_string(),
            1 => "  1 problem\n".to_string(),
            n => format!("  {n} problems\n"),
        });
        out
    }

    fn push(&mut self, name: &'static str, outcome: Outcome) {
        self.checks.push(Check { name, outcome });
    }
}

/// Judges the engine's memory (`docker info` `MemTotal`, bytes) on `runner`.
pub(crate) fn judge_memory(total: u64, runner: Runner) -> Outcome {
    let gib = total as f64 / GIB as f64;
    if total < MEMORY_NEEDED {
        Outcome::problem(
            format!(
                "the container engine has {gib:.1} GiB of memory; istio.io asks for 8 GB to run Istio with a sample app (platform setup), which this threshold follows"
            ),
            runner.memory_fix(),
        )
    } else {
        Outcome::Ok(format!("{gib:.1} GiB"))
    }
}

/// Judges the engine's CPU count.
pub(crate) fn judge_cpus(cpus: u64) -> Outcome {
    if cpus < CPUS_WANTED {
        Outcome::Warning(format!(
            "{cpus} CPUs; istio.io suggests {CPUS_WANTED}: rollouts will be slow, raise HAPPY_TIMEOUT_* if they time out"
        ))
    } else {
        Outcome::Ok(format!("{cpus} CPUs"))
    }
}

/// Judges free disk space at `path`.
pub(crate) fn judge_disk(what: &str, path: &Path, free: u64, needed: u64) -> Outcome {
    let gib = |b: u64| b as f64 / GIB as f64;
    if free < needed {
        Outcome::problem(
            format!(
                "{what} {} has {:.1} GiB free; the run needs about {:.0} GiB there",
                path.display(),
                gib(free),
                gib(needed)
            ),
            "free space there (`docker system prune` removes unused images), or move it",
        )
    } else {
        Outcome::Ok(format!("{} has {:.1} GiB free", path.display(), gib(free)))
    }
}

/// The fields of `docker info --format` [`ENGINE_INFO_FORMAT`] (moby
/// `api/types/system/info.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineInfo {
    /// Memory in bytes.
    pub mem_total: u64,
    /// CPUs.
    pub ncpu: u64,
    /// Where images are stored, as the daemon sees it.
    pub root_dir: PathBuf,
    /// Rootless mode (`name=rootless` among the security options).
    pub rootless: bool,
    /// The cgroup version containers run on (`CgroupVersion`, `"1"` or `"2"`), if reported.
    pub cgroup_version: Option<u32>,
}

/// The format string [`parse_engine_info`] reads.
pub(crate) const ENGINE_INFO_FORMAT: &str =
    "{{.MemTotal}}|{{.NCPU}}|{{.DockerRootDir}}|{{.CgroupVersion}}|{{json .SecurityOptions}}";

/// Parses the output of `docker info --format` [`ENGINE_INFO_FORMAT`].
pub(crate) fn parse_engine_info(text: &str) -> Option<EngineInfo> {
    let mut parts = text.trim().splitn(5, '|');
    let mem_total = parts.next()?.trim().parse().ok()?;
    let ncpu = parts.next()?.trim().parse().ok()?;
    let root_dir = PathBuf::from(parts.next()?.trim());
    let cgroup_version = platform::parse_cgroup_version(parts.next()?);
    let options: Vec<String> =
        serde_json::from_str(parts.next().unwrap_or("[]")).unwrap_or_default();
    // A daemon that reports no memory or CPUs reported nothing (a proxy, an old API).
    if mem_total == 0 || ncpu == 0 {
        return None;
    }
    Some(EngineInfo {
        mem_total,
        ncpu,
        root_dir,
        rootless: options.iter().any(|o| o.contains("name=rootless")),
        cgroup_version,
    })
}

/// Judges `docker -v` output the way kind's provider detection does.
pub(crate) fn judge_docker_cli(version_output: &str) -> Outcome {
    let first = version_output.lines().next().unwrap_or_default().trim();
    if first.starts_with("Docker version") {
        Outcome::Ok(first.to_string())
    } else {
        Outcome::problem(
            format!(
                "`docker -v` printed {first:?}, not \"Docker version …\", so kind will not use it as Docker"
            ),
            "install the Docker CLI, or for podman set KIND_EXPERIMENTAL_PROVIDER=podman",
        )
    }
}

/// Judges the kind binary's reported version.
pub(crate) fn judge_kind_version(path: &Path, output: &str) -> Outcome {
    match kind::parse_kind_version(output) {
        Some(found) => match kind::kind_version_warning(&found) {
            Some(warning) => Outcome::Warning(warning),
            None => Outcome::Ok(format!("{} is kind {found}", path.display())),
        },
        None => Outcome::problem(
            format!(
                "{} printed {:?} for `kind version`",
                path.display(),
                output.trim()
            ),
            "point HAPPY_KIND_BINARY at a kind binary, or unset it to use the pinned kind",
        ),
    }
}

/// Judges `HAPPY_KIND_REGISTRY_AUTH`'s file ([`crate::provision::registry_auth::check`]).
pub(crate) fn judge_registry_auth(path: &Path) -> Outcome {
    use crate::provision::registry_auth;
    match registry_auth::check(path) {
        Err(refused) => Outcome::problem(refused.problem, refused.fix),
        Ok(auth) if !auth.covers_docker_hub() => Outcome::Warning(format!(
            "{} holds credentials for {} but not for Docker Hub, whose anonymous pulls stay \
             limited to 10 an hour",
            auth.path.display(),
            auth.registries.join(", ")
        )),
        Ok(auth) => Outcome::Ok(format!(
            "{} (credentials for {}) is mounted at {} for the node's kubelet",
            auth.path.display(),
            auth.registries.join(", "),
            registry_auth::NODE_PATH
        )),
    }
}

/// Judges whether `port` on 127.0.0.1 can be bound (`bind` is the attempt's outcome).
pub(crate) fn judge_port(port: u16, bind: std::io::Result<()>) -> Outcome {
    match bind {
        Ok(()) => Outcome::Ok(format!("127.0.0.1:{port} is free")),
        Err(e) => Outcome::problem(
            format!("127.0.0.1:{port} (HAPPY_KIND_HOST_PORT) cannot be bound: {e}"),
            "stop what listens there (`lsof -i :PORT`), choose another HAPPY_KIND_HOST_PORT, or unset it",
        ),
    }
}

/// Judges the Kubernetes minor of `image_or_version` against the requested Istio.
pub(crate) fn judge_kubernetes(
    request: &IstioVersionRequest,
    image_or_version: &str,
    fix: &str,
) -> Outcome {
    let version = match request {
        IstioVersionRequest::Pinned => crate::istio::releases::pinned_default(),
        IstioVersionRequest::Exact(v) => v.clone(),
        IstioVersionRequest::Latest | IstioVersionRequest::LatestDev => {
            return Outcome::Ok(format!(
                "{image_or_version}: checked once ISTIO_VERSION is resolved, before the cluster is created"
            ));
        }
    };
    let Some(kube) = support_window::parse_kube_minor(image_or_version) else {
        return Outcome::problem(
            format!("{image_or_version:?} names no Kubernetes version"),
            fix.to_string(),
        );
    };
    let support = support_window::check(&version, kube);
    let line = support_window::describe(&version, kube, &support);
    match support {
        Support::Supported(_) => Outcome::Ok(line),
        Support::Outside(_) => Outcome::problem(line, fix.to_string()),
        Support::Unknown(_) => Outcome::Warning(line),
    }
}

/// Free bytes on the filesystem holding `path` (its nearest existing ancestor).
#[cfg(unix)]
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = rustix::fs::statvfs(existing).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Free bytes are not measured off Unix.
#[cfg(not(unix))]
pub(crate) fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Runs every check for `target`.
pub async fn run(target: Target, settings: &Settings, timeouts: &Timeouts) -> Report {
    let env = EngineEnv::from_process();
    run_with(target, settings, timeouts, &env).await
}

/// [`run`] with an explicit engine environment.
pub(crate) async fn run_with(
    target: Target,
    settings: &Settings,
    timeouts: &Timeouts,
    env: &EngineEnv,
) -> Report {
    let mut report = Report {
        target,
        checks: Vec::new(),
        engine: None,
    };
    let (provider, provider_warning) = docker::provider(env);
    if let (Target::Kind, Some(warning)) = (target, provider_warning) {
        report.push("kind provider", Outcome::Warning(warning));
    }
    let limit = timeouts.request.max(Duration::from_secs(10));
    let runner = Runner::from_lookup(|name| std::env::var(name).ok());
    // The node's Kubernetes, for the cgroup check, and what else to offer against cgroup v1.
    let (node_kube, cgroup_fix) = match target {
        Target::Kind => (
            support_window::parse_kube_minor(&settings.kind_node_image),
            platform::kind_cgroup_v1_fix(),
        ),
        Target::K3s => (
            support_window::parse_kube_minor(crate::provision::k3s::K3S_TAG),
            String::new(),
        ),
    };

    // The engine.
    let engine = docker::find_engine(
        &if target == Target::K3s {
            // KIND_EXPERIMENTAL_PROVIDER is kind's; testcontainers speaks the Docker API.
            EngineEnv {
                kind_provider: None,
                ..env.clone()
            }
        } else {
            env.clone()
        },
        docker::PING_LIMIT,
    )
    .await;
    match &engine {
        Ok(found) => report.push("container engine", Outcome::Ok(found.to_string())),
        Err(reason) => report.push(
            "container engine",
            Outcome::problem(
                reason.clone(),
                "start Docker (or colima, Rancher Desktop, OrbStack, podman …); point DOCKER_HOST or `docker context use` at it; for podman with kind set KIND_EXPERIMENTAL_PROVIDER=podman; or run offline with HAPPY_CLUSTER=sandbox",
            ),
        ),
    }
    if let (Target::K3s, Ok(found)) = (target, &engine)
        && let Some(problem) = docker::testcontainers_mismatch(env, found)
    {
        let (problem, fix) = problem
            .split_once(" Fix: ")
            .map(|(p, f)| (p.to_string(), f.to_string()))
            .unwrap_or((problem, "set DOCKER_HOST".into()));
        report.push("testcontainers endpoint", Outcome::problem(problem, fix));
    }

    // The engine's resources, as the engine reports them.
    let docker_cli = which("docker");
    if provider == Provider::Docker || target == Target::K3s {
        match (&docker_cli, &engine) {
            (Some(cli), Ok(found)) => {
                let mut cmd = Cmd::new(cli, limit).args(["info", "--format", ENGINE_INFO_FORMAT]);
                if let Some(host) = &found.docker_host_for_kind {
                    cmd = cmd.env("DOCKER_HOST", host);
                }
                match cmd.run().await.ok().and_then(|o| parse_engine_info(&o.stdout)) {
                    Some(info) => {
                        report.push("memory", judge_memory(info.mem_total, runner));
                        report.push("CPUs", judge_cpus(info.ncpu));
                        report.push(
                            "cgroup",
                            platform::judge_cgroup(info.cgroup_version, node_kube, &cgroup_fix),
                        );
                        match free_bytes(&info.root_dir).filter(|_| info.root_dir.is_absolute() && info.root_dir.exists()) {
                            Some(free) => report.push(
                                "engine disk",
                                judge_disk("the engine's image store", &info.root_dir, free, ENGINE_DISK_NEEDED),
                            ),
                            None => report.push(
                                "engine disk",
                                Outcome::Warning(format!(
                                    "{} (DockerRootDir) is not on this machine (the engine runs in a VM?); not checked: keep about {} GiB free there",
                                    info.root_dir.display(),
                                    ENGINE_DISK_NEEDED / GIB
                                )),
                            ),
                        }
                        if info.rootless {
                            report.push("rootless", Outcome::Warning(
                                "the engine runs rootless: kind needs cgroup v2 with delegation and the ip_tables, iptable_nat, ip6_tables, ip6table_nat modules loaded, which Istio's istio-init needs too (kind docs rootless.md; README \"Rootless Docker and podman\")".into(),
                            ));
                        }
                    }
                    None => report.push(
                        "memory",
                        Outcome::Warning("`docker info` gave no MemTotal/NCPU; memory, CPUs and the engine's disk not checked".into()),
                    ),
                }
            }
            (_, Err(_)) => report.push(
                "memory",
                Outcome::Warning(
                    "not checked: the engine did not answer (about 8 GB needed)".into(),
                ),
            ),
            (None, _) if target == Target::K3s => report.push(
                "memory",
                Outcome::Warning(
                    "no `docker` CLI to ask the engine's memory; not checked (about 8 GB needed)"
                        .into(),
                ),
            ),
            _ => {}
        }
    } else {
        report.push(
            "memory",
            Outcome::Warning(format!(
                "not checked for {}: give it about 8 GB of memory and 4 CPUs (istio.io platform setup)",
                provider.cli()
            )),
        );
        if let (Ok(_), Some(cli)) = (&engine, which(provider.cli())) {
            report.push(
                "cgroup",
                platform::judge_cgroup(
                    other_engine_cgroup(&provider, &cli, limit).await,
                    node_kube,
                    &cgroup_fix,
                ),
            );
        }
    }
    if let Ok(current) = crate::istio::Platform::current()
        && let Some(note) = platform::judge_architecture(current.arch)
    {
        report.push("architecture", note);
    }
    match free_bytes(&settings.cache_dir) {
        Some(free) => report.push(
            "cache disk",
            judge_disk(
                "HAPPY_CACHE_DIR",
                &settings.cache_dir,
                free,
                CACHE_DISK_NEEDED,
            ),
        ),
        None => report.push(
            "cache disk",
            Outcome::Warning("free space not measured on this OS".into()),
        ),
    }

    match target {
        Target::Kind => {
            kind_checks(
                &mut report,
                settings,
                &provider,
                docker_cli.as_deref(),
                engine.as_ref().ok(),
                limit,
            )
            .await
        }
        Target::K3s => report.push(
            "Kubernetes",
            judge_kubernetes(
                &settings.istio_version,
                crate::provision::k3s::K3S_TAG,
                "choose another ISTIO_VERSION, or run on kind",
            ),
        ),
    }
    report.engine = engine.ok();
    report
}

/// The cgroup version of podman (`podman info --format json`, `host.cgroupVersion`) or
/// nerdctl (`info --format '{{json .}}'`, `CgroupVersion`), read as kind's providers read them
/// (kubernetes-sigs/kind `pkg/cluster/internal/providers/{podman,nerdctl}/provider.go` `info`).
async fn other_engine_cgroup(provider: &Provider, cli: &Path, limit: Duration) -> Option<u32> {
    let (format, pointer) = match provider {
        Provider::Podman => ("json", "/host/cgroupVersion"),
        _ => ("{{json .}}", "/CgroupVersion"),
    };
    let out = Cmd::new(cli, limit)
        .args(["info", "--format", format])
        .run()
        .await
        .ok()?;
    let value: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    platform::parse_cgroup_version(value.pointer(pointer)?.as_str()?)
}

/// What kind will run as: the binary preflight can run now (`None` when the pinned kind is
/// not downloaded yet) and its version (`None` when unknown).
struct KindFound {
    bin: Option<PathBuf>,
    version: Option<String>,
}

async fn kind_checks(
    report: &mut Report,
    settings: &Settings,
    provider: &Provider,
    docker_cli: Option<&Path>,
    engine: Option<&EngineFound>,
    limit: Duration,
) {
    if *provider == Provider::Docker {
        match docker_cli {
            None => report.push(
                "docker CLI",
                Outcome::problem(
                    "kind drives the `docker` CLI, and there is none on PATH",
                    "install the Docker CLI (Docker Desktop, colima and OrbStack bring one), or set KIND_EXPERIMENTAL_PROVIDER=podman for podman",
                ),
            ),
            Some(cli) => {
                let outcome = match Cmd::new(cli, limit).arg("-v").run().await {
                    Ok(out) => judge_docker_cli(&out.stdout),
                    Err(e) => Outcome::problem(format!("`docker -v` failed: {e}"), "repair the Docker CLI installation"),
                };
                report.push("docker CLI", outcome);
            }
        }
    }
    let found = match &settings.kind_binary {
        Some(path) if !is_executable(path) => {
            report.push(
                "kind",
                Outcome::problem(
                    format!(
                        "HAPPY_KIND_BINARY={} is not an executable file",
                        path.display()
                    ),
                    "point it at a kind binary, or unset it to use the pinned kind",
                ),
            );
            KindFound {
                bin: None,
                version: None,
            }
        }
        Some(path) => {
            let (outcome, version) = match Cmd::new(path, limit).arg("version").run().await {
                Ok(out) => (
                    judge_kind_version(path, &out.stdout),
                    kind::parse_kind_version(&out.stdout),
                ),
                Err(e) => (
                    Outcome::problem(
                        format!("HAPPY_KIND_BINARY={} does not run: {e}", path.display()),
                        "point it at a working kind binary, or unset it",
                    ),
                    None,
                ),
            };
            report.push("kind", outcome);
            KindFound {
                bin: version.is_some().then(|| path.clone()),
                version,
            }
        }
        None => {
            let cached = kind::cached_kind(&settings.cache_dir);
            let outcome = match crate::istio::Platform::current() {
                Err(e) => Outcome::problem(
                    format!("no kind release for this platform: {e}"),
                    "install kind yourself and set HAPPY_KIND_BINARY",
                ),
                Ok(_) if cached.is_file() => Outcome::Ok(format!(
                    "pinned kind {} in the cache ({})",
                    kind::KIND_VERSION,
                    cached.display()
                )),
                Ok(platform) => Outcome::Ok(format!(
                    "pinned kind {} is downloaded on first use from {} (sha256 verified)",
                    kind::KIND_VERSION,
                    kind::kind_url(kind::KIND_VERSION, platform)
                )),
            };
            report.push("kind", outcome);
            KindFound {
                bin: is_executable(&cached).then_some(cached),
                version: Some(kind::KIND_VERSION.to_string()),
            }
        }
    };
    if *provider == Provider::Podman
        && let Some(podman) = which("podman")
    {
        // kind reads podman's version the same way (`podman --version`).
        let outcome = match Cmd::new(&podman, limit).arg("--version").run().await {
            Ok(out) => match platform::parse_podman_version(&out.stdout) {
                Some(v) => platform::judge_podman_for_kind(v, found.version.as_deref()),
                None => Outcome::Warning(format!(
                    "`podman --version` printed {:?}; podman ≥ 6 needs kind ≥ v0.33.0",
                    out.stdout.trim()
                )),
            },
            Err(e) => Outcome::Warning(format!("`podman --version` failed: {e}")),
        };
        report.push("podman", outcome);
    }
    // The first command a kind run makes; whatever breaks it (an engine kind cannot drive,
    // podman 6 with an old kind) breaks every kind command, so it is tried here with its output.
    match (&found.bin, engine) {
        // Without an engine it could only repeat the engine's problem.
        (_, None) => {}
        (Some(bin), Some(engine)) => {
            let mut cmd = Cmd::new(bin, limit).args(["get", "clusters"]);
            if let Some(host) = &engine.docker_host_for_kind {
                cmd = cmd.env("DOCKER_HOST", host);
            }
            let result = cmd
                .run()
                .await
                .map(|out| out.stdout)
                .map_err(|e| e.to_string());
            report.push("kind get clusters", platform::judge_kind_list(result));
        }
        (None, Some(_)) if settings.kind_binary.is_none() => report.push(
            "kind get clusters",
            Outcome::Ok(
                "runs first thing after the pinned kind is downloaded; a failure there stops the run with kind's output".into(),
            ),
        ),
        (None, Some(_)) => {}
    }
    if let Some(path) = &settings.kind_registry_auth {
        report.push("registry credentials", judge_registry_auth(path));
    }
    if let Some(port) = settings.kind_host_port {
        let bind = std::net::TcpListener::bind(("127.0.0.1", port)).map(drop);
        report.push("host port", judge_port(port, bind));
    }
    report.push(
        "Kubernetes",
        judge_kubernetes(
            &settings.istio_version,
            &settings.kind_node_image,
            "choose a node image inside the window with HAPPY_KIND_NODE_IMAGE, or another ISTIO_VERSION",
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cpu_and_disk_thresholds() {
        assert!(matches!(
            judge_memory(8 * GIB, Runner::Elsewhere),
            Outcome::Ok(_)
        ));
        // What a VM given 8 GB reports.
        assert!(matches!(
            judge_memory(8_221_000_000, Runner::Elsewhere),
            Outcome::Ok(_)
        ));
        let Outcome::Problem { problem, fix } = judge_memory(4 * GIB, Runner::Elsewhere) else {
            panic!()
        };
        assert!(
            problem.contains("4.0 GiB")
                && fix.contains("8 GB")
                && fix.contains("HAPPY_PREFLIGHT=warn"),
            "{problem} / {fix}"
        );
        // A 7 GB runner (GitHub's private-repository runners of earlier years) reads as less
        // than 7 GiB: the fix names the runner class.
        let Outcome::Problem { fix, .. } = judge_memory(7_000_000_000, Runner::GithubHosted) else {
            panic!()
        };
        assert!(
            fix.contains("GitHub-hosted") && fix.contains("larger runner"),
            "{fix}"
        );
        assert!(matches!(judge_cpus(2), Outcome::Warning(_)));
        assert!(matches!(judge_cpus(4), Outcome::Ok(_)));
        let Outcome::Problem { problem, .. } = judge_disk(
            "HAPPY_CACHE_DIR",
            Path::new("/c"),
            GIB / 2,
            CACHE_DISK_NEEDED,
        ) else {
            panic!()
        };
        assert!(problem.contains("/c has 0.5 GiB free"), "{problem}");
        assert!(matches!(
            judge_disk("x", Path::new("/c"), 20 * GIB, ENGINE_DISK_NEEDED),
            Outcome::Ok(_)
        ));
    }

    #[test]
    fn engine_info_as_docker_prints_it() {
        let info = parse_engine_info(
            "16723177472|8|/var/lib/docker|2|[\"name=seccomp,profile=builtin\",\"name=rootless\",\"name=cgroupns\"]\n",
        )
        .unwrap();
        assert_eq!(
            info,
            EngineInfo {
                mem_total: 16_723_177_472,
                ncpu: 8,
                root_dir: "/var/lib/docker".into(),
                rootless: true,
                cgroup_version: Some(2),
            }
        );
        let v1 = parse_engine_info("1|2|/d|1|null").unwrap();
        assert!(!v1.rootless);
        assert_eq!(v1.cgroup_version, Some(1));
        // An engine that leaves CgroupVersion empty (an old API) is not guessed at.
        assert_eq!(
            parse_engine_info("1|2|/d||null").unwrap().cgroup_version,
            None
        );
        assert_eq!(parse_engine_info("0|0|||null"), None);
        assert_eq!(
            parse_engine_info("Cannot connect to the Docker daemon"),
            None
        );
    }

    #[test]
    fn docker_cli_as_kind_detects_it() {
        assert!(matches!(
            judge_docker_cli("Docker version 28.0.4, build b8034c0\n"),
            Outcome::Ok(_)
        ));
        let Outcome::Problem { fix, .. } = judge_docker_cli("podman version 5.2.0\n") else {
            panic!()
        };
        assert!(fix.contains("KIND_EXPERIMENTAL_PROVIDER=podman"));
    }

    #[test]
    fn kind_version_and_port() {
        let p = Path::new("/usr/local/bin/kind");
        assert!(matches!(
            judge_kind_version(p, "kind v0.33.0 go1.26.7 linux/amd64"),
            Outcome::Ok(_)
        ));
        assert!(matches!(
            judge_kind_version(p, "kind v0.32.0 go1.26 linux/amd64"),
            Outcome::Warning(_)
        ));
        assert!(matches!(
            judge_kind_version(p, "nonsense"),
            Outcome::Problem { .. }
        ));

        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let bind = std::net::TcpListener::bind(("127.0.0.1", port)).map(drop);
        let Outcome::Problem { problem, fix } = judge_port(port, bind) else {
            panic!("a held port must be a problem")
        };
        assert!(problem.contains(&port.to_string()) && fix.contains("HAPPY_KIND_HOST_PORT"));
        drop(held);
        assert!(matches!(judge_port(port, Ok(())), Outcome::Ok(_)));
    }

    #[test]
    fn registry_credentials_are_judged_before_kind_runs() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        // base64("reader:token")
        let hub = write(
            "hub.json",
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "cmVhZGVyOnRva2Vu"}}}"#,
        );
        assert!(matches!(
            judge_registry_auth(&hub),
            Outcome::Ok(text) if text.contains("/var/lib/kubelet/config.json")
        ));
        let quay = write(
            "quay.json",
            r#"{"auths": {"quay.io": {"auth": "cmVhZGVyOnRva2Vu"}}}"#,
        );
        assert!(matches!(
            judge_registry_auth(&quay),
            Outcome::Warning(text) if text.contains("not for Docker Hub")
        ));
        let desktop = write("desktop.json", r#"{"auths": {}, "credsStore": "desktop"}"#);
        let Outcome::Problem { problem, fix } = judge_registry_auth(&desktop) else {
            panic!("a credsStore-only file must be a problem")
        };
        assert!(
            problem.contains("credsStore") && problem.contains("cannot call"),
            "{problem}"
        );
        assert!(
            fix.contains("docker --config") && fix.contains("login"),
            "{fix}"
        );
    }

    #[test]
    fn kubernetes_windows_per_request() {
        let fix = "choose HAPPY_KIND_NODE_IMAGE";
        let exact = |v: &str| IstioVersionRequest::Exact(v.parse().unwrap());
        assert!(matches!(
            judge_kubernetes(&IstioVersionRequest::Pinned, kind::KIND_NODE_IMAGE, fix),
            Outcome::Ok(_)
        ));
        let Outcome::Problem { problem, fix: f } =
            judge_kubernetes(&exact("1.29.8"), "kindest/node:v1.36.1", fix)
        else {
            panic!()
        };
        assert!(problem.contains("OUTSIDE") && f == fix, "{problem}");
        assert!(matches!(
            judge_kubernetes(&exact("1.40.0"), "kindest/node:v1.35.0", fix),
            Outcome::Warning(_)
        ));
        assert!(matches!(
            judge_kubernetes(&IstioVersionRequest::Latest, "kindest/node:v1.35.0", fix),
            Outcome::Ok(text) if text.contains("once ISTIO_VERSION is resolved")
        ));
    }

    #[test]
    fn a_report_lists_every_problem_with_its_fix() {
        let report = Report {
            target: Target::Kind,
            checks: vec![
                Check {
                    name: "container engine",
                    outcome: Outcome::problem("no Docker daemon answered (x)", "start Docker"),
                },
                Check {
                    name: "kind",
                    outcome: Outcome::Ok("pinned".into()),
                },
                Check {
                    name: "host port",
                    outcome: Outcome::problem("127.0.0.1:8080 taken", "free it"),
                },
                Check {
                    name: "CPUs",
                    outcome: Outcome::Warning("2 CPUs".into()),
                },
            ],
            engine: None,
        };
        assert!(!report.passed());
        assert_eq!(report.problems().len(), 2);
        let text = report.render();
        for part in [
            "HAPPY_CLUSTER=kind",
            "PROBLEM  container engine: no Docker daemon answered (x)",
            "fix: start Docker",
            "PROBLEM  host port: 127.0.0.1:8080 taken",
            "fix: free it",
            "ok       kind: pinned",
            "WARNING  CPUs: 2 CPUs",
            "2 problems",
        ] {
            assert!(text.contains(part), "{part:?} missing from\n{text}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn free_space_of_a_path_not_yet_made_is_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(&dir.path().join("not/yet/made")).unwrap();
        assert!(free > 0);
    }

    #[tokio::test]
    async fn without_an_engine_every_problem_is_reported_at_once() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().display().to_string();
        let settings = Settings::from_lookup(|name| match name {
            "HAPPY_CACHE_DIR" => Some(format!("{dir}/cache")),
            "ISTIO_VERSION" => Some("1.29.8".into()),
            "HAPPY_KIND_NODE_IMAGE" => Some("kindest/node:v1.36.1".into()),
            _ => None,
        })
        .unwrap();
        let env = EngineEnv {
            docker_host: Some(format!("unix://{dir}/absent.sock")),
            home: Some(home.path().to_path_buf()),
            ..EngineEnv::default()
        };
        let report = run_with(Target::Kind, &settings, &Timeouts::default(), &env).await;
        let names: Vec<&str> = report.problems().iter().map(|c| c.name).collect();
        assert!(
            names.contains(&"container engine") && names.contains(&"Kubernetes"),
            "{}",
            report.render()
        );
        assert!(report.engine.is_none());
    }

    #[cfg(unix)]
    use crate::provision::docker::test_support::fake_daemon;

    #[cfg(unix)]
    #[tokio::test]
    async fn the_first_kind_command_runs_in_preflight_and_its_failure_is_a_problem() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().display().to_string();
        let sock = home.path().join("docker.sock");
        let daemon = fake_daemon(&sock);
        // A kind that reports its version and fails to list clusters as kind v0.32.0 does on
        // podman 6 (kubernetes-sigs/kind#4201).
        let fake = home.path().join("kind");
        std::fs::write(
            &fake,
            "#!/bin/sh\n\
             case \"$1\" in\n\
             version) echo 'kind v0.33.0 go1.26.7 linux/amd64' ;;\n\
             get) echo 'ERROR: failed to list clusters: command \"podman ps -a\" failed with error: exit status 125' >&2\n\
                  echo 'Command Output: Error: template: ps:1:13: error calling index: cannot index slice/array with type string' >&2\n\
                  exit 1 ;;\n\
             esac\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let settings = Settings::from_lookup(|name| match name {
            "HAPPY_CACHE_DIR" => Some(format!("{dir}/cache")),
            "HAPPY_KIND_BINARY" => Some(fake.display().to_string()),
            _ => None,
        })
        .unwrap();
        let env = EngineEnv {
            docker_host: Some(format!("unix://{}", sock.display())),
            home: Some(home.path().to_path_buf()),
            ..EngineEnv::default()
        };
        let report = run_with(Target::Kind, &settings, &Timeouts::default(), &env).await;
        let text = report.render();
        let check = report
            .checks
            .iter()
            .find(|c| c.name == "kind get clusters")
            .unwrap_or_else(|| panic!("no `kind get clusters` check in\n{text}"));
        let Outcome::Problem { problem, fix } = &check.outcome else {
            panic!("a failing `kind get clusters` must be a problem:\n{text}")
        };
        assert!(
            problem.contains("first command") && problem.contains("exit status 125"),
            "{problem}"
        );
        assert!(fix.contains("kind#4201"), "{fix}");
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.name == "container engine" && matches!(c.outcome, Outcome::Ok(_))),
            "{text}"
        );
        daemon.abort();
    }
}
