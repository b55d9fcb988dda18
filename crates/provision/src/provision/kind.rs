//! kind: the real thing and the nightly target. kind is the pinned release, downloaded into the
//! cache (sha256 verified), unless `HAPPY_KIND_BINARY` names another (its version is then
//! checked). The cluster is created from kind-config.yaml with the pinned node image, its
//! kubeconfig kept in the cache (the user's `~/.kube/config` is never touched), with bounded
//! retries inside one total limit; reused when asked, and deleted at teardown unless
//! `HAPPY_KEEP` keeps it.
//!
//! kind facts (kubernetes-sigs/kind v0.31.0, unchanged on `main` up to 2026-08-21, from which
//! v0.33.0 was cut): `kind create cluster` flags `--name --config --image --retain --wait
//! --kubeconfig` and `kind delete cluster --name --kubeconfig`
//! (`pkg/cmd/kind/{create,delete}/cluster/*.go`); `kind version` prints
//! `kind v0.33.0 go1.x linux/amd64` (`pkg/cmd/kind/version/version.go`); `kind export logs
//! [dir] --name` (`pkg/cmd/kind/export/logs/logs.go`); "node(s) already exist for a cluster
//! with the name" (`pkg/cluster/internal/create/create.go`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::docker::EngineFound;
use super::istio_setup::{IstioSetup, WhenInstalled};
use super::istioctl_handle::{Ending, IstioctlCluster};
use super::{Capabilities, ClusterHandle, ClusterInfo, ClusterKind, kubeconfig};
use crate::download::{Downloader, Expected};
use crate::istio::KubeTarget;
use crate::istio::artifacts::{Arch, Os, Platform};
use crate::istio::support_window;
use crate::process::Cmd;
use crate::settings::{KeepPolicy, Settings};
use crate::timeouts::Timeouts;
use crate::{Error, Result};

pub use crate::kind_pins::{KIND_NODE_IMAGE, KIND_PODMAN6_FIXED, KIND_VERSION};

/// sha256 of kind v0.33.0's release binaries, one per platform the suite downloads. Read off
/// the release's `.sha256sum` files by others, not here (github.com cannot be reached from the
/// machine that wrote this): each digest is identical in many unrelated public install scripts
/// found with the code index (Makefiles, Nix expressions, CI scripts; one states it took them
/// from the release's asset digests in the GitHub API), and no conflicting value was found —
/// the same standard the v0.31.0 pins met. A release without a pin here is verified against
/// its published `.sha256sum`.
const PINNED_DIGESTS: &[(Os, Arch, &str)] = &[
    (
        Os::Linux,
        Arch::Amd64,
        "aee6151561422756b764a4ae28e7f44cda5af5a9eead3cc9985112b1de8d8e0d",
    ),
    (
        Os::Linux,
        Arch::Arm64,
        "20022bee6cfcd5086cb7234d218e3454e6090022f2a8f55d1fa7fcf42c3867a2",
    ),
    (
        Os::MacOs,
        Arch::Amd64,
        "5a99f26f57246dc9319dd294803313197a0f34d33c525b3ea8b655db5916ece0",
    ),
    (
        Os::MacOs,
        Arch::Arm64,
        "0c8c7dbe5e23594a198b786c4bc13dacc101fa6196b0cb0b23a1ca44e61f4b4f",
    ),
];

/// How many times `kind create cluster` is tried, all within `HAPPY_TIMEOUT_CLUSTER_CREATE`.
pub(crate) const CREATE_ATTEMPTS: u32 = 3;

/// Of each attempt's limit, the part kept for kind's node image pull and container start,
/// before its own `--wait` for the control plane begins.
pub(crate) const PULL_MARGIN: Duration = Duration::from_secs(120);

/// Below this much time left, another attempt is not started.
pub(crate) const MIN_ATTEMPT: Duration = Duration::from_secs(60);

/// The download URL of kind's binary.
pub(crate) fn kind_url(version: &str, platform: Platform) -> String {
    format!(
        "https://github.com/kubernetes-sigs/kind/releases/download/{version}/kind-{}",
        platform.go_name()
    )
}

/// What the binary must hash to: pinned, or the release's `.sha256sum`.
pub(crate) fn kind_expected(version: &str, platform: Platform) -> Expected {
    PINNED_DIGESTS
        .iter()
        .find(|(os, arch, _)| {
            version == KIND_VERSION && *os == platform.os && *arch == platform.arch
        })
        .map(|(_, _, digest)| Expected::Digest(digest.to_string()))
        .unwrap_or_else(|| {
            Expected::ChecksumUrl(format!("{}.sha256sum", kind_url(version, platform)))
        })
}

/// Where the pinned kind lives in the cache.
pub(crate) fn cached_kind(cache_dir: &Path) -> PathBuf {
    cache_dir.join("kind").join(KIND_VERSION).join("kind")
}

/// kind-config.yaml of the crate: one control-plane node, no host port.
pub(crate) fn kind_config_path() -> PathBuf {
    crate::repo_root().join("kind-config.yaml")
}

/// The kind config for a run: kind-config.yaml as it is, or with the ingress gateway's NodePort
/// published on `127.0.0.1:<host_port>` (kind docs `configuration.md`, "Extra Port Mappings"),
/// and with registry credentials mounted where the node's kubelet reads them
/// (`extraMounts`, kind docs `private-registries.md`; [`super::registry_auth`]). JSON, which
/// kind's YAML loader reads as YAML.
pub(crate) fn kind_config(
    base_yaml: &str,
    host_port: Option<u16>,
    registry_auth: Option<&super::registry_auth::RegistryAuth>,
) -> Result<String> {
    let mut config: serde_json::Value =
        serde_saphyr::from_str(base_yaml).map_err(|e| happy_claims::Error::Unexpected {
            what: kind_config_path().display().to_string(),
            message: format!("not valid YAML: {e}"),
        })?;
    let no_nodes = || happy_claims::Error::Unexpected {
        what: kind_config_path().display().to_string(),
        message: "it has no nodes".into(),
    };
    if let Some(auth) = registry_auth {
        // Every node pulls images, so every node gets the credentials.
        let nodes = config["nodes"].as_array_mut().ok_or_else(no_nodes)?;
        for node in nodes {
            let mounts = node
                .as_object_mut()
                .ok_or_else(no_nodes)?
                .entry("extraMounts")
                .or_insert_with(|| serde_json::json!([]));
            if let Some(list) = mounts.as_array_mut() {
                list.push(auth.extra_mount());
            }
        }
    }
    if let Some(port) = host_port {
        let node = config["nodes"]
            .as_array_mut()
            .and_then(|nodes| nodes.first_mut())
            .ok_or_else(no_nodes)?;
        node["extraPortMappings"] = serde_json::json!([{
            "containerPort": super::istio_setup::INGRESS_NODE_PORT,
            "hostPort": port,
            // Only loopback: the cluster is not exposed to the network.
            "listenAddress": "127.0.0.1",
            "protocol": "TCP",
        }]);
    }
    serde_json::to_string_pretty(&config).map_err(|e| Error::Other(e.to_string()))
}

/// `kind create cluster` arguments. `--retain` keeps a failed cluster's nodes so their logs can
/// be exported; the suite deletes them itself.
pub(crate) fn create_args(
    name: &str,
    config: &Path,
    image: &str,
    kubeconfig: &Path,
    wait: Duration,
) -> Vec<String> {
    vec![
        "create".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--config".into(),
        config.display().to_string(),
        "--image".into(),
        image.into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--retain".into(),
        "--wait".into(),
        format!("{}s", wait.as_secs().max(1)),
    ]
}

/// `kind delete cluster` arguments.
pub(crate) fn delete_args(name: &str, kubeconfig: &Path) -> Vec<String> {
    vec![
        "delete".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ]
}

/// The kubeconfig context kind writes for a cluster.
pub(crate) fn context_name(name: &str) -> String {
    format!("kind-{name}")
}

/// The kubeconfig file of a cluster, in the cache.
pub fn kubeconfig_path(cache_dir: &Path, name: &str) -> PathBuf {
    cache_dir.join("kube").join(format!("kind-{name}.yaml"))
}

/// True when `kind get clusters` output lists `name`.
pub(crate) fn lists_cluster(output: &str, name: &str) -> bool {
    output.lines().any(|line| line.trim() == name)
}

/// The version in `kind version` output (`kind v0.33.0 go1.26.7 linux/amd64`, or `0.33.0`
/// with `-q`), with its `v`.
pub(crate) fn parse_kind_version(output: &str) -> Option<String> {
    let line = output.lines().find(|l| !l.trim().is_empty())?.trim();
    let word = match line.strip_prefix("kind ") {
        Some(rest) => rest.split_whitespace().next()?,
        None => line.split_whitespace().next()?,
    };
    let bare = word.trim_start_matches('v');
    bare.chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| format!("v{bare}"))
}

/// The known cause of a failed `kind get clusters`, with the fix, from its output.
pub(crate) fn list_failure_cause(output: &str) -> Option<&'static str> {
    output
        .contains("cannot index slice/array with type string")
        .then_some(
            "this is podman ≥ 6 with a kind older than v0.33.0 (kubernetes-sigs/kind#4201, \
             fixed by #4203 in v0.33.0): unset HAPPY_KIND_BINARY to use the pinned kind, point \
             it at kind ≥ v0.33.0, use podman 5.x, or use Docker",
        )
}

/// The warning for a kind that is not the pinned release, or None.
pub(crate) fn kind_version_warning(found: &str) -> Option<String> {
    (found != KIND_VERSION).then(|| {
        format!(
            "HAPPY_KIND_BINARY is kind {found}, not the pinned {KIND_VERSION}; node images are \
             built for a kind release (kind docs quick-start.md), so {KIND_NODE_IMAGE} may not \
             boot with it"
        )
    })
}

/// The two limits of one attempt with `remaining` left of the total: kind's own `--wait` and
/// the process limit (`--wait` plus [`PULL_MARGIN`], at most half the time), or None when too
/// little is left to try.
pub(crate) fn attempt_limits(remaining: Duration) -> Option<(Duration, Duration)> {
    // Whole seconds: `--wait` takes seconds, and the output reads better.
    let remaining = Duration::from_secs(remaining.as_secs());
    if remaining < MIN_ATTEMPT {
        return None;
    }
    let margin = PULL_MARGIN.min(remaining / 2);
    Some((remaining - margin, remaining))
}

/// Why a failed `kind create` would fail again the same way, with what to do; None for
/// failures worth another attempt.
pub(crate) fn deterministic_failure(output: &str) -> Option<&'static str> {
    let text = output.to_ascii_lowercase();
    if text.contains("port is already allocated") || text.contains("address already in use") {
        Some(
            "a host port the kind config maps is taken; free it or choose another HAPPY_KIND_HOST_PORT (or unset it)",
        )
    } else if text.contains("already exist for a cluster with the name") {
        Some(
            "a cluster of that name appeared meanwhile; reuse it with HAPPY_REUSE=1 or choose another HAPPY_KIND_CLUSTER",
        )
    } else if text.contains("invalid reference format") || text.contains("manifest unknown") {
        Some("the node image does not exist; check HAPPY_KIND_NODE_IMAGE")
    } else {
        None
    }
}

/// The likely cause of a failure to pull, when the output shows one (Docker Hub's anonymous
/// pull rate limit answers 429 `toomanyrequests`).
pub(crate) fn pull_hint(output: &str) -> Option<&'static str> {
    let text = output.to_ascii_lowercase();
    (text.contains("toomanyrequests") || text.contains("rate limit")).then_some(
        "Docker Hub's pull rate limit for anonymous users was hit: `docker login` for the host's pulls, HAPPY_KIND_REGISTRY_AUTH for the kind node's (README, \"Docker Hub login\"), or pre-pull the images on the host and `kind load docker-image` them",
    )
}

/// The pinned kind from the cache (downloaded once), or `HAPPY_KIND_BINARY` with its version
/// checked; the second value is a warning for the report.
pub(crate) async fn kind_binary(
    settings: &Settings,
    timeouts: &Timeouts,
) -> Result<(PathBuf, Option<String>)> {
    if let Some(path) = &settings.kind_binary {
        let version = Cmd::new(path, timeouts.request.max(Duration::from_secs(10)))
            .arg("version")
            .run()
            .await
            .map_err(|e| Error::Provision {
                cluster: "kind".into(),
                reason: format!("HAPPY_KIND_BINARY={} does not run: {e}", path.display()),
            })?;
        let warning = match parse_kind_version(&version.stdout) {
            Some(found) => kind_version_warning(&found),
            None => Some(format!(
                "HAPPY_KIND_BINARY={}: `kind version` printed {:?}, not a kind version",
                path.display(),
                version.stdout.trim()
            )),
        };
        return Ok((path.clone(), warning));
    }
    let platform = Platform::current()?;
    let downloader = Downloader::new(&settings.cache_dir, timeouts.download)?;
    let path = downloader
        .fetch_to_cache(
            &kind_url(KIND_VERSION, platform),
            Path::new("kind").join(KIND_VERSION).join("kind"),
            &kind_expected(KIND_VERSION, platform),
        )
        .await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| Error::LocalIo {
                action: "make executable".into(),
                path: path.clone(),
                source,
            },
        )?;
    }
    Ok((path, None))
}

struct KindCli {
    bin: PathBuf,
    name: String,
    kubeconfig: PathBuf,
    /// `DOCKER_HOST` for kind when the engine was found at a socket the CLI would not use.
    docker_host: Option<String>,
}

impl KindCli {
    fn cmd(&self, limit: Duration) -> Cmd {
        let cmd = Cmd::new(&self.bin, limit);
        match &self.docker_host {
            Some(host) => cmd.env("DOCKER_HOST", host),
            None => cmd,
        }
    }

    /// `kind get clusters`, the first kind command of a run: its failure says so, with kind's
    /// output and the known cause when there is one (podman 6 with an old kind).
    async fn exists(&self, limit: Duration) -> Result<bool> {
        match self.cmd(limit).args(["get", "clusters"]).run().await {
            Ok(out) => Ok(lists_cluster(&out.stdout, &self.name)),
            Err(e) => {
                let text = e.to_string();
                let cause = list_failure_cause(&text)
                    .map(|c| format!("\nLikely cause: {c}"))
                    .unwrap_or_default();
                Err(Error::Provision {
                    cluster: format!("kind cluster {}", self.name),
                    reason: format!(
                        "`kind get clusters`, the first kind command, failed: {text}{cause}"
                    ),
                })
            }
        }
    }

    /// Up to [`CREATE_ATTEMPTS`] attempts, all within `total`; a deterministic failure is not
    /// retried. On the last failure the nodes' logs go to `logs_dir`.
    async fn create(
        &self,
        config: &Path,
        image: &str,
        total: Duration,
        delete_limit: Duration,
        logs_dir: &Path,
    ) -> Result<()> {
        let started = Instant::now();
        let mut failures = Vec::new();
        for attempt in 1..=CREATE_ATTEMPTS {
            let remaining = total.saturating_sub(started.elapsed());
            let Some((wait, limit)) = attempt_limits(remaining) else {
                failures.push(format!(
                    "no attempt {attempt}: {remaining:?} left of HAPPY_TIMEOUT_CLUSTER_CREATE={total:?}"
                ));
                break;
            };
            eprintln!(
                "happy-istio: creating kind cluster {} with {image} (attempt {attempt} of {CREATE_ATTEMPTS}, kind waits {wait:?})",
                self.name
            );
            let created = self
                .cmd(limit)
                .args(create_args(
                    &self.name,
                    config,
                    image,
                    &self.kubeconfig,
                    wait,
                ))
                .run()
                .await;
            let error = match created {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if let Some(fix) = deterministic_failure(&error) {
                if !fix.contains("appeared meanwhile") {
                    let _ = self.delete(delete_limit).await;
                }
                return Err(Error::Provision {
                    cluster: format!("kind cluster {}", self.name),
                    reason: format!(
                        "`kind create cluster` failed and would fail again ({fix}): {error}"
                    ),
                });
            }
            failures.push(format!("attempt {attempt}: {error}"));
            if attempt == CREATE_ATTEMPTS || total.saturating_sub(started.elapsed()) < MIN_ATTEMPT {
                self.export_logs(logs_dir, delete_limit).await;
            }
            // A failed create leaves retained nodes that would block the next attempt.
            let _ = self.delete(delete_limit).await;
        }
        let all = failures.join("\n");
        let hint = pull_hint(&all)
            .map(|h| format!("\nLikely cause: {h}"))
            .unwrap_or_default();
        Err(Error::Provision {
            cluster: format!("kind cluster {}", self.name),
            reason: format!(
                "`kind create cluster` did not succeed within HAPPY_TIMEOUT_CLUSTER_CREATE={total:?}; node logs (if any) in {}:\n{all}{hint}",
                logs_dir.display()
            ),
        })
    }

    /// `kind export logs` of the failed cluster, best effort: it documents a failure.
    async fn export_logs(&self, dir: &Path, limit: Duration) {
        let outcome = self
            .cmd(limit)
            .arg("export")
            .arg("logs")
            .arg(dir)
            .args(["--name", &self.name])
            .run()
            .await;
        match outcome {
            Ok(_) => eprintln!("happy-istio: kind node logs in {}", dir.display()),
            Err(e) => eprintln!("happy-istio: kind export logs failed: {e}"),
        }
    }

    async fn delete(&self, limit: Duration) -> Result<()> {
        self.cmd(limit)
            .args(delete_args(&self.name, &self.kubeconfig))
            .run()
            .await
            .map(drop)
    }

    async fn kubeconfig(&self, limit: Duration) -> Result<String> {
        Ok(self
            .cmd(limit)
            .args(["get", "kubeconfig", "--name", &self.name])
            .run()
            .await?
            .stdout)
    }
}

/// How a kind cluster ends: deleted if the suite created it, unless `HAPPY_KEEP` says keep.
struct KindEnding {
    cli: KindCli,
    created: bool,
    keep: KeepPolicy,
    delete_limit: Duration,
}

/// What to tell the reader of a kept cluster.
pub(crate) fn keep_message(name: &str, kubeconfig: &Path) -> String {
    format!(
        "happy-istio: keeping kind cluster {name} (HAPPY_KEEP). Its kubeconfig is not in ~/.kube/config; use it with:\n  export KUBECONFIG={}\nDelete it with: kind delete cluster --name {name} --kubeconfig {}",
        kubeconfig.display(),
        kubeconfig.display()
    )
}

/// Creates (or reuses) the kind cluster and prepares Istio tooling for it. `engine` is the
/// engine preflight found.
pub(super) async fn provision(
    settings: &Settings,
    timeouts: &Timeouts,
    note: Option<String>,
    engine: EngineFound,
) -> Result<Box<dyn ClusterHandle>> {
    let name = settings.kind_cluster.clone();
    let what = format!("kind cluster {name}");
    // The Istio version first: its Kubernetes window decides before anything is created.
    let downloader = Downloader::new(&settings.cache_dir, timeouts.download)?;
    let version = super::istio_setup::resolve_version(settings, &downloader).await?;
    let window_note = kubernetes_window(&version, &settings.kind_node_image)?;
    let (bin, kind_warning) = kind_binary(settings, timeouts).await?;
    let kind_source = match &settings.kind_binary {
        Some(path) => format!("kind from HAPPY_KIND_BINARY={}", path.display()),
        None => format!("kind {KIND_VERSION} (pinned, sha256-verified download)"),
    };
    if let Some(warning) = &kind_warning {
        eprintln!("happy-istio: WARNING: {warning}");
    }
    let kubeconfig_path = kubeconfig_path(&settings.cache_dir, &name);
    let cli = KindCli {
        bin,
        name: name.clone(),
        kubeconfig: kubeconfig_path.clone(),
        docker_host: engine.docker_host_for_kind.clone(),
    };
    let exists = cli
        .exists(timeouts.request.max(Duration::from_secs(30)))
        .await?;
    if exists && !settings.reuse {
        return Err(Error::Provision {
            cluster: what,
            reason: format!(
                "it already exists; set HAPPY_REUSE=1 to reuse it, or delete it with `kind delete cluster --name {name}`"
            ),
        });
    }
    let config_path = settings
        .cache_dir
        .join("kind")
        .join(format!("kind-config-{name}.json"));
    let base = std::fs::read_to_string(kind_config_path()).map_err(|source| Error::LocalIo {
        action: "read".into(),
        path: kind_config_path(),
        source,
    })?;
    let registry_auth = match &settings.kind_registry_auth {
        Some(path) => {
            Some(
                super::registry_auth::check(path).map_err(|refused| Error::Provision {
                    cluster: what.clone(),
                    reason: refused.to_string(),
                })?,
            )
        }
        None => None,
    };
    let config_text = kind_config(&base, settings.kind_host_port, registry_auth.as_ref())?;
    write_file(&config_path, &config_text)?;
    let target = KubeTarget {
        kubeconfig: Some(kubeconfig_path.clone()),
        context: Some(context_name(&name)),
    };
    // Armed from here until the handle exists: an error or an interrupted (dropped)
    // provisioning deletes a cluster this run started to create.
    let mut guard = DeleteOnDrop {
        bin: cli.bin.clone(),
        name: name.clone(),
        kubeconfig: kubeconfig_path.clone(),
        docker_host: cli.docker_host.clone(),
        armed: !exists,
    };
    let logs_dir = settings.report_dir.join(format!("kind-logs-{name}"));
    // Creating the cluster and downloading Istio take minutes each; do both at once, and let
    // the first failure end both (a mistyped ISTIO_VERSION need not wait for the cluster).
    let create = async {
        if exists {
            Ok(())
        } else {
            cli.create(
                &config_path,
                &settings.kind_node_image,
                timeouts.cluster_create,
                timeouts.delete,
                &logs_dir,
            )
            .await
        }
    };
    let prepare = IstioSetup::prepare_version(
        settings,
        timeouts,
        version,
        target,
        WhenInstalled::ReplaceIfOtherVersion,
        settings.kind_host_port.is_some(),
    );
    let rest = async {
        let ((), istio) = tokio::try_join!(create, prepare)?;
        let text = cli
            .kubeconfig(timeouts.request.max(Duration::from_secs(30)))
            .await?;
        kubeconfig::write_private(&kubeconfig_path, &text)?;
        let client = kubeconfig::client_from_yaml(&text, Some(&context_name(&name)), &what).await?;
        let kubernetes_version = super::kubernetes_version(&client).await?;
        Ok::<_, Error>((istio, client, kubernetes_version))
    };
    match rest.await {
        Ok((istio, client, kubernetes_version)) => {
            let mut parts: Vec<String> = note.into_iter().collect();
            if exists {
                parts.push(format!(
                    "reused the existing kind cluster {name} (HAPPY_REUSE=1); its node image is whatever it was created with"
                ));
            }
            parts.push(format!(
                "{kind_source}, node image {}; container engine {engine}",
                settings.kind_node_image
            ));
            if let Some(auth) = &registry_auth {
                parts.push(if exists {
                    format!(
                        "HAPPY_KIND_REGISTRY_AUTH is not applied to the reused cluster {name}: its \
                         nodes have whatever mounts they were created with"
                    )
                } else {
                    format!(
                        "the node pulls with the registry credentials of HAPPY_KIND_REGISTRY_AUTH \
                         (for {}), mounted at {}",
                        auth.registries.join(", "),
                        super::registry_auth::NODE_PATH
                    )
                });
            }
            parts.push(window_note);
            parts.extend(kind_warning);
            guard.armed = false;
            Ok(Box::new(IstioctlCluster {
                client,
                info: ClusterInfo {
                    kind: ClusterKind::Kind,
                    name,
                    kubernetes_version,
                    note: Some(parts.join("; ")),
                },
                capabilities: Capabilities::all(),
                istio,
                ending: Box::new(KindEnding {
                    cli,
                    created: !exists,
                    keep: settings.keep,
                    delete_limit: timeouts.delete,
                }),
            }))
        }
        Err(e) => {
            // Setup failed after the cluster may have been made: it goes, whatever HAPPY_KEEP
            // says (a half-made cluster is nobody's to read).
            if guard.armed {
                guard.armed = false;
                let _ = cli.delete(timeouts.delete).await;
            }
            Err(e)
        }
    }
}

/// The Kubernetes window verdict for the node image: an error when outside (kind is where the
/// suite chooses Kubernetes), else the line for the report.
pub(crate) fn kubernetes_window(
    version: &crate::istio::IstioVersion,
    image: &str,
) -> Result<String> {
    let kube = support_window::parse_kube_minor(image).ok_or_else(|| Error::Provision {
        cluster: "kind".into(),
        reason: format!("the node image {image:?} names no Kubernetes version"),
    })?;
    let support = support_window::check(version, kube);
    let line = support_window::describe(version, kube, &support);
    if support.is_outside() {
        return Err(Error::Provision {
            cluster: "kind".into(),
            reason: format!(
                "{line}; refusing to create the cluster. Choose a node image inside the window with HAPPY_KIND_NODE_IMAGE (default {KIND_NODE_IMAGE}), or another ISTIO_VERSION"
            ),
        });
    }
    if let support_window::Support::Unknown(_) = support {
        eprintln!("happy-istio: WARNING: {line}");
    }
    Ok(line)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::LocalIo {
            action: "create directory".into(),
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::LocalIo {
        action: "write".into(),
        path: path.to_path_buf(),
        source,
    })
}

/// Deletes a cluster whose provisioning did not finish, also when the provisioning future is
/// dropped (Ctrl-C during setup). Drop cannot await, so it runs `kind delete` blocking; that
/// happens only on the interrupted path.
struct DeleteOnDrop {
    bin: PathBuf,
    name: String,
    kubeconfig: PathBuf,
    docker_host: Option<String>,
    armed: bool,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        eprintln!(
            "happy-istio: provisioning stopped; deleting kind cluster {}",
            self.name
        );
        let mut command = std::process::Command::new(&self.bin);
        command
            .args(delete_args(&self.name, &self.kubeconfig))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(host) = &self.docker_host {
            command.env("DOCKER_HOST", host);
        }
        let _ = command.status();
    }
}

impl Ending for KindEnding {
    fn end(self: Box<Self>, any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async move {
            if !self.created {
                eprintln!(
                    "happy-istio: kind cluster {} was reused and is left running (export KUBECONFIG={})",
                    self.cli.name,
                    self.cli.kubeconfig.display()
                );
                return Ok(());
            }
            if self.keep.keep(any_failed) {
                eprintln!("{}", keep_message(&self.cli.name, &self.cli.kubeconfig));
                return Ok(());
            }
            self.cli.delete(self.delete_limit).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_checksums_per_platform() {
        let linux = Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        };
        let linux_arm = Platform {
            os: Os::Linux,
            arch: Arch::Arm64,
        };
        let mac = Platform {
            os: Os::MacOs,
            arch: Arch::Arm64,
        };
        let mac_intel = Platform {
            os: Os::MacOs,
            arch: Arch::Amd64,
        };
        assert_eq!(
            kind_url(KIND_VERSION, linux),
            "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64"
        );
        assert_eq!(
            kind_url(KIND_VERSION, mac),
            "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-darwin-arm64"
        );
        assert_eq!(
            kind_expected(KIND_VERSION, linux),
            Expected::Digest(
                "aee6151561422756b764a4ae28e7f44cda5af5a9eead3cc9985112b1de8d8e0d".into()
            )
        );
        assert_eq!(
            kind_expected(KIND_VERSION, linux_arm),
            Expected::Digest(
                "20022bee6cfcd5086cb7234d218e3454e6090022f2a8f55d1fa7fcf42c3867a2".into()
            )
        );
        assert_eq!(
            kind_expected(KIND_VERSION, mac),
            Expected::Digest(
                "0c8c7dbe5e23594a198b786c4bc13dacc101fa6196b0cb0b23a1ca44e61f4b4f".into()
            )
        );
        assert_eq!(
            kind_expected(KIND_VERSION, mac_intel),
            Expected::Digest(
                "5a99f26f57246dc9319dd294803313197a0f34d33c525b3ea8b655db5916ece0".into()
            )
        );
        // A pinned digest belongs to one version only; another is checked against its
        // release's published checksum.
        assert_eq!(
            kind_expected("v0.31.0", mac),
            Expected::ChecksumUrl(
                "https://github.com/kubernetes-sigs/kind/releases/download/v0.31.0/kind-darwin-arm64.sha256sum".into()
            )
        );
    }

    #[test]
    fn command_lines_keep_the_users_kubeconfig_alone() {
        let kubeconfig = Path::new("/c/kube/kind-happy-istio.yaml");
        assert_eq!(
            create_args(
                "happy-istio",
                Path::new("/c/kind/kind-config-happy-istio.json"),
                KIND_NODE_IMAGE,
                kubeconfig,
                Duration::from_secs(480)
            )
            .join(" "),
            format!(
                "create cluster --name happy-istio --config /c/kind/kind-config-happy-istio.json \
                 --image {KIND_NODE_IMAGE} --kubeconfig /c/kube/kind-happy-istio.yaml --retain --wait 480s"
            )
        );
        assert_eq!(
            delete_args("x", kubeconfig).join(" "),
            "delete cluster --name x --kubeconfig /c/kube/kind-happy-istio.yaml"
        );
        assert_eq!(context_name("happy-istio"), "kind-happy-istio");
        assert_eq!(
            kubeconfig_path(Path::new("/c"), "happy-istio"),
            PathBuf::from("/c/kube/kind-happy-istio.yaml")
        );
        let message = keep_message("happy-istio", kubeconfig);
        assert!(
            message.contains("export KUBECONFIG=/c/kube/kind-happy-istio.yaml")
                && message.contains("--kubeconfig /c/kube/kind-happy-istio.yaml"),
            "{message}"
        );
    }

    #[test]
    fn the_node_image_is_kind_v0_33_0s_kubernetes_1_35_pinned_by_digest() {
        assert!(KIND_NODE_IMAGE.starts_with("kindest/node:v1.35.8@sha256:"));
        assert_eq!(KIND_NODE_IMAGE.rsplit(':').next().unwrap().len(), 64);
    }

    #[test]
    fn kind_versions() {
        assert_eq!(
            parse_kind_version("kind v0.33.0 go1.26.7 linux/amd64\n").as_deref(),
            Some("v0.33.0")
        );
        assert_eq!(parse_kind_version("0.32.0\n").as_deref(), Some("v0.32.0"));
        assert_eq!(
            parse_kind_version("kind v0.32.0-alpha.12+abcdef go1.26 darwin/arm64").as_deref(),
            Some("v0.32.0-alpha.12+abcdef")
        );
        assert_eq!(parse_kind_version("usage: whatever"), None);
        assert_eq!(kind_version_warning("v0.33.0"), None);
        let warning = kind_version_warning("v0.32.0").unwrap();
        assert!(
            warning.contains("v0.32.0") && warning.contains(KIND_VERSION),
            "{warning}"
        );
    }

    #[test]
    fn attempts_share_one_total_limit() {
        // The default 10 minutes: kind waits 8, the process may take 10.
        assert_eq!(
            attempt_limits(Duration::from_secs(600)),
            Some((Duration::from_secs(480), Duration::from_secs(600)))
        );
        // Little left: half of it is the pull margin.
        assert_eq!(
            attempt_limits(Duration::from_secs(100)),
            Some((Duration::from_secs(50), Duration::from_secs(100)))
        );
        assert_eq!(attempt_limits(Duration::from_secs(59)), None);
        // Whatever is left, an attempt never outlives it.
        for secs in [60, 61, 240, 241, 3600] {
            let (wait, limit) = attempt_limits(Duration::from_secs(secs)).unwrap();
            assert!(wait < limit && limit == Duration::from_secs(secs));
        }
    }

    #[test]
    fn deterministic_failures_are_named_and_others_retried() {
        let port = "ERROR: failed to create cluster: command \"docker run ...\" failed with error: exit status 125\n\
                    docker: Error response from daemon: driver failed programming external connectivity on endpoint happy-istio-control-plane: Bind for 127.0.0.1:8080 failed: port is already allocated.";
        assert!(
            deterministic_failure(port)
                .unwrap()
                .contains("HAPPY_KIND_HOST_PORT")
        );
        let exists = "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"happy-istio\"";
        assert!(
            deterministic_failure(exists)
                .unwrap()
                .contains("HAPPY_REUSE")
        );
        assert!(
            deterministic_failure("docker: invalid reference format.")
                .unwrap()
                .contains("HAPPY_KIND_NODE_IMAGE")
        );
        assert_eq!(
            deterministic_failure(
                "ERROR: failed to create cluster: timed out waiting for the condition"
            ),
            None
        );
        assert!(
            pull_hint("Error response from daemon: toomanyrequests: You have reached your unauthenticated pull rate limit")
                .unwrap()
                .contains("kind load docker-image")
        );
        assert_eq!(pull_hint("context deadline exceeded"), None);
    }

    #[test]
    fn outside_the_window_is_refused_before_creating() {
        let istio: crate::istio::IstioVersion = "1.29.8".parse().unwrap();
        let err = kubernetes_window(&istio, "kindest/node:v1.36.1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OUTSIDE")
                && err.contains("HAPPY_KIND_NODE_IMAGE")
                && err.contains("refusing"),
            "{err}"
        );
        let line = kubernetes_window(&istio, KIND_NODE_IMAGE).unwrap();
        assert!(line.contains("supported"), "{line}");
    }

    #[cfg(unix)]
    #[test]
    fn an_unfinished_provisioning_deletes_its_cluster_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("kind");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$* DOCKER_HOST=$DOCKER_HOST\" >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

        drop(DeleteOnDrop {
            bin: fake.clone(),
            name: "kept".into(),
            kubeconfig: PathBuf::from("/k"),
            docker_host: None,
            armed: false,
        });
        assert!(!log.exists(), "a disarmed guard deletes nothing");
        drop(DeleteOnDrop {
            bin: fake,
            name: "half-made".into(),
            kubeconfig: PathBuf::from("/k"),
            docker_host: Some("unix:///rd.sock".into()),
            armed: true,
        });
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "delete cluster --name half-made --kubeconfig /k DOCKER_HOST=unix:///rd.sock\n"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_deterministic_failure_is_tried_once_and_a_flaky_one_within_the_total() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("kind");
        let script = |body: &str| {
            std::fs::write(
                &fake,
                format!(
                    "#!/bin/sh\necho \"$1 $2\" >> {}\n[ \"$1\" = create ] || exit 0\n{body}\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let cli = KindCli {
            bin: fake.clone(),
            name: "t".into(),
            kubeconfig: dir.path().join("kubeconfig"),
            docker_host: None,
        };
        let config = dir.path().join("config.json");
        script("echo 'Bind for 127.0.0.1:8080 failed: port is already allocated' >&2; exit 1");
        let err = cli
            .create(
                &config,
                KIND_NODE_IMAGE,
                Duration::from_secs(600),
                Duration::from_secs(5),
                dir.path(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("would fail again"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "create cluster\ndelete cluster\n",
            "one attempt, then the retained nodes are deleted"
        );

        std::fs::remove_file(&log).unwrap();
        script("echo 'ERROR: failed to create cluster: timed out' >&2; exit 1");
        let err = cli
            .create(
                &config,
                KIND_NODE_IMAGE,
                Duration::from_secs(600),
                Duration::from_secs(5),
                dir.path(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("attempt 3: ") && err.contains("HAPPY_TIMEOUT_CLUSTER_CREATE"),
            "{err}"
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls.matches("create cluster").count(), 3, "{calls}");
        assert_eq!(calls.matches("export logs").count(), 1, "{calls}");

        // A total too small for even one attempt starts none.
        std::fs::remove_file(&log).unwrap();
        let err = cli
            .create(
                &config,
                KIND_NODE_IMAGE,
                Duration::from_secs(30),
                Duration::from_secs(5),
                dir.path(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no attempt 1"), "{err}");
        assert!(!log.exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_failing_first_kind_command_names_itself_and_the_podman_6_cause() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("kind");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'Command Output: Error: template: ps:1:13: executing \"ps\" at <index .Labels \"io.x-k8s.kind.cluster\">: error calling index: cannot index slice/array with type string' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cli = KindCli {
            bin: fake,
            name: "t".into(),
            kubeconfig: dir.path().join("kubeconfig"),
            docker_host: None,
        };
        let err = cli
            .exists(Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`kind get clusters`, the first kind command, failed")
                && err.contains("cannot index slice/array")
                && err.contains("kind#4201")
                && err.contains("v0.33.0"),
            "{err}"
        );
    }

    #[test]
    fn cluster_listing() {
        assert!(lists_cluster("kind\nhappy-istio\n", "happy-istio"));
        assert!(!lists_cluster("happy-istio-2\n", "happy-istio"));
        assert!(!lists_cluster("No kind clusters found.\n", "happy-istio"));
    }

    #[test]
    fn registry_credentials_are_mounted_where_every_nodes_kubelet_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // base64("reader:dckr_pat_example")
        std::fs::write(
            &path,
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "cmVhZGVyOmRja3JfcGF0X2V4YW1wbGU="}}}"#,
        )
        .unwrap();
        let auth = super::super::registry_auth::check(&path).unwrap();
        let text = std::fs::read_to_string(kind_config_path()).unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&kind_config(&text, Some(18080), Some(&auth)).unwrap()).unwrap();
        let node = &config["nodes"][0];
        assert_eq!(
            node["extraMounts"],
            serde_json::json!([{
                "containerPath": "/var/lib/kubelet/config.json",
                "hostPath": path.display().to_string(),
                "readOnly": true,
            }])
        );
        // The port mapping still comes with it.
        assert_eq!(node["extraPortMappings"][0]["hostPort"], 18080);
        // A config with workers gives each node the mount, keeping mounts it already has.
        let two = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n  - role: worker\n    extraMounts:\n      - containerPath: /data\n        hostPath: /tmp/data\n";
        let config: serde_json::Value =
            serde_json::from_str(&kind_config(two, None, Some(&auth)).unwrap()).unwrap();
        assert_eq!(
            config["nodes"][0]["extraMounts"].as_array().unwrap().len(),
            1
        );
        let worker = config["nodes"][1]["extraMounts"].as_array().unwrap();
        assert_eq!(worker.len(), 2);
        assert_eq!(worker[0]["containerPath"], "/data");
        assert_eq!(worker[1]["containerPath"], "/var/lib/kubelet/config.json");
        // The generated config names the file; it never holds the credentials.
        let generated = kind_config(&text, None, Some(&auth)).unwrap();
        assert!(!generated.contains("cmVhZGVy"), "{generated}");
    }

    #[test]
    fn the_kind_config_maps_no_host_port_unless_asked() {
        let text = std::fs::read_to_string(kind_config_path()).unwrap();
        let plain: serde_json::Value =
            serde_json::from_str(&kind_config(&text, None, None).unwrap()).unwrap();
        assert_eq!(plain["kind"], "Cluster");
        assert_eq!(plain["apiVersion"], "kind.x-k8s.io/v1alpha4");
        let nodes = plain["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["role"], "control-plane");
        assert!(nodes[0].get("extraPortMappings").is_none());
        assert!(nodes[0].get("extraMounts").is_none());

        let mapped: serde_json::Value =
            serde_json::from_str(&kind_config(&text, Some(18080), None).unwrap()).unwrap();
        let mapping = &mapped["nodes"][0]["extraPortMappings"][0];
        assert_eq!(mapping["hostPort"], 18080);
        assert_eq!(mapping["listenAddress"], "127.0.0.1");
        assert_eq!(
            mapping["containerPort"],
            super::super::istio_setup::INGRESS_NODE_PORT
        );
    }
}
