//! Istio version numbers: releases (`1.28.1`, `1.29.0-beta.1`) and dev builds, their order, and
//! the choices derived from a release list (`latest`, the newest patch of each minor for the
//! nightly matrix).
//!
//! Dev builds are named by istio/istio `prow/release-commit.sh` as the next minor (the `VERSION`
//! file) plus the commit. Two forms exist in istio's build bucket:
//! - `MAJOR.MINOR.0-alpha.<40 hex>` since istio/istio commit 988e81e0d7a (#59509, 2026-04-21,
//!   "use semantic versions for charts in commit releases": `VERSION="${NEXT_VERSION}.0-alpha.${TAG}"`),
//!   e.g. `1.32.0-alpha.<sha>` on master while `VERSION` is `1.32`;
//! - `MAJOR.MINOR-alpha.<40 hex>` before it (`VERSION="${NEXT_VERSION}-alpha.${TAG}"`); those
//!   builds stay in the bucket under that name.
//!
//! release-builder uses the string as it is for directory, archive and image tag names
//! (`pkg/publish/gcs.go`, `pkg/build/helm.go`), so [`fmt::Display`] gives back exactly the
//! published form. Both forms are ordered as a pre-release of `MAJOR.MINOR.0`, which is what
//! they are: builds of the next minor before its first release.

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
    /// A dev build from istio's build bucket: `MAJOR.MINOR.0-alpha.<commit>` or, for builds
    /// before 2026-04-21, `MAJOR.MINOR-alpha.<commit>`.
    Dev {
        /// The 40-hex commit the build was made from (lower case, as `git rev-parse` prints it).
        commit: String,
        /// Which of the two published names the build has.
        form: DevForm,
    },
}

/// The two names istio/istio's `prow/release-commit.sh` has given dev builds. Ordered by age,
/// which only breaks ties between the same commit named both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DevForm {
    /// `MAJOR.MINOR-alpha.<commit>`, up to istio/istio commit 988e81e0d7a (2026-04-21).
    MinorOnly,
    /// `MAJOR.MINOR.0-alpha.<commit>`, from istio/istio commit 988e81e0d7a on.
    WithPatch,
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
            Flavour::Dev {
                commit,
                form: DevForm::MinorOnly,
            } => write!(f, "{}.{}-alpha.{}", self.major, self.minor, commit),
            Flavour::Dev {
                commit,
                form: DevForm::WithPatch,
            } => write!(f, "{}.{}.0-alpha.{}", self.major, self.minor, commit),
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
                        1.29.0-beta.1, or a dev build MAJOR.MINOR.0-alpha.<40-hex commit> \
                        (older builds: MAJOR.MINOR-alpha.<40-hex commit>)";

/// The commit of a dev build's pre-release part, `alpha.<40 hex>`, lower-cased.
fn dev_commit(pre: &str) -> Option<String> {
    let commit = pre.strip_prefix("alpha.")?;
    (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| commit.to_ascii_lowercase())
}

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
                        form: DevForm::MinorOnly,
                    },
                })
            }
            ([major, minor, patch], pre) => {
                if let Some(commit) = pre.and_then(dev_commit) {
                    // release-commit.sh always appends `.0`: a dev build is a pre-release of
                    // the minor's first release, never of a patch.
                    if *patch != "0" {
                        return Err(invalid(
                            raw,
                            format!(
                                "a dev build is MAJOR.MINOR.0-alpha.<commit>, not patch {patch:?}; {ACCEPTED}"
                            ),
                        ));
                    }
                    return Ok(Self {
                        major: number(raw, major, "major")?,
                        minor: number(raw, minor, "minor")?,
                        flavour: Flavour::Dev {
                            commit,
                            form: DevForm::WithPatch,
                        },
                    });
                }
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
                Flavour::Dev { commit, .. } => Some(format!("alpha.{commit}")),
            }
        };
        let form_of = |v: &IstioVersion| match &v.flavour {
            Flavour::Dev { form, .. } => Some(*form),
            Flavour::Release { .. } => None,
        };
        (self.major, self.minor, self.patch())
            .cmp(&(other.major, other.minor, other.patch()))
            .then_with(|| match (pre_of(self), pre_of(other)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => compare_pre(&a, &b),
            })
            // Only the same commit under both names gets here; keeps `Ord` consistent with `Eq`.
            .then_with(|| form_of(self).cmp(&form_of(other)))
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

    /// istio/istio master at 2026-08-22; with `VERSION` = `1.32` there, prow/release-commit.sh
    /// names its build `1.32.0-alpha.<this>`.
    const SHA: &str = "86c9f01fd735fb01d8192f5bcaf0d424afb7f14c";

    fn v(s: &str) -> IstioVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_releases_and_prereleases() {
        assert_eq!(v("1.28.1"), IstioVersion::release(1, 28, 1));
        assert_eq!(v("v1.28.1"), IstioVersion::release(1, 28, 1));
        let beta = v("1.29.0-beta.1");
        assert!(beta.is_prerelease() && !beta.is_dev());
        assert_eq!(beta.to_string(), "1.29.0-beta.1");
        // Istio's own alpha releases (tag 1.31.0-alpha.2) are releases, not dev builds.
        let alpha = v("1.31.0-alpha.2");
        assert!(alpha.is_prerelease() && !alpha.is_dev());
    }

    #[test]
    fn parses_dev_builds_of_the_current_form_and_round_trips_them() {
        let text = format!("1.32.0-alpha.{SHA}");
        let dev = v(&text);
        assert!(dev.is_dev() && dev.is_prerelease());
        assert_eq!(dev.minor_line(), (1, 32));
        assert_eq!(dev.patch(), 0);
        assert_eq!(
            dev.flavour,
            Flavour::Dev {
                commit: SHA.into(),
                form: DevForm::WithPatch
            }
        );
        assert_eq!(dev.to_string(), text);
        // git prints lower case; an upper-case copy names the same build.
        assert_eq!(v(&format!("1.32.0-alpha.{}", SHA.to_uppercase())), dev);
    }

    #[test]
    fn parses_dev_builds_of_the_old_form_and_round_trips_them() {
        let text = format!("1.30-alpha.{SHA}");
        let dev = v(&text);
        assert!(dev.is_dev());
        assert_eq!(dev.minor_line(), (1, 30));
        assert_eq!(
            dev.flavour,
            Flavour::Dev {
                commit: SHA.into(),
                form: DevForm::MinorOnly
            }
        );
        assert_eq!(dev.to_string(), text);
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
            "1.32.1-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c",
            "1.32.0.0-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c",
            "latest",
        ] {
            let err = bad.parse::<IstioVersion>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let err = format!("1.32.1-alpha.{SHA}")
            .parse::<IstioVersion>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAJOR.MINOR.0-alpha"), "{err}");
    }

    #[test]
    fn orders_like_semver_with_dev_builds_before_the_minor_release() {
        let mut versions = [
            v("1.29.0"),
            v("1.28.10"),
            v("1.29.0-rc.0"),
            v(&format!("1.29-alpha.{SHA}")),
            v("1.28.2"),
            v("1.29.0-beta.10"),
            v(&format!("1.30.0-alpha.{SHA}")),
            v("1.29.0-beta.2"),
            v("1.30.0-beta.0"),
            v("1.29.1"),
            v("1.30.0-alpha.0"),
        ];
        versions.sort();
        let shown: Vec<String> = versions.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "1.28.2".to_string(),
                "1.28.10".into(),
                format!("1.29-alpha.{SHA}"),
                "1.29.0-beta.2".into(),
                "1.29.0-beta.10".into(),
                "1.29.0-rc.0".into(),
                "1.29.0".into(),
                "1.29.1".into(),
                // A numeric identifier ranks below an alphanumeric one (semver 11.4.3).
                "1.30.0-alpha.0".into(),
                format!("1.30.0-alpha.{SHA}"),
                "1.30.0-beta.0".into(),
            ]
        );
    }

    #[test]
    fn the_same_commit_under_both_names_is_two_versions_ordered_consistently() {
        let old = v(&format!("1.30-alpha.{SHA}"));
        let new = v(&format!("1.30.0-alpha.{SHA}"));
        assert_ne!(old, new);
        assert_eq!(old.cmp(&new), Ordering::Less);
        assert_eq!(new.cmp(&old), Ordering::Greater);
        assert_eq!(new.cmp(&new.clone()), Ordering::Equal);
    }

    #[test]
    fn minor_gates_treat_dev_builds_as_their_minor() {
        for dev in [
            v(&format!("1.28-alpha.{SHA}")),
            v(&format!("1.28.0-alpha.{SHA}")),
        ] {
            assert!(dev.at_least_minor(1, 28), "{dev}");
            assert!(!dev.at_least_minor(1, 29), "{dev}");
        }
        assert!(v("1.27.9").at_least_minor(1, 27));
        assert!(!v("1.27.9").at_least_minor(1, 28));
    }
}
