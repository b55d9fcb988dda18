//! Which Istio to test: the pinned default, `latest` (the newest stable release on GitHub),
//! the newest patch of each recent minor (the nightly matrix) and the newest dev build.
//! The choices are pure functions of the fetched documents, so they are tested on samples.

use serde::Deserialize;

use super::version::IstioVersion;
use crate::download::Downloader;
use crate::{Error, Result};

/// The release used when `ISTIO_VERSION` is unset: the newest stable release that could be
/// confirmed while writing this (1.31.1, seen pinned in public install scripts of the 1.31
/// line, November 2026). Raise it deliberately, with a run of the suite.
pub const PINNED_DEFAULT: &str = "1.31.1";

/// GitHub's release list for istio/istio (newest first, 100 per page covers several minors).
pub const RELEASES_URL: &str = "https://api.github.com/repos/istio/istio/releases?per_page=100";

/// The pointer file naming the newest dev build (`1.30-alpha.<commit>`).
pub const DEV_LATEST_URL: &str = "https://storage.googleapis.com/istio-build/dev/latest";

/// The pinned default as a version.
pub fn pinned_default() -> IstioVersion {
    PINNED_DEFAULT
        .parse()
        .unwrap_or_else(|_| IstioVersion::release(1, 31, 1))
}

/// One entry of GitHub's release list (only the fields the choice needs).
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseEntry {
    /// The tag, e.g. `1.28.1`.
    pub tag_name: String,
    /// Marked as pre-release on GitHub.
    #[serde(default)]
    pub prerelease: bool,
    /// Not published yet.
    #[serde(default)]
    pub draft: bool,
}

/// Parses GitHub's release list JSON; `source` names it in errors.
pub fn parse_release_list(json: &str, source: &str) -> Result<Vec<ReleaseEntry>> {
    serde_json::from_str(json).map_err(|e| Error::Parse {
        what: format!("Istio release list from {source}"),
        message: e.to_string(),
    })
}

/// The published stable releases of a list: drafts, GitHub pre-releases, tags with a
/// pre-release part and tags that are not versions at all are left out.
pub fn stable_releases(entries: &[ReleaseEntry]) -> Vec<IstioVersion> {
    entries
        .iter()
        .filter(|e| !e.draft && !e.prerelease)
        .filter_map(|e| e.tag_name.parse::<IstioVersion>().ok())
        .filter(|v| !v.is_prerelease())
        .collect()
}

/// The highest stable release of a list.
pub fn latest_stable(entries: &[ReleaseEntry], source: &str) -> Result<IstioVersion> {
    stable_releases(entries)
        .into_iter()
        .max()
        .ok_or_else(|| Error::IstioVersion {
            input: "latest".into(),
            reason: format!("the release list from {source} has no stable release"),
        })
}

/// The newest patch of each of the `minors` newest minor lines, newest first.
pub fn newest_patch_per_minor(versions: &[IstioVersion], minors: usize) -> Vec<IstioVersion> {
    let mut stable: Vec<&IstioVersion> = versions.iter().filter(|v| !v.is_prerelease()).collect();
    stable.sort_by(|a, b| b.cmp(a));
    let mut chosen: Vec<IstioVersion> = Vec::new();
    for version in stable {
        if chosen.len() == minors {
            break;
        }
        if chosen.last().map(IstioVersion::minor_line) != Some(version.minor_line()) {
            chosen.push(version.clone());
        }
    }
    chosen
}

/// The nightly matrix's versions: the newest patch of each of the `minors` newest minors,
/// newest first, then the newest dev build when there is one.
pub fn nightly_versions(
    entries: &[ReleaseEntry],
    minors: usize,
    dev: Option<&IstioVersion>,
) -> Vec<String> {
    let mut versions: Vec<String> = newest_patch_per_minor(&stable_releases(entries), minors)
        .iter()
        .map(IstioVersion::to_string)
        .collect();
    versions.extend(dev.map(IstioVersion::to_string));
    versions
}

/// The matrix as the nightly workflow reads it: `{"istio":["1.31.1",…]}`.
pub fn matrix_json(versions: &[String]) -> String {
    serde_json::json!({ "istio": versions }).to_string()
}

/// Parses the dev `latest` pointer's content.
pub fn parse_dev_pointer(text: &str, source: &str) -> Result<IstioVersion> {
    let version: IstioVersion = text
        .trim()
        .parse()
        .map_err(|e: Error| Error::IstioVersion {
            input: text.trim().to_string(),
            reason: format!("the dev build pointer {source} does not name a dev build: {e}"),
        })?;
    if !version.is_dev() {
        return Err(Error::IstioVersion {
            input: version.to_string(),
            reason: format!("the dev build pointer {source} names a release, not a dev build"),
        });
    }
    Ok(version)
}

/// Fetches GitHub's release list. A `GITHUB_TOKEN` in the environment (set by GitHub
/// Actions) lifts the anonymous rate limit; it is sent only to api.github.com.
pub async fn fetch_release_list(downloader: &Downloader) -> Result<Vec<ReleaseEntry>> {
    let mut headers = vec![("accept", "application/vnd.github+json".to_string())];
    if let Ok(token) = std::env::var("GITHUB_TOKEN")
        && !token.trim().is_empty()
    {
        headers.push(("authorization", format!("Bearer {}", token.trim())));
    }
    let json = downloader.fetch_text_with(RELEASES_URL, &headers).await?;
    parse_release_list(&json, RELEASES_URL)
}

/// Resolves `latest` over the network.
pub async fn fetch_latest_stable(downloader: &Downloader) -> Result<IstioVersion> {
    latest_stable(&fetch_release_list(downloader).await?, RELEASES_URL)
}

/// Resolves the newest dev build over the network.
pub async fn fetch_latest_dev(downloader: &Downloader) -> Result<IstioVersion> {
    let text = downloader.fetch_text(DEV_LATEST_URL).await?;
    parse_dev_pointer(&text, DEV_LATEST_URL)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[
      {"tag_name": "1.30.0-rc.1", "prerelease": true, "draft": false, "name": "Istio 1.30.0-rc.1"},
      {"tag_name": "1.31.0", "prerelease": false, "draft": true},
      {"tag_name": "1.29.2", "prerelease": false, "draft": false},
      {"tag_name": "1.28.6", "prerelease": false, "draft": false},
      {"tag_name": "1.29.10", "prerelease": false, "draft": false},
      {"tag_name": "1.30.0-beta.0", "prerelease": false, "draft": false},
      {"tag_name": "1.27.9", "prerelease": false, "draft": false},
      {"tag_name": "1.28.12", "prerelease": false, "draft": false},
      {"tag_name": "helm-chart-x", "prerelease": false, "draft": false},
      {"tag_name": "1.26.8", "prerelease": false, "draft": false}
    ]"#;

    fn v(s: &str) -> IstioVersion {
        s.parse().unwrap()
    }

    #[test]
    fn latest_skips_drafts_prereleases_and_non_versions() {
        let list = parse_release_list(SAMPLE, "sample").unwrap();
        assert_eq!(latest_stable(&list, "sample").unwrap(), v("1.29.10"));
    }

    #[test]
    fn latest_of_a_list_without_stable_releases_is_an_error() {
        let list = parse_release_list(
            r#"[{"tag_name":"1.30.0-rc.1","prerelease":true,"draft":false}]"#,
            "sample",
        )
        .unwrap();
        let err = latest_stable(&list, "https://example/releases")
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://example/releases"), "{err}");
    }

    #[test]
    fn malformed_list_names_its_source() {
        let err = parse_release_list("{\"message\": \"rate limited\"}", RELEASES_URL)
            .unwrap_err()
            .to_string();
        assert!(err.contains(RELEASES_URL), "{err}");
    }

    #[test]
    fn newest_patch_of_each_of_the_newest_minors() {
        let list = parse_release_list(SAMPLE, "sample").unwrap();
        let stable = stable_releases(&list);
        let chosen = newest_patch_per_minor(&stable, 3);
        assert_eq!(chosen, vec![v("1.29.10"), v("1.28.12"), v("1.27.9")]);
        assert_eq!(newest_patch_per_minor(&stable, 1), vec![v("1.29.10")]);
        assert_eq!(newest_patch_per_minor(&stable, 10).len(), 4);
    }

    #[test]
    fn nightly_matrix_has_three_minors_and_the_dev_build() {
        let list = parse_release_list(SAMPLE, "sample").unwrap();
        let sha = "4c1f5a2e9b7d0c3f8e6a1b2c3d4e5f6a7b8c9d0e";
        let dev = v(&format!("1.30-alpha.{sha}"));
        let versions = nightly_versions(&list, 3, Some(&dev));
        assert_eq!(
            versions,
            ["1.29.10", "1.28.12", "1.27.9", &format!("1.30-alpha.{sha}")]
        );
        assert_eq!(
            matrix_json(&versions[..2]),
            r#"{"istio":["1.29.10","1.28.12"]}"#
        );
        assert_eq!(nightly_versions(&list, 2, None), ["1.29.10", "1.28.12"]);
    }

    #[test]
    fn dev_pointer() {
        let sha = "4c1f5a2e9b7d0c3f8e6a1b2c3d4e5f6a7b8c9d0e";
        let dev = parse_dev_pointer(&format!("1.30-alpha.{sha}\n"), DEV_LATEST_URL).unwrap();
        assert_eq!(dev.to_string(), format!("1.30-alpha.{sha}"));
        let err = parse_dev_pointer("1.29.2", DEV_LATEST_URL)
            .unwrap_err()
            .to_string();
        assert!(err.contains(DEV_LATEST_URL), "{err}");
        assert!(parse_dev_pointer("<html>", DEV_LATEST_URL).is_err());
    }

    #[test]
    fn pinned_default_is_a_stable_release() {
        let pinned: IstioVersion = PINNED_DEFAULT.parse().unwrap();
        assert!(!pinned.is_prerelease());
        assert_eq!(pinned_default(), pinned);
    }
}
