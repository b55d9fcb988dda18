//! Downloads into the suite's cache: istioctl and release archives, the `kind` binary, release
//! lists. A file appears at its cache path only complete and verified (temp file, sha256 check,
//! atomic rename), so a cached file can be trusted on the next run without network access.
//!
//! All HTTPS goes through reqwest on rustls with ring as the process-wide crypto provider: the
//! tree has exactly one provider, and reqwest is built without one of its own.

mod checksum;
mod extract;
#[cfg(test)]
pub(crate) mod test_server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use checksum::{normalize_digest, parse_checksum};
pub use extract::extract_tar_gz;

use crate::{Error, Result};

/// How long a download may run before it reports progress on stderr.
const QUIET_PERIOD: Duration = Duration::from_secs(3);
/// How often a slow download reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Installs ring as the process's rustls crypto provider, once. Another part of the suite may
/// have installed it already; that is the same provider, so "already installed" is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client on the process's ring provider; `limit` bounds every request as a whole.
pub(crate) fn http_client(limit: Duration) -> Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("happy-istio/", env!("CARGO_PKG_VERSION")))
        .timeout(limit)
        .connect_timeout(limit.min(Duration::from_secs(30)))
        .build()
        .map_err(|e| Error::Download {
            url: "(none)".into(),
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

/// What a downloaded file must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A sha256 digest known in advance (pinned in code), 64 hex digits.
    Digest(String),
    /// A checksum file to fetch first: `HEX` or `HEX  filename` (sha256sum's format).
    ChecksumUrl(String),
}

/// Downloads files into a cache directory, bounded by one time limit per file.
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    cache_dir: PathBuf,
    limit: Duration,
}

impl Downloader {
    /// A downloader writing under `cache_dir`; each download (checksum included) must finish
    /// within `limit` (the timeout table's `download`).
    pub fn new(cache_dir: impl Into<PathBuf>, limit: Duration) -> Result<Self> {
        Ok(Self {
            client: http_client(limit)?,
            cache_dir: cache_dir.into(),
            limit,
        })
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The HTTP client, for callers that fetch small documents themselves.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GETs a small text document (a checksum file, a `latest` pointer, a release list).
    pub async fn fetch_text(&self, url: &str) -> Result<String> {
        self.fetch_text_with(url, &[]).await
    }

    /// GETs a small text document with extra request headers.
    pub async fn fetch_text_with(&self, url: &str, headers: &[(&str, String)]) -> Result<String> {
        let fail = |reason: String| Error::Download {
            url: url.to_string(),
            reason,
        };
        let work = async {
            let mut request = self.client.get(url);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.map_err(|e| fail(describe(&e)))?;
            let response = check_status(url, response)?;
            response.text().await.map_err(|e| fail(describe(&e)))
        };
        tokio::time::timeout(self.limit, work)
            .await
            .map_err(|_| fail(format!("did not finish within {:?}", self.limit)))?
    }

    /// Makes sure `relative` exists in the cache with the expected digest, downloading it from
    /// `url` when missing. Returns its path. A file already in the cache was verified before it
    /// was put there, so it is used as it is.
    pub async fn fetch_to_cache(
        &self,
        url: &str,
        relative: impl AsRef<Path>,
        expected: &Expected,
    ) -> Result<PathBuf> {
        let dest = self.cache_dir.join(relative);
        if dest.is_file() {
            return Ok(dest);
        }
        let work = async {
            let digest = match expected {
                Expected::Digest(hex) => {
                    normalize_digest(hex).ok_or_else(|| Error::ChecksumFile {
                        url: url.to_string(),
                        reason: format!("pinned digest {hex:?} is not 64 hex digits"),
                    })?
                }
                Expected::ChecksumUrl(sum_url) => {
                    let text = self.fetch_text(sum_url).await?;
                    let file_name = url.rsplit('/').next().unwrap_or(url);
                    parse_checksum(&text, sum_url, Some(file_name))?
                }
            };
            self.download_verified(url, &dest, &digest).await
        };
        tokio::time::timeout(self.limit, work)
            .await
            .map_err(|_| Error::Download {
                url: url.to_string(),
                reason: format!(
                    "did not finish within {:?} (HAPPY_TIMEOUT_DOWNLOAD raises the limit)",
                    self.limit
                ),
            })??;
        Ok(dest)
    }

    async fn download_verified(&self, url: &str, dest: &Path, digest: &str) -> Result<()> {
        let fail = |reason: String| Error::Download {
            url: url.to_string(),
            reason,
        };
        let parent = dest.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|source| Error::LocalIo {
                action: "create cache directory".into(),
                path: parent.to_path_buf(),
                source,
            })?;
        let partial = PartialFile::new(dest);
        let mut file = tokio::fs::File::create(partial.path())
            .await
            .map_err(|source| Error::LocalIo {
                action: "create".into(),
                path: partial.path().to_path_buf(),
                source,
            })?;

        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        let response = check_status(url, response)?;
        let total = response.content_length();
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let started = Instant::now();
        let mut next_report = QUIET_PERIOD;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| fail(format!("after {received} bytes: {}", describe(&e))))?;
            hasher.update(&chunk);
            received += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|source| Error::LocalIo {
                    action: "write".into(),
                    path: partial.path().to_path_buf(),
                    source,
                })?;
            if started.elapsed() >= next_report {
                eprintln!(
                    "happy-istio: {}",
                    progress_line(url, received, total, started.elapsed())
                );
                next_report = started.elapsed() + PROGRESS_EVERY;
            }
        }
        if let Some(total) = total
            && received != total
        {
            return Err(fail(format!(
                "connection ended after {received} of {total} bytes"
            )));
        }
        file.flush().await.map_err(|source| Error::LocalIo {
            action: "flush".into(),
            path: partial.path().to_path_buf(),
            source,
        })?;
        drop(file);
        let actual = hex::encode(hasher.finalize());
        if actual != digest {
            return Err(Error::DigestMismatch {
                url: url.to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        partial.commit()
    }
}

/// A download in progress: removed on drop unless committed, so neither an error, a time limit
/// (the future is dropped) nor a digest mismatch leaves a half file behind.
struct PartialFile {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PartialFile {
    fn new(dest: &Path) -> Self {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        // The pid keeps two concurrent runs on one cache from writing the same temp file.
        let temp = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        Self {
            temp,
            dest: dest.to_path_buf(),
            committed: false,
        }
    }

    fn path(&self) -> &Path {
        &self.temp
    }

    fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.dest).map_err(|source| Error::LocalIo {
            action: format!(
                "move the verified download into place as {}",
                self.dest.display()
            ),
            path: self.temp.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn check_status(url: &str, response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        Ok(response)
    } else {
        Err(Error::Download {
            url: url.to_string(),
            reason: format!("HTTP {status}"),
        })
    }
}

/// reqwest's Display hides the cause (e.g. "error sending request"); the chain says why.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One progress report: `downloading URL: 12.0 of 40.0 MiB (30%) after 6s`.
pub(crate) fn progress_line(
    url: &str,
    received: u64,
    total: Option<u64>,
    elapsed: Duration,
) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let got = received as f64 / MIB;
    match total {
        Some(total) if total > 0 => format!(
            "downloading {url}: {got:.1} of {:.1} MiB ({}%) after {}s",
            total as f64 / MIB,
            received * 100 / total,
            elapsed.as_secs()
        ),
        _ => format!(
            "downloading {url}: {got:.1} MiB after {}s",
            elapsed.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests;
