//! Where an Istio build is downloaded from: the release archive per OS and architecture
//! (`istio-VER-linux-amd64.tar.gz`, `…-linux-arm64`, `…-osx` for Intel macOS, `…-osx-arm64`),
//! on GitHub for releases and on istio's dev build bucket for dev builds, each with its
//! `.sha256`; and where it is unpacked in the cache.

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

/// The archive's platform suffix as Istio names it: macOS on Intel has no arch suffix.
pub fn archive_suffix(platform: Platform) -> String {
    match (platform.os, platform.arch) {
        (Os::Linux, arch) => format!("linux-{arch}"),
        (Os::MacOs, Arch::Amd64) => "osx".into(),
        (Os::MacOs, Arch::Arm64) => "osx-arm64".into(),
    }
}

/// The archive's file name, e.g. `istio-1.28.1-linux-amd64.tar.gz`.
pub fn archive_name(version: &IstioVersion, platform: Platform) -> String {
    format!("istio-{version}-{}.tar.gz", archive_suffix(platform))
}

/// The archive's URL: GitHub releases, or the dev build bucket for a dev build.
pub fn archive_url(version: &IstioVersion, platform: Platform) -> String {
    let name = archive_name(version, platform);
    if version.is_dev() {
        format!("https://storage.googleapis.com/istio-build/dev/{version}/{name}")
    } else {
        format!("https://github.com/istio/istio/releases/download/{version}/{name}")
    }
}

/// The archive's checksum file (`HEX  istio-….tar.gz`), published next to it.
pub fn checksum_url(version: &IstioVersion, platform: Platform) -> String {
    format!("{}.sha256", archive_url(version, platform))
}

/// Where a release is kept in the cache: the downloaded archive and the unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRelease {
    /// The archive, relative to the cache directory.
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

    #[test]
    fn release_archive_and_checksum_urls_per_platform() {
        let v: IstioVersion = "1.28.1".parse().unwrap();
        let base = "https://github.com/istio/istio/releases/download/1.28.1";
        for (platform, file) in [
            (LINUX_AMD64, "istio-1.28.1-linux-amd64.tar.gz"),
            (LINUX_ARM64, "istio-1.28.1-linux-arm64.tar.gz"),
            (MAC_AMD64, "istio-1.28.1-osx.tar.gz"),
            (MAC_ARM64, "istio-1.28.1-osx-arm64.tar.gz"),
        ] {
            assert_eq!(archive_url(&v, platform), format!("{base}/{file}"));
            assert_eq!(checksum_url(&v, platform), format!("{base}/{file}.sha256"));
        }
    }

    #[test]
    fn dev_build_urls_use_the_build_bucket() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let v: IstioVersion = format!("1.30-alpha.{sha}").parse().unwrap();
        assert_eq!(
            archive_url(&v, LINUX_AMD64),
            format!(
                "https://storage.googleapis.com/istio-build/dev/1.30-alpha.{sha}/istio-1.30-alpha.{sha}-linux-amd64.tar.gz"
            )
        );
        assert!(
            checksum_url(&v, MAC_ARM64)
                .ends_with(&format!("istio-1.30-alpha.{sha}-osx-arm64.tar.gz.sha256"))
        );
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
