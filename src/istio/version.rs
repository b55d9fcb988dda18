//! Istio version numbers: releases (`1.28.1`, `1.29.0-beta.1`) and dev builds
//! (`1.29-alpha.<40 hex>`), their order, and the choices derived from a release list (`latest`,
//! the newest patch of each minor for the nightly matrix).
//!
//! Dev builds are not semver; they are ordered as a pre-release of `MAJOR.MINOR.0`, which is
//! what they are: builds of the next minor before its first release.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// One Istio version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IstioVersion {
    /// Major version (1 for every Istio so far).
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Release or dev build.
    pub flavour: Flavour,
}

/// What kind of build a version names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// A published release: patch number and optional pre-release (`beta.1`, `rc.0`).
    Release {
        /// Patch number.
        patch: u64,
        /// Pre-release identifiers after `-`, if any.
        pre: Option<String>,
    },
    /// A dev build from istio's build bucket: `MAJOR.MINOR-alpha.<commit>`.
    Dev {
        /// The 40-hex commit the build was made from.
        commit: String,
    },
}

impl IstioVersion {
    /// A stable release `major.minor.patch`.
    pub fn release(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            flavour: Flavour::Release { patch, pre: None },
        }
    }

    /// True for a dev build.
    pub fn is_dev(&self) -> bool {
        matches!(self.flavour, Flavour::Dev { .. })
    }

    /// True for a release with a pre-release part (alpha, beta, rc) or a dev build.
    pub fn is_prerelease(&self) -> bool {
        match &self.flavour {
            Flavour::Release { pre, .. } => pre.is_some(),
            Flavour::Dev { .. } => true,
        }
    }

    /// The patch number; a dev build counts as `.0` of its minor.
    pub fn patch(&self) -> u64 {
        match &self.flavour {
            Flavour::Release { patch, .. } => *patch,
            Flavour::Dev { .. } => 0,
        }
    }

    /// True when this version's code line is at least `major.minor` — used to gate behaviour
    /// that changed in a minor release (a dev build of 1.28 already behaves like 1.28).
    pub fn at_least_minor(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `(major, minor)`, the key of a release line.
    pub fn minor_line(&self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.flavour {
            Flavour::Release { patch, pre: None } => {
                write!(f, "{}.{}.{}", self.major, self.minor, patch)
            }
            Flavour::Release {
                patch,
                pre: Some(pre),
            } => write!(f, "{}.{}.{}-{}", self.major, self.minor, patch, pre),
            Flavour::Dev { commit } => write!(f, "{}.{}-alpha.{}", self.major, self.minor, commit),
        }
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::IstioVersion {
        input: input.to_string(),
        reason: reason.into(),
    }
}

const ACCEPTED: &str = "expected MAJOR.MINOR.PATCH (e.g. 1.28.1), a pre-release such as \
                        1.29.0-beta.1, or a dev build MAJOR.MINOR-alpha.<40-hex commit>";

fn number(input: &str, part: &str, what: &str) -> Result<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            input,
            format!("{what} {part:?} is not a number; {ACCEPTED}"),
        ));
    }
    part.parse()
        .map_err(|_| invalid(input, format!("{what} {part:?} is too large")))
}

impl FromStr for IstioVersion {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let input = raw.trim();
        // GitHub tags are plain (`1.28.1`), but people often write `v1.28.1`.
        let text = input.strip_prefix('v').unwrap_or(input);
        if text.is_empty() {
            return Err(invalid(raw, format!("empty; {ACCEPTED}")));
        }
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        match (parts.as_slice(), pre) {
            ([major, minor], Some(pre)) => {
                let commit = pre.strip_prefix("alpha.").ok_or_else(|| {
                    invalid(
                        raw,
                        format!("a MAJOR.MINOR version must be a dev build; {ACCEPTED}"),
                    )
                })?;
                if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        raw,
                        format!("dev build commit {commit:?} is not 40 hex digits"),
                    ));
                }
                Ok(Self {
                    major: number(raw, major, "major")?,
                    minor: number(raw, minor, "minor")?,
                    flavour: Flavour::Dev {
                        commit: commit.to_ascii_lowercase(),
                    },
                })
            }
            ([major, minor, patch], pre) => {
                if let Some(pre) = pre {
                    let valid = !pre.is_empty()
                        && pre.split('.').all(|id| {
                            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
                        });
                    if !valid {
                        return Err(invalid(raw, format!("pre-release {pre:?} is malformed")));
                    }
                }
                Ok(Self {
                    major: number(raw, major, "major")?,
                    minor: number(raw, minor, "minor")?,
                    flavour: Flavour::Release {
                        patch: number(raw, patch, "patch")?,
                        pre: pre.map(str::to_string),
                    },
                })
            }
            _ => Err(invalid(raw, ACCEPTED)),
        }
    }
}

/// Semver's pre-release precedence: identifiers compared left to right, numeric ones
/// numerically and below alphanumeric ones; a longer list wins when all shared ones are equal.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

impl Ord for IstioVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let pre_of = |v: &IstioVersion| -> Option<String> {
            match &v.flavour {
                Flavour::Release { pre, .. } => pre.clone(),
                Flavour::Dev { commit } => Some(format!("alpha.{commit}")),
            }
        };
        (self.major, self.minor, self.patch())
            .cmp(&(other.major, other.minor, other.patch()))
            .then_with(|| match (pre_of(self), pre_of(other)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => compare_pre(&a, &b),
            })
    }
}

impl PartialOrd for IstioVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IstioVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_releases_prereleases_and_dev_builds() {
        assert_eq!(v("1.28.1"), IstioVersion::release(1, 28, 1));
        assert_eq!(v("v1.28.1"), IstioVersion::release(1, 28, 1));
        let beta = v("1.29.0-beta.1");
        assert!(beta.is_prerelease());
        assert_eq!(beta.to_string(), "1.29.0-beta.1");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let dev = v(&format!("1.29-alpha.{sha}"));
        assert!(dev.is_dev());
        assert_eq!(dev.minor_line(), (1, 29));
        assert_eq!(dev.to_string(), format!("1.29-alpha.{sha}"));
    }

    #[test]
    fn rejects_malformed_versions_with_the_input_named() {
        for bad in [
            "",
            "1",
            "1.28",
            "1.x.1",
            "1.28.1.4",
            "1.29-alpha.abc",
            "1.29-beta.0123456789abcdef0123456789abcdef01234567",
            "1.28.1-",
            "1.28.1-beta..1",
            "latest",
        ] {
            let err = bad.parse::<IstioVersion>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn orders_like_semver_with_dev_builds_before_the_minor_release() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let mut versions = [
            v("1.29.0"),
            v("1.28.10"),
            v("1.29.0-rc.0"),
            v(&format!("1.29-alpha.{sha}")),
            v("1.28.2"),
            v("1.29.0-beta.10"),
            v("1.29.0-beta.2"),
            v("1.29.1"),
        ];
        versions.sort();
        let shown: Vec<String> = versions.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "1.28.2".to_string(),
                "1.28.10".into(),
                format!("1.29-alpha.{sha}"),
                "1.29.0-beta.2".into(),
                "1.29.0-beta.10".into(),
                "1.29.0-rc.0".into(),
                "1.29.0".into(),
                "1.29.1".into(),
            ]
        );
    }

    #[test]
    fn minor_gates_treat_dev_builds_as_their_minor() {
        let dev = v("1.28-alpha.0123456789abcdef0123456789abcdef01234567");
        assert!(dev.at_least_minor(1, 28));
        assert!(!dev.at_least_minor(1, 29));
        assert!(v("1.27.9").at_least_minor(1, 27));
        assert!(!v("1.27.9").at_least_minor(1, 28));
    }
}
