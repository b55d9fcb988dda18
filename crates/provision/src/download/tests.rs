//! Downloads against a local HTTP server started by each test (127.0.0.1, no network).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::test_server::{Reply, serve};
use super::*;

fn sha(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const BODY: &[u8] = b"pretend this is istio-1.28.1-linux-amd64.tar.gz";

#[tokio::test]
async fn downloads_with_a_pinned_digest_and_reuses_the_cache() {
    let server = serve(HashMap::from([("/f.tar.gz", Reply::Ok(BODY.to_vec()))])).await;
    let cache = tempfile::tempdir().unwrap();
    let dl = Downloader::new(cache.path(), Duration::from_secs(10)).unwrap();
    let url = format!("{}/f.tar.gz", server.base);
    let path = dl
        .fetch_to_cache(
            &url,
            "x/f.tar.gz",
            &Expected::Digest(sha(BODY).to_uppercase()),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), BODY);
    assert_eq!(files_in(&cache.path().join("x")), vec!["f.tar.gz"]);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    let again = dl
        .fetch_to_cache(&url, "x/f.tar.gz", &Expected::Digest(sha(BODY)))
        .await
        .unwrap();
    assert_eq!(again, path);
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "a cached file must not be fetched again"
    );
}

#[tokio::test]
async fn verifies_against_a_checksum_url_in_both_formats() {
    let plain = format!("{}\n", sha(BODY));
    let named = format!("{}  f.tar.gz\n", sha(BODY));
    let server = serve(HashMap::from([
        ("/f.tar.gz", Reply::Ok(BODY.to_vec())),
        ("/plain.sha256", Reply::Ok(plain.into_bytes())),
        ("/named.sha256", Reply::Ok(named.into_bytes())),
    ]))
    .await;
    let cache = tempfile::tempdir().unwrap();
    let dl = Downloader::new(cache.path(), Duration::from_secs(10)).unwrap();
    let url = format!("{}/f.tar.gz", server.base);
    for (i, sums) in ["plain", "named"].iter().enumerate() {
        let expected = Expected::ChecksumUrl(format!("{}/{sums}.sha256", server.base));
        let path = dl
            .fetch_to_cache(&url, format!("{i}/f.tar.gz"), &expected)
            .await
            .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), BODY);
    }
}

#[tokio::test]
async fn a_404_names_the_url_and_leaves_no_file() {
    let server = serve(HashMap::new()).await;
    let cache = tempfile::tempdir().unwrap();
    let dl = Downloader::new(cache.path(), Duration::from_secs(10)).unwrap();
    let url = format!("{}/missing.tar.gz", server.base);
    let err = dl
        .fetch_to_cache(&url, "d/missing.tar.gz", &Expected::Digest(sha(BODY)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("404"), "{err}");
    assert!(
        files_in(&cache.path().join("d")).is_empty(),
        "left behind: {:?}",
        files_in(&cache.path().join("d"))
    );
}

#[tokio::test]
async fn a_missing_checksum_file_is_a_download_error_for_that_url() {
    let server = serve(HashMap::from([("/f.tar.gz", Reply::Ok(BODY.to_vec()))])).await;
    let cache = tempfile::tempdir().unwrap();
    let dl = Downloader::new(cache.path(), Duration::from_secs(10)).unwrap();
    let sums = format!("{}/f.tar.gz.sha256", server.base);
    let err = dl
        .fetch_to_cache(
            &format!("{}/f.tar.gz", server.base),
            "f.tar.gz",
            &Expected::ChecksumUrl(sums.clone()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&sums) && err.contains("404"), "{err}");
    assert!(!cache.path().join("f.tar.gz").exists());
}

#[tokio::test]
async fn a_digest_mismatch_shows_both_digests_and_leaves_no_file() {
    let server = serve(HashMap::from([("/f.tar.gz", Reply::Ok(BODY.to_vec()))])).await;
    let cache = tempfile::tempdir().unwrap();
    let dl = Downloader::new(cache.path(), Duration::from_secs(10)).unwrap();
    let wrong = "0".repeat(64);
    let url = format!("{}/f.tar.gz", server.base);
    let err = dl
        .fetch_to_cache(&url, "f.tar.gz", &Expected::Digest(wrong.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&wrong) && text.contains(&sha(BODY)) && text.contains(&url),
        "{text}"
    );
    assert!(
        files_in(cache.path()).is_empty(),
        "left behind: {:?}",
        files_in(cache.path())
    );
}

#[tokio::test]
async fn a_stalled_download_hits_the_limit_and_leaves_no_file() {
    let server = serve(HashMap::from([(
        "/slow.tar.gz",
        Reply::Stall {
            len: 1000,
            sent: b"partial".to_vec(),
        },
    )]))
    .await;
    let cache = tempfile::tempdir().unwrap();
    let dl = Downloader::new(cache.path(), Duration::from_millis(500)).unwrap();
    let url = format!("{}/slow.tar.gz", server.base);
    let err = dl
        .fetch_to_cache(&url, "slow.tar.gz", &Expected::Digest(sha(BODY)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(
        files_in(cache.path()).is_empty(),
        "left behind: {:?}",
        files_in(cache.path())
    );
}

#[tokio::test]
async fn fetch_text_reports_status() {
    let server = serve(HashMap::from([
        ("/latest", Reply::Ok(b"1.29-alpha.x\n".to_vec())),
        ("/gone", Reply::Status(500, "Internal Server Error")),
    ]))
    .await;
    let dl = Downloader::new(tempfile::tempdir().unwrap().path(), Duration::from_secs(5)).unwrap();
    assert_eq!(
        dl.fetch_text(&format!("{}/latest", server.base))
            .await
            .unwrap(),
        "1.29-alpha.x\n"
    );
    let err = dl
        .fetch_text(&format!("{}/gone", server.base))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("500") && err.contains("/gone"), "{err}");
}

#[test]
fn progress_lines() {
    assert_eq!(
        progress_line(
            "u",
            3 * 1024 * 1024,
            Some(12 * 1024 * 1024),
            Duration::from_secs(6)
        ),
        "downloading u: 3.0 of 12.0 MiB (25%) after 6s"
    );
    assert_eq!(
        progress_line("u", 1024 * 1024, None, Duration::from_secs(4)),
        "downloading u: 1.0 MiB after 4s"
    );
}
