//! Where an Istio build is downloaded from: the release archive per OS and architecture
//! (`istio-VER-linux-amd64.tar.gz`, `…-linux-arm64`, `…-osx-amd64` for Intel macOS, `…-osx-arm64`),
//! on GitHub for releases and in istio's dev build bucket for dev builds, each with its
//! `.sha256`; the fallbacks tried when the first place fails; and where a build is unpacked in
//! the cache.
//!
//! Upstream facts (istio/release-builder at 2026-08-21, f7799cc; the same code builds every
//! release and dev build):
//! - `pkg/build/archive.go` builds `istio-<version>-<arch>.tar.gz` for `linux-amd64`,
//!   `linux-armv7`, `linux-arm64`, `osx-amd64`, `osx-arm64`, `win-amd64`, and a copy of
//!   `osx-amd64` under the "older deprecated name" `osx` ("TODO - When we no longer need the
//!   older archives we can remove this creation").
//! - `pkg/util/files.go` `CreateSha` writes `<archive>.sha256` next to each archive, content
//!   `fmt.Sprintf("%x %s\n", sha, path.Base(src))`: hex digest, ONE space, file name, newline.
//! - `pkg/publish/github.go` uploads every file matching `istio.*` to the GitHub release, so
//!   archives and `.sha256` files are at `github.com/istio/istio/releases/download/<tag>/`
//!   (tags without `v`, as `istio/release/downloadIstioCandidate.sh` builds the URL).
//! - `pkg/publish/gcs.go` and `s3.go` put the dev build's files at
//!   `<bucket prefix>/<version>/<file>`; istio/istio `prow/release-commit.sh` publishes dev
//!   builds to both `--gcsbucket istio-build/dev` (Google Cloud Storage) and
//!   `--s3bucket istio-build/dev` (Cloudflare R2, `R2_BUCKET`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::version::IstioVersion;
use crate::{Error, Result};

/// Operating systems Istio publishes archives for (and the suite runs on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux.
    Linux,
    /// macOS.
    MacOs,
}

/// CPU architectures Istio publishes archives for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

/// An OS and architecture pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// The operating system.
    pub os: Os,
    /// The architecture.
    pub arch: Arch,
}

impl Platform {
    /// The platform this process runs on.
    pub fn current() -> Result<Self> {
        Self::from_rust(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// Maps Rust's OS and ARCH names (`linux`/`macos`, `x86_64`/`aarch64`).
    pub fn from_rust(os: &str, arch: &str) -> Result<Self> {
        let unsupported = || {
            Error::Other(format!(
                "Istio and kind publish no binaries for {os}/{arch}; the suite supports linux and macos on x86_64 and aarch64 (or use HAPPY_CLUSTER=sandbox)"
            ))
        };
        let os = match os {
            "linux" => Os::Linux,
            "macos" => Os::MacOs,
            _ => return Err(unsupported()),
        };
        let arch = match arch {
            "x86_64" => Arch::Amd64,
            "aarch64" => Arch::Arm64,
            _ => return Err(unsupported()),
        };
        Ok(Self { os, arch })
    }

    /// Go's names, as kind's binaries use them: `linux-amd64`, `darwin-arm64`.
    pub fn go_name(&self) -> String {
        let os = match self.os {
            Os::Linux => "linux",
            Os::MacOs => "darwin",
        };
        format!("{os}-{}", self.arch)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        })
    }
}

/// Public addresses of istio's dev build bucket, tried in this order.
///
/// `blob.istio.io` first: Istio is leaving Google Cloud. istio.io
/// `news/releases/1.31.x/announcing-1.31/upgrade-notes` ("Deprecation of GCP infrastructure
/// and hosting") moves release artifacts to `blob.istio.io/istio-release` and announces "scream
/// tests" that disable all GCP hosted artifacts, the last from 2026-12-08 15:00 to 2026-12-09
/// 15:00 UTC. The blog `2026/retirement-of-gcp` (2026-08-21) says the release bucket's
/// artifacts "of all Istio versions are currently available at
/// `https://blob.istio.io/istio-release/releases`": blob.istio.io serves a bucket under its
/// name. For the dev bucket: istio/istio commit 3081a157e59 (#60140,
/// 2026-05-12, "R2 for bins and benches") moved istio's own downloads from the same
/// `istio-build` bucket to `https://blob.istio.io/istio-build/{proxy,ztunnel}` (`bin/init.sh`,
/// `bin/build_ztunnel.sh`), and `prow/release-commit.sh` writes every dev build to that
/// bucket's R2 copy too (`R2_BUCKET=istio-build/dev`, `--s3bucket`). NOT confirmed upstream:
/// no istio file reads `blob.istio.io/istio-build/dev/…` yet, so that the `dev/` prefix is
/// served there is inferred from that layout. Hence Google Cloud Storage, where istio.io's docs
/// still point (`curl https://storage.googleapis.com/istio-build/dev/latest`), stays second.
pub(crate) const DEV_BUCKETS: [&str; 2] = [
    "https://blob.istio.io/istio-build/dev",
    "https://storage.googleapis.com/istio-build/dev",
];

/// Where GitHub serves a release's assets: `<this>/<tag>/<file>`.
pub(crate) const RELEASE_DOWNLOADS: &str = "https://github.com/istio/istio/releases/download";

/// The archive's platform suffixes as Istio names them, preferred first. Intel macOS has the
/// current name `osx-amd64` and the deprecated copy `osx` (release-builder
/// `pkg/build/archive.go`; `osx-amd64` since release-builder 9ba21ae2, #1560, 2023-07-05).
/// `osx` stays as the fallback for releases built before that, and for the day the copy is
/// no longer made it is simply not reached.
pub(crate) fn archive_suffixes(platform: Platform) -> Vec<String> {
    match (platform.os, platform.arch) {
        (Os::Linux, arch) => vec![format!("linux-{arch}")],
        (Os::MacOs, Arch::Amd64) => vec!["osx-amd64".into(), "osx".into()],
        (Os::MacOs, Arch::Arm64) => vec!["osx-arm64".into()],
    }
}

/// The archive's preferred file name, e.g. `istio-1.28.1-linux-amd64.tar.gz`.
pub(crate) fn archive_name(version: &IstioVersion, platform: Platform) -> String {
    let suffixes = archive_suffixes(platform);
    let suffix = suffixes.first().map(String::as_str).unwrap_or_default();
    format!("istio-{version}-{suffix}.tar.gz")
}

/// One place an archive can be downloaded from, with the checksum file published next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchiveSource {
    /// The archive.
    pub url: String,
    /// Its `.sha256` (`HEX name`, see the module comment), from the same place.
    pub checksum_url: String,
    /// The archive's file name, which is also its name in the cache.
    pub file_name: String,
}

/// Every place the archive of `version` for `platform` is published, in the order to try
/// them: each file name (preferred first) at each host (GitHub for releases; for dev builds
/// [`DEV_BUCKETS`] in order). An archive and its checksum always come from the same place.
pub(crate) fn archive_sources(version: &IstioVersion, platform: Platform) -> Vec<ArchiveSource> {
    let bases: Vec<String> = if version.is_dev() {
        DEV_BUCKETS
            .iter()
            .map(|bucket| format!("{bucket}/{version}"))
            .collect()
    } else {
        vec![format!("{RELEASE_DOWNLOADS}/{version}")]
    };
    let mut sources = Vec::new();
    for suffix in archive_suffixes(platform) {
        let file_name = format!("istio-{version}-{suffix}.tar.gz");
        for base in &bases {
            let url = format!("{base}/{file_name}");
            sources.push(ArchiveSource {
                checksum_url: format!("{url}.sha256"),
                url,
                file_name: file_name.clone(),
            });
        }
    }
    sources
}

/// The dev `latest` pointers, in the order to try them (see [`DEV_BUCKETS`]).
pub(crate) fn dev_pointer_urls() -> Vec<String> {
    DEV_BUCKETS
        .iter()
        .map(|bucket| format!("{bucket}/latest"))
        .collect()
}

/// Runs `attempt` on each source in order and returns the first success. Each failure but the
/// last is announced on stderr with the source tried next. When every source fails, the error
/// names each source with its own reason; with a single source its error is returned as it is.
/// A local I/O error (the cache directory) ends the search at once: another source cannot fix it.
pub(crate) async fn first_that_works<'a, S, T, Fut>(
    what: &str,
    sources: &'a [S],
    name: impl Fn(&S) -> &str,
    mut attempt: impl FnMut(&'a S) -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let mut failures: Vec<(String, Error)> = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        match attempt(source).await {
            Ok(found) => return Ok(found),
            Err(error @ Error::LocalIo { .. }) => return Err(error),
            Err(error) => {
                if let Some(next) = sources.get(index + 1) {
                    eprintln!(
                        "happy-istio: {what}: {} failed ({}); trying {}",
                        name(source),
                        reason_at(name(source), &error),
                        name(next)
                    );
                }
                failures.push((name(source).to_string(), error));
            }
        }
    }
    if failures.len() == 1 {
        return Err(failures.remove(0).1);
    }
    if failures.is_empty() {
        return Err(Error::Other(format!("{what}: no source to download from")));
    }
    let tried: Vec<String> = failures
        .iter()
        .map(|(source, error)| format!("{source}: {}", reason_at(source, error)))
        .collect();
    Err(Error::Download {
        url: what.to_string(),
        reason: format!(
            "every source failed, in the order tried: {}",
            tried.join("; ")
        ),
    })
}

/// An error's text without the URL it repeats, when it is a download error of `source`.
fn reason_at(source: &str, error: &Error) -> String {
    match error {
        Error::Download { url, reason } if url == source => reason.clone(),
        other => other.to_string(),
    }
}

/// Where a release is kept in the cache: the downloaded archive and the unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRelease {
    /// The archive under its preferred name, relative to the cache directory (a fallback
    /// name, see [`archive_sources`], is cached next to it under its own name).
    pub archive: PathBuf,
    /// The directory the archive is unpacked into (absolute).
    pub unpack_dir: PathBuf,
    /// The release's top directory inside `unpack_dir` (`istio-VER`).
    pub root: PathBuf,
}

impl CachedRelease {
    /// Cache paths for a version.
    pub fn new(cache_dir: &Path, version: &IstioVersion, platform: Platform) -> Self {
        let unpack_dir = cache_dir.join("istio").join(version.to_string());
        Self {
            archive: PathBuf::from("downloads").join(archive_name(version, platform)),
            root: unpack_dir.join(format!("istio-{version}")),
            unpack_dir,
        }
    }

    /// `bin/istioctl` of the unpacked release.
    pub fn istioctl(&self) -> PathBuf {
        self.root.join("bin").join("istioctl")
    }

    /// `samples/addons` of the unpacked release.
    pub fn addons_dir(&self) -> PathBuf {
        self.root.join("samples").join("addons")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX_AMD64: Platform = Platform {
        os: Os::Linux,
        arch: Arch::Amd64,
    };
    const LINUX_ARM64: Platform = Platform {
        os: Os::Linux,
        arch: Arch::Arm64,
    };
    const MAC_AMD64: Platform = Platform {
        os: Os::MacOs,
        arch: Arch::Amd64,
    };
    const MAC_ARM64: Platform = Platform {
        os: Os::MacOs,
        arch: Arch::Arm64,
    };

    const SHA: &str = "86c9f01fd735fb01d8192f5bcaf0d424afb7f14c";

    fn urls(sources: &[ArchiveSource]) -> Vec<(&str, &str)> {
        sources
            .iter()
            .map(|s| (s.url.as_str(), s.checksum_url.as_str()))
            .collect()
    }

    #[test]
    fn release_archive_and_checksum_urls_per_platform() {
        let v: IstioVersion = "1.28.1".parse().unwrap();
        let base = "https://github.com/istio/istio/releases/download/1.28.1";
        for (platform, file) in [
            (LINUX_AMD64, "istio-1.28.1-linux-amd64.tar.gz"),
            (LINUX_ARM64, "istio-1.28.1-linux-arm64.tar.gz"),
            (MAC_ARM64, "istio-1.28.1-osx-arm64.tar.gz"),
        ] {
            let sources = archive_sources(&v, platform);
            let url = format!("{base}/{file}");
            let sum = format!("{url}.sha256");
            assert_eq!(urls(&sources), [(url.as_str(), sum.as_str())]);
            assert_eq!(sources[0].file_name, file);
            assert_eq!(archive_name(&v, platform), file);
        }
    }

    #[test]
    fn intel_macos_prefers_osx_amd64_and_falls_back_to_osx() {
        let v: IstioVersion = "1.31.1".parse().unwrap();
        let base = "https://github.com/istio/istio/releases/download/1.31.1";
        let sources = archive_sources(&v, MAC_AMD64);
        let names: Vec<&str> = sources.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("{base}/istio-1.31.1-osx-amd64.tar.gz"),
                format!("{base}/istio-1.31.1-osx.tar.gz"),
            ]
        );
        assert_eq!(archive_name(&v, MAC_AMD64), "istio-1.31.1-osx-amd64.tar.gz");
        assert_eq!(sources[1].file_name, "istio-1.31.1-osx.tar.gz");
    }

    #[test]
    fn dev_builds_try_blob_istio_io_then_google_cloud_storage() {
        for text in [format!("1.32.0-alpha.{SHA}"), format!("1.30-alpha.{SHA}")] {
            let v: IstioVersion = text.parse().unwrap();
            let file = format!("istio-{text}-linux-amd64.tar.gz");
            let blob = format!("https://blob.istio.io/istio-build/dev/{text}/{file}");
            let gcs = format!("https://storage.googleapis.com/istio-build/dev/{text}/{file}");
            let (blob_sum, gcs_sum) = (format!("{blob}.sha256"), format!("{gcs}.sha256"));
            assert_eq!(
                urls(&archive_sources(&v, LINUX_AMD64)),
                [
                    (blob.as_str(), blob_sum.as_str()),
                    (gcs.as_str(), gcs_sum.as_str())
                ]
            );
        }
    }

    #[test]
    fn dev_builds_on_intel_macos_try_each_name_at_each_host() {
        let text = format!("1.32.0-alpha.{SHA}");
        let v: IstioVersion = text.parse().unwrap();
        let tried: Vec<String> = archive_sources(&v, MAC_AMD64)
            .into_iter()
            .map(|s| s.url)
            .collect();
        assert_eq!(
            tried,
            [
                format!(
                    "https://blob.istio.io/istio-build/dev/{text}/istio-{text}-osx-amd64.tar.gz"
                ),
                format!(
                    "https://storage.googleapis.com/istio-build/dev/{text}/istio-{text}-osx-amd64.tar.gz"
                ),
                format!("https://blob.istio.io/istio-build/dev/{text}/istio-{text}-osx.tar.gz"),
                format!(
                    "https://storage.googleapis.com/istio-build/dev/{text}/istio-{text}-osx.tar.gz"
                ),
            ]
        );
    }

    #[test]
    fn dev_pointers_in_order() {
        assert_eq!(
            dev_pointer_urls(),
            [
                "https://blob.istio.io/istio-build/dev/latest",
                "https://storage.googleapis.com/istio-build/dev/latest"
            ]
        );
    }

    fn http_error(url: &str, status: &str) -> Error {
        Error::Download {
            url: url.into(),
            reason: format!("HTTP {status}"),
        }
    }

    #[tokio::test]
    async fn the_first_working_source_wins_and_later_ones_are_not_tried() {
        let sources = ["https://a/x", "https://b/x", "https://c/x"];
        let mut tried = Vec::new();
        let found = first_that_works(
            "x",
            &sources,
            |s| s,
            |s| {
                tried.push(s.to_string());
                let result = if *s == "https://b/x" {
                    Ok(format!("from {s}"))
                } else {
                    Err(http_error(s, "404 Not Found"))
                };
                async move { result }
            },
        )
        .await
        .unwrap();
        assert_eq!(found, "from https://b/x");
        assert_eq!(tried, ["https://a/x", "https://b/x"]);
    }

    #[tokio::test]
    async fn when_every_source_fails_the_error_names_each_with_its_reason() {
        let sources = ["https://a/x", "https://b/x"];
        let err = first_that_works(
            "the thing",
            &sources,
            |s| s,
            |s| {
                let result: Result<()> = Err(if *s == "https://a/x" {
                    http_error(s, "404 Not Found")
                } else {
                    Error::ChecksumFile {
                        url: format!("{s}.sha256"),
                        reason: "it is empty".into(),
                    }
                });
                async move { result }
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "download of the thing failed: every source failed, in the order tried: \
             https://a/x: HTTP 404 Not Found; \
             https://b/x: checksum file https://b/x.sha256: it is empty"
        );
    }

    #[tokio::test]
    async fn a_single_source_keeps_its_own_error_and_local_errors_stop_the_search() {
        let err = first_that_works(
            "x",
            &["https://a/x"],
            |s| s,
            |s| {
                let result: Result<()> = Err(http_error(s, "404 Not Found"));
                async move { result }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Download { ref url, .. } if url == "https://a/x"));

        let mut tried = 0;
        let err = first_that_works(
            "x",
            &["https://a/x", "https://b/x"],
            |s| s,
            |_| {
                tried += 1;
                let result: Result<()> = Err(Error::LocalIo {
                    action: "create".into(),
                    path: PathBuf::from("/cache/downloads"),
                    source: std::io::Error::other("disk full"),
                });
                async move { result }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::LocalIo { .. }), "{err}");
        assert_eq!(tried, 1);
    }

    #[test]
    fn checksum_files_as_release_builder_writes_them() {
        // pkg/util/files.go CreateSha: fmt.Sprintf("%x %s\n", sha, path.Base(src)).
        let digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let v: IstioVersion = format!("1.32.0-alpha.{SHA}").parse().unwrap();
        let source = &archive_sources(&v, LINUX_ARM64)[0];
        let body = format!("{digest} {}\n", source.file_name);
        assert_eq!(
            crate::download::parse_checksum(&body, &source.checksum_url, Some(&source.file_name))
                .unwrap(),
            digest
        );
        // The checksum of another platform's archive is refused, naming the checksum file.
        let other = &archive_sources(&v, LINUX_AMD64)[0];
        let err =
            crate::download::parse_checksum(&body, &other.checksum_url, Some(&other.file_name))
                .unwrap_err()
                .to_string();
        assert!(err.contains(&other.checksum_url), "{err}");
    }

    #[test]
    fn platforms_from_rust_names() {
        assert_eq!(Platform::from_rust("linux", "x86_64").unwrap(), LINUX_AMD64);
        assert_eq!(Platform::from_rust("macos", "aarch64").unwrap(), MAC_ARM64);
        assert_eq!(MAC_ARM64.go_name(), "darwin-arm64");
        assert_eq!(LINUX_AMD64.go_name(), "linux-amd64");
        let err = Platform::from_rust("windows", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("windows/x86_64"), "{err}");
    }

    #[test]
    fn cache_layout() {
        let v: IstioVersion = "1.28.1".parse().unwrap();
        let c = CachedRelease::new(Path::new("/c"), &v, LINUX_AMD64);
        assert_eq!(
            c.archive,
            Path::new("downloads/istio-1.28.1-linux-amd64.tar.gz")
        );
        assert_eq!(
            c.istioctl(),
            Path::new("/c/istio/1.28.1/istio-1.28.1/bin/istioctl")
        );
        assert_eq!(
            c.addons_dir(),
            Path::new("/c/istio/1.28.1/istio-1.28.1/samples/addons")
        );
    }
}
