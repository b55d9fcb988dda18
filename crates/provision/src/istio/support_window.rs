//! Which Kubernetes versions each Istio minor supports, and the verdict for one pairing.
//!
//! A real run on kind (where the suite chooses Kubernetes through the node image) is refused
//! before anything is created when the pair is outside the window; on an `existing` cluster
//! (not ours to choose) the run goes on with a loud warning. istioctl itself only warns below
//! its minimum and never checks a maximum (istio/istio `istioctl/pkg/install/k8sversion/
//! version.go`, `MinK8SVersion`), so without this check an unsupported pair runs silently.

use std::fmt;

use super::IstioVersion;

/// A Kubernetes `major.minor`.
pub(crate) type KubeMinor = (u64, u64);

/// One Istio minor's supported Kubernetes window, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The Istio minor line, e.g. `(1, 31)`.
    pub istio: (u64, u64),
    /// Oldest supported Kubernetes minor.
    pub oldest: KubeMinor,
    /// Newest supported Kubernetes minor.
    pub newest: KubeMinor,
    /// Where the window is stated.
    pub source: &'static str,
}

impl Window {
    /// True when `kube` lies inside the window.
    pub(crate) fn contains(&self, kube: KubeMinor) -> bool {
        self.oldest <= kube && kube <= self.newest
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Istio {}.{} supports Kubernetes {}.{} to {}.{} ({})",
            self.istio.0,
            self.istio.1,
            self.oldest.0,
            self.oldest.1,
            self.newest.0,
            self.newest.1,
            self.source
        )
    }
}

/// The windows, from the "is officially supported on Kubernetes versions X to Y" tip of each
/// minor's release announcement in istio/istio.io (content/en/news/releases/<m>.x/
/// announcing-<m>/_index.md). istio.io's `data/compatibility/supportStatus.yml` is edited
/// after a release and may later widen a window; the announcements are the fixed statement.
pub(crate) const WINDOWS: &[Window] = &[
    Window {
        istio: (1, 29),
        oldest: (1, 31),
        newest: (1, 35),
        source: "istio.io news/releases/1.29.x/announcing-1.29",
    },
    Window {
        istio: (1, 30),
        oldest: (1, 32),
        newest: (1, 36),
        source: "istio.io news/releases/1.30.x/announcing-1.30",
    },
    Window {
        istio: (1, 31),
        oldest: (1, 32),
        newest: (1, 36),
        source: "istio.io news/releases/1.31.x/announcing-1.31",
    },
];

/// The window of an Istio minor, if the table has it.
pub(crate) fn window_of(istio: (u64, u64)) -> Option<&'static Window> {
    WINDOWS.iter().find(|w| w.istio == istio)
}

/// The `major.minor` of a Kubernetes version as the API server (`v1.35.0`, `v1.33.9+k3s1`) or
/// a kind node image tag (`kindest/node:v1.35.0@sha256:…`) spells it.
pub(crate) fn parse_kube_minor(text: &str) -> Option<KubeMinor> {
    let without_digest = text.split('@').next().unwrap_or(text);
    // An image reference: the tag after the last `:` of the last path segment.
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let version = last.rsplit_once(':').map_or(last, |(_, tag)| tag);
    let version = version.trim().trim_start_matches('v');
    let mut parts = version.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The verdict on running an Istio version on a Kubernetes minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Support {
    /// Inside the minor's window.
    Supported(Window),
    /// Outside it.
    Outside(Window),
    /// The table has no window for this minor (too new, too old, or a dev build of the next
    /// minor); what is known is said.
    Unknown(String),
}

impl Support {
    /// True only for [`Support::Outside`]: unknown pairs are not refused, only said.
    pub(crate) fn is_outside(&self) -> bool {
        matches!(self, Support::Outside(_))
    }
}

/// Judges `istio` on Kubernetes `kube`.
pub(crate) fn check(istio: &IstioVersion, kube: KubeMinor) -> Support {
    let line = istio.minor_line();
    match window_of(line) {
        Some(window) if window.contains(kube) => Support::Supported(*window),
        Some(window) => Support::Outside(*window),
        None => {
            let newest = WINDOWS.iter().max_by_key(|w| w.istio);
            let hint = match newest {
                Some(w) if line > w.istio => format!(
                    "newer than the table's newest minor; {w}, so Kubernetes {}.{} is {} that window",
                    kube.0,
                    kube.1,
                    if w.contains(kube) {
                        "inside"
                    } else {
                        "outside"
                    }
                ),
                _ => "older than every minor in the table".to_string(),
            };
            let kind = if istio.is_dev() {
                "a dev build"
            } else if istio.is_prerelease() {
                "a pre-release"
            } else {
                "a release"
            };
            Support::Unknown(format!(
                "Istio {istio} ({kind} of {}.{}) has no known supported Kubernetes window \
                 (crates/provision/src/istio/support_window.rs): {hint}",
                line.0, line.1
            ))
        }
    }
}

/// One line for the output and the report: the verdict in words.
pub(crate) fn describe(istio: &IstioVersion, kube: KubeMinor, support: &Support) -> String {
    match support {
        Support::Supported(w) => format!(
            "Kubernetes {}.{} is supported by Istio {istio}: {w}",
            kube.0, kube.1
        ),
        Support::Outside(w) => format!(
            "Kubernetes {}.{} is OUTSIDE the window of Istio {istio}: {w}",
            kube.0, kube.1
        ),
        Support::Unknown(reason) => reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> IstioVersion {
        text.parse().unwrap()
    }

    #[test]
    fn kube_versions_from_servers_and_images() {
        assert_eq!(parse_kube_minor("v1.35.0"), Some((1, 35)));
        assert_eq!(parse_kube_minor("v1.33.9+k3s1"), Some((1, 33)));
        assert_eq!(parse_kube_minor("v1.36.1-eks-1234"), Some((1, 36)));
        assert_eq!(
            parse_kube_minor(
                "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"
            ),
            Some((1, 35))
        );
        assert_eq!(
            parse_kube_minor("localhost:5000/kindest/node:v1.34.2"),
            Some((1, 34))
        );
        assert_eq!(parse_kube_minor("kindest/node:latest"), None);
        assert_eq!(parse_kube_minor(""), None);
    }

    #[test]
    fn the_windows_of_the_announcements() {
        // 1.29 → 1.31–1.35; 1.30 and 1.31 → 1.32–1.36.
        assert!(matches!(
            check(&v("1.29.8"), (1, 31)),
            Support::Supported(_)
        ));
        assert!(matches!(
            check(&v("1.29.8"), (1, 35)),
            Support::Supported(_)
        ));
        assert!(check(&v("1.29.8"), (1, 36)).is_outside());
        assert!(check(&v("1.29.8"), (1, 30)).is_outside());
        assert!(check(&v("1.30.5"), (1, 31)).is_outside());
        assert!(matches!(
            check(&v("1.30.5"), (1, 36)),
            Support::Supported(_)
        ));
        assert!(matches!(
            check(&v("1.31.1"), (1, 32)),
            Support::Supported(_)
        ));
        assert!(check(&v("1.31.1"), (1, 37)).is_outside());
        // A pre-release of a known minor uses that minor's window.
        assert!(check(&v("1.31.0-rc.0"), (1, 37)).is_outside());
    }

    #[test]
    fn kind_v0_31_kubernetes_fits_every_minor_of_the_table() {
        // The pinned node image must run every minor the nightly tests.
        let kube = parse_kube_minor(crate::provision::kind::KIND_NODE_IMAGE).unwrap();
        for w in WINDOWS {
            assert!(w.contains(kube), "{w} does not contain {kube:?}");
        }
    }

    #[test]
    fn unknown_minors_are_said_not_refused() {
        let dev = v("1.32-alpha.0123456789abcdef0123456789abcdef01234567");
        let verdict = check(&dev, (1, 35));
        assert!(!verdict.is_outside());
        let Support::Unknown(text) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            text.contains("a dev build of 1.32") && text.contains("inside that window"),
            "{text}"
        );
        // The dev-build name used since 2026-04 (istio/istio prow/release-commit.sh).
        let new_dev = v("1.32.0-alpha.0123456789abcdef0123456789abcdef01234567");
        let Support::Unknown(text) = check(&new_dev, (1, 36)) else {
            panic!()
        };
        assert!(text.contains("a dev build of 1.32"), "{text}");
        let Support::Unknown(text) = check(&v("1.33.0"), (1, 40)) else {
            panic!()
        };
        assert!(
            text.contains("a release of 1.33") && text.contains("outside that window"),
            "{text}"
        );
        let Support::Unknown(text) = check(&v("1.20.0"), (1, 25)) else {
            panic!()
        };
        assert!(text.contains("older than every minor"), "{text}");
    }

    #[test]
    fn descriptions_name_both_versions_and_the_source() {
        let istio = v("1.29.8");
        let text = describe(&istio, (1, 36), &check(&istio, (1, 36)));
        assert!(
            text.contains("OUTSIDE")
                && text.contains("1.36")
                && text.contains("1.31 to 1.35")
                && text.contains("announcing-1.29"),
            "{text}"
        );
    }
}
