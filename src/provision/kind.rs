//! kind: the real thing and the nightly target. The `kind` binary comes from PATH or is
//! downloaded (pinned version, sha256 verified) into the cache; the cluster is created from
//! kind-config.yaml with bounded retries, reused when asked, and deleted at teardown unless
//! `HAPPY_KEEP` keeps it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::command::{Cmd, which};
use super::istio_setup::{IstioSetup, WhenInstalled};
use super::istioctl_cluster::{Ending, IstioctlCluster};
use super::{Capabilities, ClusterHandle, ClusterInfo, ClusterKind, kubeconfig};
use crate::download::{Downloader, Expected};
use crate::istio::KubeTarget;
use crate::istio::artifacts::{Arch, Os, Platform};
use crate::settings::{KeepPolicy, Settings};
use crate::timeouts::Timeouts;
use crate::{Error, Result};

/// The kind release downloaded when `kind` is not on PATH.
pub const KIND_VERSION: &str = "v0.31.0";

/// Digests pinned in code where they could be confirmed independently (linux/amd64 of
/// v0.31.0, the same digest in several public install scripts). Other platforms are verified
/// against the release's published `.sha256sum`.
const PINNED_DIGESTS: &[(Os, Arch, &str)] = &[(
    Os::Linux,
    Arch::Amd64,
    "eb244cbafcc157dff60cf68693c14c9a75c4e6e6fedaf9cd71c58117cb93e3fa",
)];

/// How many times `kind create cluster` is tried.
pub const CREATE_ATTEMPTS: u32 = 3;

/// The download URL of kind's binary.
pub fn kind_url(version: &str, platform: Platform) -> String {
    format!(
        "https://github.com/kubernetes-sigs/kind/releases/download/{version}/kind-{}",
        platform.go_name()
    )
}

/// What the binary must hash to: pinned, or the release's `.sha256sum`.
pub fn kind_expected(version: &str, platform: Platform) -> Expected {
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

/// kind-config.yaml of the crate.
pub fn kind_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kind-config.yaml")
}

/// `kind create cluster` arguments; `--wait` lets kind wait for the control plane itself.
pub fn create_args(name: &str, config: &Path, wait: Duration) -> Vec<String> {
    vec![
        "create".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--config".into(),
        config.display().to_string(),
        "--wait".into(),
        format!("{}s", wait.as_secs().max(1)),
    ]
}

/// `kind delete cluster` arguments.
pub fn delete_args(name: &str) -> Vec<String> {
    ["delete", "cluster", "--name", name]
        .map(String::from)
        .to_vec()
}

/// The kubeconfig context kind writes for a cluster.
pub fn context_name(name: &str) -> String {
    format!("kind-{name}")
}

/// True when `kind get clusters` output lists `name`.
pub fn lists_cluster(output: &str, name: &str) -> bool {
    output.lines().any(|line| line.trim() == name)
}

/// kind from PATH, else the pinned release from the cache (downloaded once).
pub async fn kind_binary(cache_dir: &Path, timeouts: &Timeouts) -> Result<PathBuf> {
    if let Some(path) = which("kind") {
        return Ok(path);
    }
    let platform = Platform::current()?;
    let downloader = Downloader::new(cache_dir, timeouts.download)?;
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
    Ok(path)
}

struct KindCli {
    bin: PathBuf,
    name: String,
}

impl KindCli {
    async fn exists(&self, limit: Duration) -> Result<bool> {
        let out = Cmd::new(&self.bin, limit)
            .args(["get", "clusters"])
            .run()
            .await?;
        Ok(lists_cluster(&out.stdout, &self.name))
    }

    async fn create(&self, timeouts: &Timeouts) -> Result<()> {
        let config = kind_config_path();
        let mut last = None;
        for attempt in 1..=CREATE_ATTEMPTS {
            eprintln!(
                "happy-istio: creating kind cluster {} (attempt {attempt} of {CREATE_ATTEMPTS})",
                self.name
            );
            let created = Cmd::new(&self.bin, timeouts.cluster_create)
                .args(create_args(&self.name, &config, timeouts.cluster_create))
                .run()
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(e) => {
                    // A failed create can leave a half cluster that blocks the next attempt.
                    let _ = self.delete(timeouts.delete).await;
                    last = Some(e);
                }
            }
        }
        Err(Error::Provision {
            cluster: format!("kind cluster {}", self.name),
            reason: format!(
                "`kind create cluster` failed {CREATE_ATTEMPTS} times; last: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        })
    }

    async fn delete(&self, limit: Duration) -> Result<()> {
        Cmd::new(&self.bin, limit)
            .args(delete_args(&self.name))
            .run()
            .await
            .map(drop)
    }

    async fn kubeconfig(&self, limit: Duration) -> Result<String> {
        Ok(Cmd::new(&self.bin, limit)
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

/// Creates (or reuses) the kind cluster and prepares Istio tooling for it.
pub(super) async fn provision(
    settings: &Settings,
    timeouts: &Timeouts,
    note: Option<String>,
) -> Result<Box<dyn ClusterHandle>> {
    super::require_docker(ClusterKind::Kind).await?;
    let name = settings.kind_cluster.clone();
    let cli = KindCli {
        bin: kind_binary(&settings.cache_dir, timeouts).await?,
        name: name.clone(),
    };
    let what = format!("kind cluster {name}");
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
    let kubeconfig_path = settings
        .cache_dir
        .join("kube")
        .join(format!("kind-{name}.yaml"));
    let target = KubeTarget {
        kubeconfig: Some(kubeconfig_path.clone()),
        context: Some(context_name(&name)),
    };
    // Armed from here until the handle exists: an error or an interrupted (dropped)
    // provisioning deletes a cluster this run started to create.
    let mut guard = DeleteOnDrop {
        bin: cli.bin.clone(),
        name: name.clone(),
        armed: !exists && !settings.keep.keep(true),
    };
    // Creating the cluster and downloading Istio take minutes each; do both at once.
    let create = async {
        if exists {
            Ok(())
        } else {
            cli.create(timeouts).await
        }
    };
    let prepare = IstioSetup::prepare(
        settings,
        timeouts,
        target,
        WhenInstalled::ReplaceIfOtherVersion,
        true,
    );
    let (created, prepared) = tokio::join!(create, prepare);
    let rest = async {
        created?;
        let istio = prepared?;
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
            let note = match (note, exists) {
                (note, false) => note,
                (Some(note), true) => Some(format!(
                    "{note}; reused the existing kind cluster {name} (HAPPY_REUSE=1)"
                )),
                (None, true) => Some(format!(
                    "reused the existing kind cluster {name} (HAPPY_REUSE=1)"
                )),
            };
            guard.armed = false;
            Ok(Box::new(IstioctlCluster {
                client,
                info: ClusterInfo {
                    kind: ClusterKind::Kind,
                    name,
                    kubernetes_version,
                    note,
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
            // Setup failed after the cluster may have been made: treat it like a failed run.
            if guard.armed {
                guard.armed = false;
                let _ = cli.delete(timeouts.delete).await;
            }
            Err(e)
        }
    }
}

/// Deletes a cluster whose provisioning did not finish, also when the provisioning future is
/// dropped (Ctrl-C during setup). Drop cannot await, so it runs `kind delete` blocking; that
/// happens only on the interrupted path.
struct DeleteOnDrop {
    bin: PathBuf,
    name: String,
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
        let _ = std::process::Command::new(&self.bin)
            .args(delete_args(&self.name))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Ending for KindEnding {
    fn end(self: Box<Self>, any_failed: bool) -> BoxFuture<'static, Result<()>> {
        async move {
            if !self.created {
                eprintln!("happy-istio: kind cluster {} was reused and is left running", self.cli.name);
                return Ok(());
            }
            if self.keep.keep(any_failed) {
                eprintln!(
                    "happy-istio: keeping kind cluster {} (HAPPY_KEEP); delete it with: kind delete cluster --name {}",
                    self.cli.name, self.cli.name
                );
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
        let mac = Platform {
            os: Os::MacOs,
            arch: Arch::Arm64,
        };
        assert_eq!(
            kind_url(KIND_VERSION, linux),
            "https://github.com/kubernetes-sigs/kind/releases/download/v0.31.0/kind-linux-amd64"
        );
        assert_eq!(
            kind_expected(KIND_VERSION, linux),
            Expected::Digest(
                "eb244cbafcc157dff60cf68693c14c9a75c4e6e6fedaf9cd71c58117cb93e3fa".into()
            )
        );
        assert_eq!(
            kind_expected(KIND_VERSION, mac),
            Expected::ChecksumUrl(
                "https://github.com/kubernetes-sigs/kind/releases/download/v0.31.0/kind-darwin-arm64.sha256sum".into()
            )
        );
        // A pinned digest belongs to one version only.
        assert!(matches!(
            kind_expected("v0.30.0", linux),
            Expected::ChecksumUrl(_)
        ));
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            create_args(
                "happy-istio",
                Path::new("/w/kind-config.yaml"),
                Duration::from_secs(600)
            )
            .join(" "),
            "create cluster --name happy-istio --config /w/kind-config.yaml --wait 600s"
        );
        assert_eq!(delete_args("x").join(" "), "delete cluster --name x");
        assert_eq!(context_name("happy-istio"), "kind-happy-istio");
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
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

        drop(DeleteOnDrop {
            bin: fake.clone(),
            name: "kept".into(),
            armed: false,
        });
        assert!(!log.exists(), "a disarmed guard deletes nothing");
        drop(DeleteOnDrop {
            bin: fake,
            name: "half-made".into(),
            armed: true,
        });
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "delete cluster --name half-made\n"
        );
    }

    #[test]
    fn cluster_listing() {
        assert!(lists_cluster("kind\nhappy-istio\n", "happy-istio"));
        assert!(!lists_cluster("happy-istio-2\n", "happy-istio"));
        assert!(!lists_cluster("No kind clusters found.\n", "happy-istio"));
    }

    #[test]
    fn kind_config_has_one_node_mapping_the_ingress_node_port_to_8080() {
        let text = std::fs::read_to_string(kind_config_path()).unwrap();
        let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(config["kind"], "Cluster");
        assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
        let nodes = config["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["role"], "control-plane");
        let mappings = nodes[0]["extraPortMappings"].as_array().unwrap();
        let mapping = mappings
            .iter()
            .find(|m| m["hostPort"] == 8080)
            .expect("host port 8080 is mapped");
        assert_eq!(
            mapping["containerPort"],
            super::super::istio_setup::INGRESS_NODE_PORT
        );
    }
}
