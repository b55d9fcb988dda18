//! Where a run's Istio images come from: the image hub (`<hub>/pilot:<tag>`,
//! `<hub>/proxyv2:<tag>`) the install names, chosen explicitly and reported with every run.
//!
//! - **Releases** are installed from `docker.io/istio`, whatever hub their istioctl has built
//!   in. Every release on GitHub is made by `release-builder publish`, which creates the GitHub
//!   release (istio/release-builder `pkg/publish/github.go`, `Draft: true, Prerelease: true`)
//!   and, as `release/publish.sh` runs it, pushes the images to
//!   `DOCKER_HUB=${DOCKER_HUB:-docker.io/istio}` (`--dockerhub "${DOCKER_HUB}"`):
//!   release-1.29 `release/publish.sh:44,59`, release-1.30 `:44,59`, release-1.31 `:48,76`.
//!   The hub built into istioctl is another matter: Istio 1.30's is `registry.istio.io/release`
//!   (release-1.30 `release/build.sh:50`, `DOCKER_HUB=${DOCKER_HUB:-registry.istio.io/release}`;
//!   1.29 and 1.31 build with `docker.io/istio`), a registry Istio decommissions in December
//!   2026. istio/istio.io `content/en/blog/2026/retirement-of-gcr.io-follow-up/index.md`
//!   (2026-07-23): "By default, Istio 1.30 installations use `registry.istio.io/release` … All
//!   other Istio versions default to `docker.io/istio`", "we will publish Istio images to
//!   `docker.io/istio`", and its fix is this one: `istioctl install --set hub=docker.io/istio`.
//! - **Dev builds** keep the hub built into their istioctl. istio/istio master
//!   `prow/release-commit.sh:32-33,58,119` builds them with
//!   `DOCKER_HUB=${DOCKER_HUB:-registry.istio.io/testing}` (the hub embedded in istioctl and
//!   its profiles) and pushes the images to `DOCKER_PUSH_HUB=${DOCKER_PUSH_HUB:-gcr.io/istio-testing}`
//!   with the tag `${VERSION}` among others. Both are on their way out (see [`DECOMMISSIONED`]):
//!   a dev run may fail to pull for that reason, which its failure says
//!   ([`IstioHub::failure_hint`]). No other place is known to carry dev images, so there is
//!   nothing better to pick; `HAPPY_ISTIO_HUB` overrides it.
//! - `HAPPY_ISTIO_HUB` overrides both (a mirror, a local registry).
//!
//! istioctl takes the hub as the IstioOperator's top-level `spec.hub` (`--set hub=<hub>`;
//! `--set` paths are under `spec`): istio/istio `operator/pkg/apis/types.go:78`
//! (`Hub string json:"hub"`, and `Tag` beside it), `operator/pkg/values/map.go:181`
//! (`SetSpecPaths` prefixes `spec.`), `operator/pkg/render/manifest.go` (`MergeInputs`: the
//! compiled-in hub/tag overlay comes first, user `--set` flags are merged over it;
//! `translateIstioOperatorToHelm` maps `spec.hub` to `values.global.hub`), identical at tags
//! 1.29.0, 1.30.0, 1.30.3, 1.31.0-rc.0 and master. The tag is left alone: the compiled-in one
//! is the release's version, which is what every hub publishes it under.

use std::fmt;
use std::path::Path;

use super::version::IstioVersion;
use crate::{Error, Result};

/// The hub every Istio release's images are pushed to (see the module comment).
pub(crate) const RELEASE_HUB: &str = "docker.io/istio";

/// The variable that overrides the hub.
pub(crate) const HUB_VAR: &str = "HAPPY_ISTIO_HUB";

/// Registries Istio is decommissioning: istio/istio.io
/// `content/en/blog/2026/retirement-of-gcp/index.md` (2026-08-21): "the `gcr.io/istio-release`
/// and `registry.istio.io` container registries will be decommissioned in December 2026", as
/// "Istio is migrating all of our infrastructure from Google Cloud Platform to Amazon Web
/// Services". The dev builds' `gcr.io/istio-testing` is not named there; that it goes with the
/// rest of Istio's Google Cloud is an inference, not confirmed.
const DECOMMISSIONED: [&str; 2] = ["registry.istio.io/", "gcr.io/istio-"];

/// Why a run uses the hub it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOrigin {
    /// The release default, [`RELEASE_HUB`].
    Release,
    /// `HAPPY_ISTIO_HUB`.
    Setting,
    /// Built into a dev build's istioctl (read from the release's default profile).
    DevBuild,
    /// The hub of an Istio found in the cluster and kept (read from istiod's image).
    Found,
}

/// The hub of a run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioHub {
    /// `docker.io/istio`, `registry.istio.io/testing`, …
    pub hub: String,
    /// Why this one.
    pub origin: HubOrigin,
}

impl IstioHub {
    /// The hub `version` installs from: `setting` (`HAPPY_ISTIO_HUB`) when given; for a release
    /// [`RELEASE_HUB`]; for a dev build the hub built into it, read from `release_root`
    /// (the unpacked archive's `manifests/profiles/default.yaml`, see [`embedded_hub`]).
    pub fn choose(
        version: &IstioVersion,
        setting: Option<&str>,
        release_root: &Path,
    ) -> Result<Self> {
        if let Some(hub) = setting {
            return Ok(Self {
                hub: hub.to_string(),
                origin: HubOrigin::Setting,
            });
        }
        if !version.is_dev() {
            return Ok(Self {
                hub: RELEASE_HUB.to_string(),
                origin: HubOrigin::Release,
            });
        }
        Ok(Self {
            hub: embedded_hub(release_root)?,
            origin: HubOrigin::DevBuild,
        })
    }

    /// The `--set hub=…` istioctl gets, or None when the built-in hub is the one to use.
    pub fn install_override(&self) -> Option<&str> {
        match self.origin {
            HubOrigin::DevBuild | HubOrigin::Found => None,
            HubOrigin::Release | HubOrigin::Setting => Some(&self.hub),
        }
    }

    /// Whether the hub is on a registry Istio is decommissioning.
    pub fn decommissioned(&self) -> bool {
        DECOMMISSIONED.iter().any(|p| self.hub.starts_with(p))
    }

    /// What a failed install adds to its error: the hub, and why it may be the cause.
    pub fn failure_hint(&self) -> String {
        let mut hint = format!("Istio's images come from {self}");
        if self.decommissioned() {
            hint.push_str(
                "; that registry is being decommissioned by Istio (December 2026), so images \
                 may no longer be served there",
            );
        }
        // A kept install is not ours to change; for the others the setting is the fix.
        if matches!(self.origin, HubOrigin::Release | HubOrigin::DevBuild) {
            hint.push_str(&format!("; {HUB_VAR} names another hub"));
        }
        hint
    }
}

impl fmt::Display for IstioHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.origin {
            HubOrigin::Release => "where every Istio release is published",
            HubOrigin::Setting => "set by HAPPY_ISTIO_HUB",
            HubOrigin::DevBuild => "built into the dev build",
            HubOrigin::Found => "of the Istio found in the cluster",
        };
        write!(f, "{} ({why})", self.hub)
    }
}

/// Checks a `HAPPY_ISTIO_HUB` value: a registry host (with an optional port) and an optional
/// path, as image references are written (`<hub>/pilot:<tag>` must be a reference); a trailing
/// `/` is dropped. `Err` says what is wrong.
pub(crate) fn parse_hub(value: &str) -> std::result::Result<String, String> {
    let hub = value.trim().trim_end_matches('/');
    if hub.is_empty() {
        return Err("expected a hub such as docker.io/istio".into());
    }
    let mut parts = hub.split('/');
    let host = parts.next().unwrap_or_default();
    let path_ok = parts.all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    });
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if !host_ok || !path_ok {
        return Err(
            "expected a hub such as docker.io/istio or localhost:5000/istio: a registry and a \
             lower-case path, without an image name, tag or digest (istioctl adds \
             /pilot:<version> and /proxyv2:<version>)"
                .into(),
        );
    }
    Ok(hub.to_string())
}

/// The hub of an image reference (`docker.io/istio/pilot:1.30.5` → `docker.io/istio`), or
/// None when it names no hub.
pub(crate) fn image_hub(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    without_digest.rsplit_once('/').map(|(hub, _)| hub)
}

/// The hub built into a release: `spec.hub` of its `manifests/profiles/default.yaml`.
/// release-builder writes the build's hub there (istio/release-builder master
/// `pkg/build/archive.go` copies `manifests/profiles` into the archive and `updateValues`
/// replaces every `hub: <known hub>` with the manifest's `docker:`), the same value it passes
/// to istio's build as `HUB` (`pkg/util/command.go` `StandardEnv`), which istioctl compiles in
/// (istio/istio `common/scripts/report_build_info.sh`, `pkg/version.buildHub`).
pub(crate) fn embedded_hub(release_root: &Path) -> Result<String> {
    let path = release_root
        .join("manifests")
        .join("profiles")
        .join("default.yaml");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::LocalIo {
        action: format!("read the hub built into this Istio (or set {HUB_VAR} to name one) from"),
        path: path.clone(),
        source,
    })?;
    hub_of_profile(&text).ok_or_else(|| Error::Archive {
        path,
        reason: format!(
            "its IstioOperator has no spec.hub to say where its images are; set {HUB_VAR}"
        ),
    })
}

/// `spec.hub` of an IstioOperator profile.
fn hub_of_profile(text: &str) -> Option<String> {
    let doc: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    doc["spec"]["hub"]
        .as_str()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> IstioVersion {
        text.parse().unwrap()
    }

    /// The head of istio/istio master `manifests/profiles/default.yaml` as a dev archive
    /// carries it (release-builder's `updateValues` leaves `registry.istio.io/testing`).
    const DEV_PROFILE: &str = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n\
        metadata:\n  namespace: istio-system\nspec:\n  hub: registry.istio.io/testing\n  \
        tag: 1.32.0-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c\n\n  components:\n    \
        base:\n      enabled: true\n";

    #[test]
    fn releases_install_from_docker_hub_whatever_istioctl_has_built_in() {
        let none = Path::new("/nonexistent");
        for v in ["1.29.8", "1.30.5", "1.31.1", "1.31.0-rc.0"] {
            let hub = IstioHub::choose(&version(v), None, none).unwrap();
            assert_eq!(hub.hub, "docker.io/istio", "{v}");
            assert_eq!(hub.install_override(), Some("docker.io/istio"));
            assert!(!hub.decommissioned());
        }
        let set = IstioHub::choose(&version("1.30.5"), Some("localhost:5000/istio"), none).unwrap();
        assert_eq!(set.install_override(), Some("localhost:5000/istio"));
        assert!(set.to_string().contains("HAPPY_ISTIO_HUB"), "{set}");
    }

    #[test]
    fn dev_builds_keep_their_built_in_hub_and_say_it_is_going_away() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("manifests/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(profiles.join("default.yaml"), DEV_PROFILE).unwrap();
        let dev = version("1.32.0-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c");
        let hub = IstioHub::choose(&dev, None, dir.path()).unwrap();
        assert_eq!(hub.hub, "registry.istio.io/testing");
        assert_eq!(hub.origin, HubOrigin::DevBuild);
        assert_eq!(hub.install_override(), None, "istioctl's own hub is used");
        assert!(hub.decommissioned());
        let hint = hub.failure_hint();
        assert!(
            hint.contains("registry.istio.io/testing")
                && hint.contains("decommissioned")
                && hint.contains("HAPPY_ISTIO_HUB"),
            "{hint}"
        );
        // The setting wins, and a dev build without a readable profile is then no problem.
        let set = IstioHub::choose(&dev, Some("docker.io/istio"), Path::new("/nonexistent"));
        assert_eq!(set.unwrap().install_override(), Some("docker.io/istio"));
    }

    #[test]
    fn a_dev_archive_without_a_hub_is_an_error_naming_the_file_and_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let dev = version("1.32.0-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c");
        let err = IstioHub::choose(&dev, None, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("manifests/profiles/default.yaml") && err.contains("HAPPY_ISTIO_HUB"),
            "{err}"
        );
        let profiles = dir.path().join("manifests/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(profiles.join("default.yaml"), "spec:\n  tag: latest\n").unwrap();
        let err = IstioHub::choose(&dev, None, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.hub"), "{err}");
    }

    #[test]
    fn hub_values_are_checked() {
        assert_eq!(parse_hub("docker.io/istio/").unwrap(), "docker.io/istio");
        assert_eq!(
            parse_hub("localhost:5000/istio").unwrap(),
            "localhost:5000/istio"
        );
        assert_eq!(
            parse_hub("gcr.io/istio-release").unwrap(),
            "gcr.io/istio-release"
        );
        for bad in [
            "",
            "docker.io/istio/pilot:1.30.5",
            "docker.io/Istio",
            "docker.io//istio",
            "docker.io/istio@sha256:abc",
            "docker io/istio",
        ] {
            assert!(parse_hub(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_hubs() {
        assert_eq!(
            image_hub("docker.io/istio/pilot:1.30.5"),
            Some("docker.io/istio")
        );
        assert_eq!(
            image_hub("localhost:5000/istio/pilot:1.30.5@sha256:ab"),
            Some("localhost:5000/istio")
        );
        assert_eq!(image_hub("pilot:1.30.5"), None);
    }
}
