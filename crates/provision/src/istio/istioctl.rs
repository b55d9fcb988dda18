//! istioctl: fetched once per version into the cache (from the release archive's `bin/`, which
//! also brings `samples/addons`), and run with arguments built by pure functions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::artifacts::{ArchiveSource, CachedRelease, Platform, archive_sources, first_that_works};
use super::version::IstioVersion;
use crate::download::{Downloader, Expected, extract_tar_gz};
use crate::process::Cmd;
use crate::{Error, Result};

/// Which cluster istioctl talks to. Empty means its defaults (`$KUBECONFIG`, current context).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
}

impl KubeTarget {
    /// The global flags selecting the cluster.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(path) = &self.kubeconfig {
            flags.push("--kubeconfig".into());
            flags.push(path.display().to_string());
        }
        if let Some(context) = &self.context {
            flags.push("--context".into());
            flags.push(context.clone());
        }
        flags
    }
}

/// The workshop's install: demo profile, privileged proxies (so tcpdump works in istio-proxy),
/// and, when given, the image hub as `--set hub=<hub>` (see [`crate::istio::hub`] for why a
/// release names `docker.io/istio` and how istioctl takes it). `--readiness-timeout` (istio/istio `operator/cmd/mesh/install.go`, default `300*time.Second`,
/// same in 1.29.0, 1.30.0 and HEAD; on expiry `operator/pkg/install/install.go` fails the
/// command) is set from the suite's own limit, so a slow image pull is bounded by
/// `HAPPY_TIMEOUT_ISTIO_INSTALL` and not by istioctl's 5 minutes.
pub(crate) fn install_args(
    target: &KubeTarget,
    readiness: Duration,
    hub: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "install",
        "-y",
        "--set",
        "profile=demo",
        "--set",
        "values.global.proxy.privileged=true",
    ]
    .map(String::from)
    .to_vec();
    if let Some(hub) = hub {
        args.push("--set".into());
        args.push(format!("hub={hub}"));
    }
    args.push("--readiness-timeout".into());
    args.push(format!("{}s", readiness.as_secs().max(1)));
    args.extend(target.flags());
    args
}

/// istioctl's readiness wait within the install limit: the limit less a margin (a tenth, at
/// least 30 s) for istioctl to apply the manifests before it waits and to report a timeout
/// before the suite kills it.
pub(crate) fn readiness_timeout(install_limit: Duration) -> Duration {
    let margin = (install_limit / 10).max(Duration::from_secs(30));
    install_limit
        .saturating_sub(margin)
        .max(Duration::from_secs(1))
}

/// Manual injection of a manifest read from stdin.
pub(crate) fn kube_inject_args(target: &KubeTarget) -> Vec<String> {
    let mut args: Vec<String> = ["kube-inject", "-f", "-"].map(String::from).to_vec();
    args.extend(target.flags());
    args
}

/// `proxy-config <what> <pod>.<namespace> -o json`; `what` is e.g. `all`, `cluster`, `listener`.
pub fn proxy_config_args(
    target: &KubeTarget,
    what: &str,
    namespace: &str,
    pod: &str,
) -> Vec<String> {
    let mut args = vec![
        "proxy-config".to_string(),
        what.to_string(),
        format!("{pod}.{namespace}"),
        "-o".into(),
        "json".into(),
    ];
    args.extend(target.flags());
    args
}

/// An istioctl binary of a known version, aimed at one cluster.
#[derive(Debug, Clone)]
pub struct Istioctl {
    path: PathBuf,
    version: IstioVersion,
    target: KubeTarget,
    limit: Duration,
}

impl Istioctl {
    /// Wraps a binary; `limit` bounds each call but install (see [`Istioctl::install`]).
    pub fn new(
        path: impl Into<PathBuf>,
        version: IstioVersion,
        target: KubeTarget,
        limit: Duration,
    ) -> Self {
        Self {
            path: path.into(),
            version,
            target,
            limit,
        }
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its version.
    pub fn version(&self) -> &IstioVersion {
        &self.version
    }

    /// The cluster it talks to.
    pub fn target(&self) -> &KubeTarget {
        &self.target
    }

    /// `istioctl install` of the workshop's profile from `hub` (None: istioctl's own), bounded
    /// by `limit` (the timeout table's `istio_install`). When `abort` finishes first (a watch
    /// saw a control-plane pod that cannot start), istioctl is killed and reaped and `abort`'s
    /// error is the result.
    pub async fn install(
        &self,
        limit: Duration,
        hub: Option<&str>,
        abort: impl Future<Output = crate::Error>,
    ) -> Result<()> {
        Cmd::new(&self.path, limit)
            .args(install_args(&self.target, readiness_timeout(limit), hub))
            .run_until(abort)
            .await
            .map(drop)
    }

    /// `istioctl kube-inject -f -`: the manifest with sidecars added.
    pub async fn kube_inject(&self, yaml: &str) -> Result<String> {
        Ok(Cmd::new(&self.path, self.limit)
            .args(kube_inject_args(&self.target))
            .stdin(yaml)
            .run()
            .await?
            .stdout)
    }

    /// `istioctl proxy-config <what>` of a pod, as JSON text.
    pub async fn proxy_config(&self, what: &str, namespace: &str, pod: &str) -> Result<String> {
        Ok(Cmd::new(&self.path, self.limit)
            .args(proxy_config_args(&self.target, what, namespace, pod))
            .run()
            .await?
            .stdout)
    }
}

/// Makes sure the release archive of `version` is downloaded (checksum verified) and unpacked
/// in the cache; returns its paths. The places it is published are tried in order
/// ([`archive_sources`]); the error names each one tried. The unpacked tree appears only
/// complete: it is unpacked next to its final place and renamed.
pub(crate) async fn ensure_release(
    downloader: &Downloader,
    version: &IstioVersion,
    platform: Platform,
) -> Result<CachedRelease> {
    ensure_release_from(
        downloader,
        version,
        platform,
        &archive_sources(version, platform),
    )
    .await
}

/// [`ensure_release`] from explicit sources (tests serve a release locally).
pub(crate) async fn ensure_release_from(
    downloader: &Downloader,
    version: &IstioVersion,
    platform: Platform,
    sources: &[ArchiveSource],
) -> Result<CachedRelease> {
    let cached = CachedRelease::new(downloader.cache_dir(), version, platform);
    if cached.istioctl().is_file() {
        return Ok(cached);
    }
    let what = format!("the Istio {version} release archive");
    let (archive, url) = first_that_works(
        &what,
        sources,
        |source| source.url.as_str(),
        |source| async move {
            let path = downloader
                .fetch_to_cache(
                    &source.url,
                    PathBuf::from("downloads").join(&source.file_name),
                    &Expected::ChecksumUrl(source.checksum_url.clone()),
                )
                .await?;
            Ok((path, source.url.clone()))
        },
    )
    .await?;
    let archive_path = archive.clone();
    let unpack_dir = cached.unpack_dir.clone();
    let staging =
        unpack_dir.with_file_name(format!(".{}.unpacking-{}", version, std::process::id()));
    let task_staging = staging.clone();
    let finished_istioctl = cached.istioctl();
    let unpacked = tokio::task::spawn_blocking(move || -> Result<()> {
        let _ = std::fs::remove_dir_all(&task_staging);
        extract_tar_gz(&archive, &task_staging)?;
        if finished_istioctl.is_file() {
            // Another run on the same cache finished first, and may be running its istioctl:
            // keep its tree, drop ours.
            let _ = std::fs::remove_dir_all(&task_staging);
            return Ok(());
        }
        if unpack_dir.exists() {
            // A half tree from an older, interrupted layout; the staged one replaces it.
            std::fs::remove_dir_all(&unpack_dir).map_err(|source| Error::LocalIo {
                action: "remove stale".into(),
                path: unpack_dir.clone(),
                source,
            })?;
        }
        std::fs::rename(&task_staging, &unpack_dir).map_err(|source| Error::LocalIo {
            action: format!(
                "move unpacked release into place as {}",
                unpack_dir.display()
            ),
            path: task_staging.clone(),
            source,
        })
    })
    .await
    .map_err(|e| Error::Other(format!("unpacking {url} panicked or was cancelled: {e}")))?;
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if !cached.istioctl().is_file() {
        return Err(Error::Archive {
            path: archive_path,
            reason: format!("it has no {}", cached.istioctl().display()),
        });
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_target() -> KubeTarget {
        KubeTarget {
            kubeconfig: Some(PathBuf::from("/c/kubeconfig-happy-istio")),
            context: Some("kind-happy-istio".into()),
        }
    }

    #[test]
    fn install_args_default_and_with_target() {
        let ten_minutes = Duration::from_secs(600);
        assert_eq!(
            install_args(&KubeTarget::default(), readiness_timeout(ten_minutes), None).join(" "),
            "install -y --set profile=demo --set values.global.proxy.privileged=true \
             --readiness-timeout 540s"
        );
        assert_eq!(
            install_args(&kind_target(), Duration::from_secs(90), None).join(" "),
            "install -y --set profile=demo --set values.global.proxy.privileged=true \
             --readiness-timeout 90s --kubeconfig /c/kubeconfig-happy-istio --context kind-happy-istio"
        );
    }

    /// What the living documentation tells a reader to type today installs Istio as the suite
    /// does: the same istioctl arguments (the target and the suite's readiness limit aside).
    #[test]
    fn the_readers_install_line_is_the_suites() {
        let today = crate::deviations::find("D-istio-version")
            .expect("the deviation")
            .reader_today;
        let args = install_args(&KubeTarget::default(), Duration::from_secs(90), None);
        let install = args
            .iter()
            .take_while(|a| *a != "--readiness-timeout")
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            today.contains(&format!("istioctl {install}")),
            "reader_today: {today}\nthe suite: istioctl {install}"
        );
    }

    /// Istio 1.30's istioctl has `registry.istio.io/release` built in (istio/release-builder
    /// release-1.30 `release/build.sh:50`), which Istio decommissions in December 2026; its
    /// images are on docker.io/istio (release-1.30 `release/publish.sh:44,59`), so a 1.30
    /// release is installed naming that hub, on a kind cluster exactly so.
    #[test]
    fn a_1_30_release_installs_from_docker_hub() {
        let version: IstioVersion = "1.30.5".parse().unwrap();
        let hub =
            crate::istio::hub::IstioHub::choose(&version, None, Path::new("/nonexistent")).unwrap();
        let args = install_args(
            &kind_target(),
            readiness_timeout(Duration::from_secs(600)),
            hub.install_override(),
        );
        assert_eq!(
            args,
            [
                "install",
                "-y",
                "--set",
                "profile=demo",
                "--set",
                "values.global.proxy.privileged=true",
                "--set",
                "hub=docker.io/istio",
                "--readiness-timeout",
                "540s",
                "--kubeconfig",
                "/c/kubeconfig-happy-istio",
                "--context",
                "kind-happy-istio",
            ]
        );
    }

    #[test]
    fn readiness_stays_inside_the_install_limit() {
        assert_eq!(
            readiness_timeout(Duration::from_secs(600)),
            Duration::from_secs(540)
        );
        assert_eq!(
            readiness_timeout(Duration::from_secs(120)),
            Duration::from_secs(90)
        );
        assert_eq!(
            readiness_timeout(Duration::from_secs(20)),
            Duration::from_secs(1)
        );
        for secs in [31, 60, 300, 3600] {
            assert!(readiness_timeout(Duration::from_secs(secs)) < Duration::from_secs(secs));
        }
    }

    #[test]
    fn kube_inject_reads_stdin() {
        assert_eq!(
            kube_inject_args(&KubeTarget::default()),
            ["kube-inject", "-f", "-"]
        );
        assert_eq!(
            kube_inject_args(&KubeTarget {
                kubeconfig: None,
                context: Some("c".into())
            }),
            ["kube-inject", "-f", "-", "--context", "c"]
        );
    }

    #[test]
    fn proxy_config_addresses_pod_dot_namespace() {
        assert_eq!(
            proxy_config_args(
                &KubeTarget::default(),
                "all",
                "istioinaction",
                "service-a-1"
            ),
            [
                "proxy-config",
                "all",
                "service-a-1.istioinaction",
                "-o",
                "json"
            ]
        );
    }

    /// A release archive as Istio lays it out, built in memory.
    fn release_archive(version: &str) -> Vec<u8> {
        use flate2::{Compression, write::GzEncoder};
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, body, mode) in [
            (
                format!("istio-{version}/bin/istioctl"),
                &b"#!/bin/sh\necho istioctl\n"[..],
                0o755,
            ),
            (
                format!("istio-{version}/samples/addons/prometheus.yaml"),
                &b"kind: Service\n"[..],
                0o644,
            ),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(mode);
            header.set_path(&path).unwrap();
            header.set_cksum();
            builder.append(&header, body).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// A source on the test server: the archive at `path`, its checksum at `path.sha256`.
    fn source(base: &str, path: &str, file_name: &str) -> ArchiveSource {
        ArchiveSource {
            url: format!("{base}{path}"),
            checksum_url: format!("{base}{path}.sha256"),
            file_name: file_name.into(),
        }
    }

    /// The `.sha256` as release-builder `pkg/util/files.go` `CreateSha` writes it:
    /// `fmt.Sprintf("%x %s\n", sha, path.Base(src))` — one space.
    fn create_sha(archive: &[u8], file_name: &str) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        format!("{} {file_name}\n", hex::encode(Sha256::digest(archive))).into_bytes()
    }

    const LINUX_AMD64: Platform = Platform {
        os: crate::istio::artifacts::Os::Linux,
        arch: crate::istio::artifacts::Arch::Amd64,
    };

    #[tokio::test]
    async fn release_is_downloaded_verified_unpacked_and_then_cached() {
        use crate::download::test_server::{Reply, serve};
        use std::collections::HashMap;
        use std::sync::atomic::Ordering;

        let file = "istio-1.31.1-linux-amd64.tar.gz";
        let archive = release_archive("1.31.1");
        let sums = create_sha(&archive, file);
        let server = serve(HashMap::from([
            ("/istio-1.31.1-linux-amd64.tar.gz", Reply::Ok(archive)),
            ("/istio-1.31.1-linux-amd64.tar.gz.sha256", Reply::Ok(sums)),
        ]))
        .await;
        let cache = tempfile::tempdir().unwrap();
        let downloader = Downloader::new(cache.path(), Duration::from_secs(20)).unwrap();
        let version: IstioVersion = "1.31.1".parse().unwrap();
        let sources = [source(&server.base, &format!("/{file}"), file)];
        let release = ensure_release_from(&downloader, &version, LINUX_AMD64, &sources)
            .await
            .unwrap();
        assert!(release.istioctl().is_file());
        assert!(release.addons_dir().join("prometheus.yaml").is_file());
        let hits = server.hits.load(Ordering::SeqCst);
        assert_eq!(hits, 2, "checksum and archive");
        // No staging directory is left next to the unpacked release.
        let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("istio"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, ["1.31.1"]);

        let again = ensure_release_from(&downloader, &version, LINUX_AMD64, &sources)
            .await
            .unwrap();
        assert_eq!(again, release);
        assert_eq!(
            server.hits.load(Ordering::SeqCst),
            hits,
            "a cached release is not fetched again"
        );
    }

    #[tokio::test]
    async fn a_dev_build_missing_from_the_first_bucket_comes_from_the_next() {
        use crate::download::test_server::{Reply, serve};
        use std::collections::HashMap;

        let text = "1.32.0-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c";
        let version: IstioVersion = text.parse().unwrap();
        let file = format!("istio-{text}-linux-amd64.tar.gz");
        let archive = release_archive(text);
        let sums = create_sha(&archive, &file);
        let gcs_path: &'static str = Box::leak(format!("/gcs/{text}/{file}").into_boxed_str());
        let gcs_sum: &'static str = Box::leak(format!("{gcs_path}.sha256").into_boxed_str());
        let server = serve(HashMap::from([
            (gcs_path, Reply::Ok(archive)),
            (gcs_sum, Reply::Ok(sums)),
        ]))
        .await;
        let cache = tempfile::tempdir().unwrap();
        let downloader = Downloader::new(cache.path(), Duration::from_secs(20)).unwrap();
        let sources = [
            source(&server.base, &format!("/blob/{text}/{file}"), &file),
            source(&server.base, gcs_path, &file),
        ];
        let release = ensure_release_from(&downloader, &version, LINUX_AMD64, &sources)
            .await
            .unwrap();
        assert!(release.istioctl().is_file());
        assert!(cache.path().join("downloads").join(&file).is_file());
    }

    #[tokio::test]
    async fn when_no_source_has_the_archive_the_error_names_every_url() {
        use crate::download::test_server::serve;
        use std::collections::HashMap;

        let server = serve(HashMap::new()).await;
        let cache = tempfile::tempdir().unwrap();
        let downloader = Downloader::new(cache.path(), Duration::from_secs(20)).unwrap();
        let file = "istio-1.31.1-osx-amd64.tar.gz";
        let sources = [
            source(&server.base, "/1.31.1/istio-1.31.1-osx-amd64.tar.gz", file),
            source(
                &server.base,
                "/1.31.1/istio-1.31.1-osx.tar.gz",
                "istio-1.31.1-osx.tar.gz",
            ),
        ];
        let err = ensure_release_from(
            &downloader,
            &"1.31.1".parse().unwrap(),
            LINUX_AMD64,
            &sources,
        )
        .await
        .unwrap_err()
        .to_string();
        for s in &sources {
            assert!(
                err.contains(&s.url) && err.contains(&s.checksum_url),
                "{err}"
            );
        }
        assert!(err.contains("404"), "{err}");
    }

    #[tokio::test]
    async fn an_archive_without_istioctl_is_an_error_naming_it() {
        use crate::download::test_server::{Reply, serve};
        use sha2::{Digest, Sha256};
        use std::collections::HashMap;

        // An archive for another version: bin/istioctl is not where 1.31.1 puts it.
        let archive = release_archive("1.30.0");
        let sums = hex::encode(Sha256::digest(&archive));
        let server = serve(HashMap::from([
            ("/a.tar.gz", Reply::Ok(archive)),
            ("/a.tar.gz.sha256", Reply::Ok(sums.into_bytes())),
        ]))
        .await;
        let cache = tempfile::tempdir().unwrap();
        let downloader = Downloader::new(cache.path(), Duration::from_secs(20)).unwrap();
        let sources = [source(
            &server.base,
            "/a.tar.gz",
            "istio-1.31.1-linux-amd64.tar.gz",
        )];
        let err = ensure_release_from(
            &downloader,
            &"1.31.1".parse().unwrap(),
            LINUX_AMD64,
            &sources,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("istio-1.31.1-linux-amd64.tar.gz") && err.contains("bin/istioctl"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn wrapper_runs_the_binary_with_built_arguments() {
        // A stand-in istioctl that echoes its arguments and stdin proves the wiring.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("istioctl");
        std::fs::write(&fake, "#!/bin/sh\necho \"args: $*\"\ncat\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let ctl = Istioctl::new(
            &fake,
            "1.31.1".parse().unwrap(),
            kind_target(),
            Duration::from_secs(20),
        );
        let out = ctl.kube_inject("kind: Deployment\n").await.unwrap();
        assert_eq!(
            out,
            "args: kube-inject -f - --kubeconfig /c/kubeconfig-happy-istio --context kind-happy-istio\nkind: Deployment\n"
        );
    }
}
