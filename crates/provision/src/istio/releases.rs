//! Which Istio to test: the pinned default, `latest` (the newest stable release on GitHub),
//! the newest patch of each recent minor (the nightly matrix) and the newest dev build (the
//! `latest` pointer in istio's dev build bucket). The choices are pure functions of the fetched
//! documents, so they are tested on samples shaped as upstream publishes them.

use serde::Deserialize;

use super::artifacts::{dev_pointer_urls, first_that_works};
use super::version::IstioVersion;
use crate::download::Downloader;
use crate::{Error, Result};

/// The release used when `ISTIO_VERSION` is unset: the newest stable release that could be
/// confirmed while writing this (istio.io `content/en/news/releases/1.31.x/announcing-1.31.1`,
/// publishdate 2026-09-21; no newer patch or minor was announced in the sources read). Raise it
/// deliberately, with a run of the suite.
pub const PINNED_DEFAULT: &str = "1.31.1";

/// GitHub's release list for istio/istio (newest first; 100, the API's maximum page size,
/// covers several minors).
pub const RELEASES_URL: &str = "https://api.github.com/repos/istio/istio/releases?per_page=100";

/// The pinned default as a version.
pub fn pinned_default() -> IstioVersion {
    PINNED_DEFAULT
        .parse()
        .unwrap_or_else(|_| IstioVersion::release(1, 31, 1))
}

/// One entry of GitHub's release list (only the fields the choice needs; the API returns many
/// more, see the test sample).
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseEntry {
    /// The tag, e.g. `1.28.1`.
    pub tag_name: String,
    /// Marked as pre-release on GitHub. Not used for the choice: see [`stable_releases`].
    #[serde(default)]
    pub prerelease: bool,
    /// Not published yet.
    #[serde(default)]
    pub draft: bool,
}

/// Parses GitHub's release list JSON; `source` names it in errors.
pub(crate) fn parse_release_list(json: &str, source: &str) -> Result<Vec<ReleaseEntry>> {
    serde_json::from_str(json).map_err(|e| {
        happy_claims::Error::Parse {
            what: format!("Istio release list from {source}"),
            message: e.to_string(),
        }
        .into()
    })
}

/// The published stable releases of a list: drafts, tags with a pre-release part (`-alpha`,
/// `-beta`, `-rc`) and tags that are not versions at all are left out.
///
/// GitHub's `prerelease` flag is deliberately not used: istio/release-builder
/// `pkg/publish/github.go` (`GithubRelease`) creates every Istio release, stable ones too, with
/// `Draft: true, Prerelease: true`, and a release manager then publishes it by hand. A stable
/// patch whose flag was left set would otherwise never be tested. The tag says what the
/// release is; the tag is also what the archives are named after.
pub(crate) fn stable_releases(entries: &[ReleaseEntry]) -> Vec<IstioVersion> {
    entries
        .iter()
        .filter(|e| !e.draft)
        .filter_map(|e| e.tag_name.parse::<IstioVersion>().ok())
        .filter(|v| !v.is_prerelease())
        .collect()
}

/// The highest stable release of a list.
pub(crate) fn latest_stable(entries: &[ReleaseEntry], source: &str) -> Result<IstioVersion> {
    stable_releases(entries)
        .into_iter()
        .max()
        .ok_or_else(|| Error::IstioVersion {
            input: "latest".into(),
            reason: format!("the release list from {source} has no stable release"),
        })
}

/// The newest patch of each of the `minors` newest minor lines, newest first.
pub(crate) fn newest_patch_per_minor(
    versions: &[IstioVersion],
    minors: usize,
) -> Vec<IstioVersion> {
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

/// The entry of the nightly matrix that stands for a dev build the resolver could not name:
/// the matrix cell runs with `ISTIO_VERSION=dev`, resolves the pointer itself and fails with
/// the reason when it still cannot, so a missing dev build is a red cell, never a silent gap.
pub const UNRESOLVED_DEV: &str = "dev";

/// What the resolver found out about the newest dev build.
#[derive(Debug)]
pub enum DevChoice {
    /// Not asked for (`--no-dev`).
    Skipped,
    /// The pointer named this build.
    Resolved(IstioVersion),
    /// The pointer could not be read or understood.
    Unresolved(Error),
}

/// The nightly matrix's versions: the newest patch of each of the `minors` newest minors,
/// newest first, then the newest dev build — [`UNRESOLVED_DEV`] when it could not be named.
pub fn nightly_versions(entries: &[ReleaseEntry], minors: usize, dev: &DevChoice) -> Vec<String> {
    let mut versions: Vec<String> = newest_patch_per_minor(&stable_releases(entries), minors)
        .iter()
        .map(IstioVersion::to_string)
        .collect();
    match dev {
        DevChoice::Skipped => {}
        DevChoice::Resolved(version) => versions.push(version.to_string()),
        DevChoice::Unresolved(_) => versions.push(UNRESOLVED_DEV.to_string()),
    }
    versions
}

/// The matrix as the nightly workflow reads it: `{"istio":["1.31.1",…]}`.
pub fn matrix_json(versions: &[String]) -> String {
    serde_json::json!({ "istio": versions }).to_string()
}

/// Parses the dev `latest` pointer's content: the bare version string, with no newline, as
/// release-builder `pkg/publish/gcs.go` (`w.Write([]byte(manifest.Version))`) and `s3.go`
/// (`strings.NewReader(manifest.Version)`) write it. Surrounding whitespace is tolerated.
pub(crate) fn parse_dev_pointer(text: &str, source: &str) -> Result<IstioVersion> {
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
pub(crate) async fn fetch_latest_stable(downloader: &Downloader) -> Result<IstioVersion> {
    latest_stable(&fetch_release_list(downloader).await?, RELEASES_URL)
}

/// Resolves the newest dev build over the network from the first pointer that answers with
/// a dev build ([`dev_pointer_urls`]: blob.istio.io, then Google Cloud Storage).
pub async fn fetch_latest_dev(downloader: &Downloader) -> Result<IstioVersion> {
    fetch_latest_dev_from(downloader, &dev_pointer_urls()).await
}

/// [`fetch_latest_dev`] from explicit pointer URLs (tests serve them locally).
pub(crate) async fn fetch_latest_dev_from(
    downloader: &Downloader,
    urls: &[String],
) -> Result<IstioVersion> {
    first_that_works("the Istio dev build pointer", urls, String::as_str, |url| {
        let url = url.clone();
        async move { parse_dev_pointer(&downloader.fetch_text(&url).await?, &url) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One release as GitHub's "List releases" answers it: the fields and nesting of the
    /// example response in GitHub's REST docs (docs.github.com/en/rest/releases/releases,
    /// "List releases", API version 2022-11-28), with the values istio/release-builder
    /// `pkg/publish/github.go` gives an Istio release (name `Istio <version>`, the body's two
    /// links, assets `istio*`). The author, ids and sizes are the docs example's or arbitrary;
    /// the suite reads none of them. A draft has `published_at: null`.
    fn entry(id: u64, tag: &str, draft: bool, prerelease: bool) -> String {
        let minor = &tag[..tag.rfind('.').unwrap_or(tag.len())];
        let published = if draft {
            "null".to_string()
        } else {
            "\"2026-09-21T15:02:11Z\"".to_string()
        };
        format!(
            r#"{{
  "url": "https://api.github.com/repos/istio/istio/releases/{id}",
  "assets_url": "https://api.github.com/repos/istio/istio/releases/{id}/assets",
  "upload_url": "https://uploads.github.com/repos/istio/istio/releases/{id}/assets{{?name,label}}",
  "html_url": "https://github.com/istio/istio/releases/tag/{tag}",
  "id": {id},
  "author": {{
    "login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=",
    "avatar_url": "https://github.com/images/error/octocat_happy.gif", "gravatar_id": "",
    "url": "https://api.github.com/users/octocat", "html_url": "https://github.com/octocat",
    "type": "User", "site_admin": false
  }},
  "node_id": "MDc6UmVsZWFzZTE=",
  "tag_name": "{tag}",
  "target_commitish": "master",
  "name": "Istio {tag}",
  "draft": {draft},
  "prerelease": {prerelease},
  "created_at": "2026-09-21T14:40:05Z",
  "published_at": {published},
  "assets": [
    {{
      "url": "https://api.github.com/repos/istio/istio/releases/assets/{id}1",
      "id": {id}1,
      "node_id": "MDEyOlJlbGVhc2VBc3NldDE=",
      "name": "istio-{tag}-linux-amd64.tar.gz",
      "label": "",
      "uploader": {{ "login": "octocat", "id": 1, "type": "User", "site_admin": false }},
      "content_type": "application/octet-stream",
      "state": "uploaded",
      "size": 29876543,
      "download_count": 1234,
      "created_at": "2026-09-21T14:41:00Z",
      "updated_at": "2026-09-21T14:41:02Z",
      "browser_download_url": "https://github.com/istio/istio/releases/download/{tag}/istio-{tag}-linux-amd64.tar.gz"
    }}
  ],
  "tarball_url": "https://api.github.com/repos/istio/istio/tarball/{tag}",
  "zipball_url": "https://api.github.com/repos/istio/istio/zipball/{tag}",
  "body": "[Artifacts](http://gcsweb.istio.io/gcs/istio-release/releases/{tag}/)\n[Release Notes](https://istio.io/news/releases/{minor}.x/announcing-{tag}/)"
}}"#
        )
    }

    /// A release list as GitHub returns it, newest first: `(tag, draft, prerelease)`.
    fn list(entries: &[(&str, bool, bool)]) -> String {
        let items: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(i, (tag, draft, pre))| entry(250_000_000 + i as u64, tag, *draft, *pre))
            .collect();
        format!("[\n{}\n]", items.join(",\n"))
    }

    /// Istio's release history around September 2026 (istio.io release notes: 1.31.1, 1.30.5
    /// and 1.29.8 on 2026-09-21), plus the cases the choice must get right.
    fn sample() -> String {
        list(&[
            ("1.32.0-alpha.0", false, true),
            // Created by release-builder, not published yet (visible only with push access).
            ("1.31.2", true, true),
            ("1.31.1", false, false),
            ("1.30.5", false, false),
            // A stable patch whose pre-release flag was left set is still a stable release.
            ("1.29.8", false, true),
            ("1.31.0", false, false),
            ("1.31.0-rc.0", false, true),
            // The tag says pre-release even though the flag does not.
            ("1.31.0-beta.2", false, false),
            ("1.30.4", false, false),
            ("1.29.7", false, false),
            ("1.28.9", false, false),
            ("helm-chart-x", false, false),
        ])
    }

    fn v(s: &str) -> IstioVersion {
        s.parse().unwrap()
    }

    const SHA: &str = "86c9f01fd735fb01d8192f5bcaf0d424afb7f14c";

    #[test]
    fn the_api_shape_parses() {
        let parsed = parse_release_list(&sample(), "sample").unwrap();
        assert_eq!(parsed.len(), 12);
        assert_eq!(parsed[2].tag_name, "1.31.1");
        assert!(parsed[1].draft && parsed[1].prerelease);
        assert!(!parsed[2].draft && !parsed[2].prerelease);
    }

    #[test]
    fn latest_skips_drafts_prerelease_tags_and_non_versions() {
        let entries = parse_release_list(&sample(), "sample").unwrap();
        assert_eq!(latest_stable(&entries, "sample").unwrap(), v("1.31.1"));
        let stable: Vec<String> = stable_releases(&entries)
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(
            stable,
            [
                "1.31.1", "1.30.5", "1.29.8", "1.31.0", "1.30.4", "1.29.7", "1.28.9"
            ]
        );
    }

    #[test]
    fn a_published_stable_tag_counts_even_when_flagged_prerelease() {
        let entries = parse_release_list(&list(&[("1.31.1", false, true)]), "s").unwrap();
        assert_eq!(latest_stable(&entries, "s").unwrap(), v("1.31.1"));
        let draft = parse_release_list(&list(&[("1.31.1", true, false)]), "s").unwrap();
        assert!(latest_stable(&draft, "s").is_err());
    }

    #[test]
    fn latest_of_a_list_without_stable_releases_is_an_error_naming_it() {
        let entries = parse_release_list(&list(&[("1.32.0-rc.1", false, true)]), "s").unwrap();
        let err = latest_stable(&entries, "https://example/releases")
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://example/releases"), "{err}");
    }

    #[test]
    fn malformed_list_names_its_source() {
        // What the API answers when the anonymous rate limit is used up (HTTP 403 aside).
        let err = parse_release_list(
            r#"{"message":"API rate limit exceeded for 192.0.2.1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#,
            RELEASES_URL,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(RELEASES_URL), "{err}");
    }

    #[test]
    fn newest_patch_of_each_of_the_newest_minors() {
        let entries = parse_release_list(&sample(), "sample").unwrap();
        let stable = stable_releases(&entries);
        let chosen = newest_patch_per_minor(&stable, 3);
        assert_eq!(chosen, vec![v("1.31.1"), v("1.30.5"), v("1.29.8")]);
        assert_eq!(newest_patch_per_minor(&stable, 1), vec![v("1.31.1")]);
        assert_eq!(newest_patch_per_minor(&stable, 10).len(), 4);
    }

    #[test]
    fn nightly_matrix_has_three_minors_and_the_dev_build() {
        let entries = parse_release_list(&sample(), "sample").unwrap();
        let dev = v(&format!("1.32.0-alpha.{SHA}"));
        let versions = nightly_versions(&entries, 3, &DevChoice::Resolved(dev));
        assert_eq!(
            versions,
            ["1.31.1", "1.30.5", "1.29.8", &format!("1.32.0-alpha.{SHA}")]
        );
        assert_eq!(
            matrix_json(&versions[..2]),
            r#"{"istio":["1.31.1","1.30.5"]}"#
        );
        assert_eq!(
            nightly_versions(&entries, 2, &DevChoice::Skipped),
            ["1.31.1", "1.30.5"]
        );
    }

    #[test]
    fn an_unresolved_dev_build_stays_in_the_matrix_as_a_cell_that_resolves_again() {
        let entries = parse_release_list(&sample(), "sample").unwrap();
        let failed = DevChoice::Unresolved(Error::Other("pointer gone".into()));
        let versions = nightly_versions(&entries, 3, &failed);
        assert_eq!(versions, ["1.31.1", "1.30.5", "1.29.8", "dev"]);
        // The cell's ISTIO_VERSION means "resolve the newest dev build" to the settings.
        assert_eq!(UNRESOLVED_DEV, "dev");
    }

    #[test]
    fn dev_pointer_in_both_forms_as_published_without_a_newline() {
        // gcs.go and s3.go write exactly manifest.Version: no newline, no other bytes.
        let current = format!("1.32.0-alpha.{SHA}");
        let dev = parse_dev_pointer(&current, "p").unwrap();
        assert!(dev.is_dev());
        assert_eq!(dev.to_string(), current);
        let old = format!("1.30-alpha.{SHA}");
        assert_eq!(parse_dev_pointer(&old, "p").unwrap().to_string(), old);
        // A copy saved with a trailing newline (curl > file) names the same build.
        assert_eq!(
            parse_dev_pointer(&format!("{current}\n"), "p").unwrap(),
            dev
        );
    }

    #[test]
    fn dev_pointer_naming_anything_else_is_an_error_naming_the_pointer() {
        let url = "https://blob.istio.io/istio-build/dev/latest";
        for bad in [
            "1.31.1",
            "1.32.0-alpha.0",
            "<html><body>Not Found</body></html>",
            "",
        ] {
            let err = parse_dev_pointer(bad, url).unwrap_err().to_string();
            assert!(err.contains(url), "{bad:?}: {err}");
        }
    }

    #[tokio::test]
    async fn dev_pointer_falls_back_to_the_next_bucket_and_names_every_url_when_all_fail() {
        use crate::download::test_server::{Reply, serve};
        use std::collections::HashMap;
        use std::time::Duration;

        let current = format!("1.32.0-alpha.{SHA}");
        let server = serve(HashMap::from([
            ("/gcs/latest", Reply::Ok(current.clone().into_bytes())),
            (
                "/html/latest",
                Reply::Ok(b"<html>maintenance</html>".to_vec()),
            ),
        ]))
        .await;
        let cache = tempfile::tempdir().unwrap();
        let dl = Downloader::new(cache.path(), Duration::from_secs(10)).unwrap();
        let url = |p: &str| format!("{}/{p}/latest", server.base);

        let found = fetch_latest_dev_from(&dl, &[url("blob"), url("gcs")])
            .await
            .unwrap();
        assert_eq!(found.to_string(), current);

        // A pointer that answers with something else is not trusted either.
        let found = fetch_latest_dev_from(&dl, &[url("html"), url("gcs")])
            .await
            .unwrap();
        assert_eq!(found.to_string(), current);

        let err = fetch_latest_dev_from(&dl, &[url("blob"), url("html")])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{}: HTTP 404", url("blob")))
                && err.contains(&url("html"))
                && err.contains("maintenance"),
            "{err}"
        );
    }

    #[test]
    fn pinned_default_is_a_stable_release() {
        let pinned: IstioVersion = PINNED_DEFAULT.parse().unwrap();
        assert!(!pinned.is_prerelease());
        assert_eq!(pinned_default(), pinned);
    }
}
