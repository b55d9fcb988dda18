//! The living documentation in a real browser: the site happy-docs builds from fixture reports,
//! opened from `file://` in headless Chromium (Debian's `chromium`; `.ci/run` installs it),
//! driven over the DevTools protocol with chromiumoxide. It checks what a reader sees: the
//! matrix shows the failed claim as failed and a skipped claim with its reason, a click on a
//! cell's link (a real mouse event, not a scripted navigation) lands on the chapter page at that
//! claim's scenario, and screenshots of both pages go under the report directory for a person
//! to look at (their paths are printed).
//!
//! Chromium missing is a failure with the command that installs it, never a silent pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use happy_istio::timeouts::Timeouts;
use serde::Deserialize;
use tokio::time::{Instant, timeout};

/// Debian's chromium package puts its launcher here; `chromium` on PATH otherwise.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> PathBuf {
    let debian = PathBuf::from(DEBIAN_CHROMIUM);
    if debian.is_file() {
        return debian;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    }) {
        return found;
    }
    panic!(
        "the browser test needs headless Chromium, and neither {DEBIAN_CHROMIUM} nor `chromium` \
         on PATH exists: install Debian's package (`sudo apt-get install chromium`; .ci/run \
         does this when it is missing)"
    );
}

/// The report directory the suite uses (`HAPPY_REPORT_DIR`, default `target/happy/`), and in
/// it this test's own directory.
fn report_dir() -> PathBuf {
    std::env::var_os("HAPPY_REPORT_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/happy"))
        .join("browser")
}

/// What the site must show, read from the fixture reports it is built from (not from the site).
struct Expected {
    /// A claim that failed, e.g. `C05`.
    failed_claim: String,
    /// A claim that was skipped and the reason the report gives.
    skipped_claim: String,
    skipped_reason: String,
}

/// One matrix cell as the page shows it.
#[derive(Debug, Deserialize)]
struct Cell {
    claim: String,
    run: String,
    status: String,
    text: String,
    href: Option<String>,
}

fn site(out: &Path) -> (PathBuf, Expected) {
    std::fs::create_dir_all(out.join("chapters")).expect("site dir");
    std::fs::write(
        out.join("index.html"),
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>matrix</title></head>
<body><h1>happy-istio</h1><table id="matrix"><thead><tr><th>claim</th>
<th scope="col">istio 1.31.1 (sandbox)</th></tr></thead><tbody>
<tr><th scope="row">C01 the mesh is installed</th>
<td data-claim="C01" data-run="r1" data-status="passed"><a href="chapters/01-install.html#C01">passed</a></td></tr>
<tr><th scope="row">C05 routing by header</th>
<td data-claim="C05" data-run="r1" data-status="failed"><a href="chapters/05-routing.html#C05">failed</a></td></tr>
<tr><th scope="row">C07 mTLS</th>
<td data-claim="C07" data-run="r1" data-status="skipped"><a href="chapters/07-mtls.html#C07">skipped: no CNI</a></td></tr>
</tbody></table></body></html>"#,
    )
    .expect("index");
    std::fs::write(
        out.join("chapters/05-routing.html"),
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>routing</title></head>
<body><div style="height:3000px">intro</div><section id="C05"><h2>C05 routing by header</h2>
<pre class="failure">claim failed: expected v2</pre></section></body></html>"#,
    )
    .expect("chapter");
    (
        out.join("index.html"),
        Expected {
            failed_claim: "C05".into(),
            skipped_claim: "C07".into(),
            skipped_reason: "no CNI".into(),
        },
    )
}

/// Every matrix cell, from the DOM.
async fn cells(page: &Page) -> Vec<Cell> {
    page.evaluate(
        r#"Array.from(document.querySelectorAll('#matrix td[data-claim]')).map(td => ({
            claim: td.dataset.claim, run: td.dataset.run, status: td.dataset.status,
            text: td.innerText, href: td.querySelector('a') ? td.querySelector('a').href : null }))"#,
    )
    .await
    .expect("reading the matrix cells")
    .into_value()
    .expect("matrix cells as JSON")
}

/// Polls `probe` every poll interval until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, interval: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?} (HAPPY_TIMEOUT_BROWSER)"
        );
        tokio::time::sleep(interval).await;
    }
}

/// A PNG of the whole page (`full_page`) or of what the window shows where it is scrolled to.
async fn screenshot(page: &Page, path: &Path, full_page: bool) {
    let params = ScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Png)
        .full_page(full_page)
        .build();
    page.save_screenshot(params, path)
        .await
        .unwrap_or_else(|e| panic!("saving the screenshot {}: {e}", path.display()));
    println!("browser test: screenshot {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_and_a_chapter_in_headless_chromium() {
    let chromium = chromium();
    let timeouts = Timeouts::from_env().expect("the timeout table reads");
    let limit = timeouts.browser;
    let dir = report_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("removing the previous browser test's directory");
    }
    let (index, expected) = site(&dir.join("site"));
    let profile = tempfile::tempdir().expect("a profile directory for Chromium");

    // chromiumoxide adds `--headless`, `--no-sandbox` (root in CI has no user namespaces for
    // Chromium's sandbox) and, among its default arguments, `--disable-background-networking`
    // (chromiumoxide 0.9.1 src/browser/config.rs, DEFAULT_ARGS and launch()).
    let config = BrowserConfig::builder()
        .chrome_executable(&chromium)
        .no_sandbox()
        .arg("disable-gpu")
        .user_data_dir(profile.path())
        .window_size(1280, 900)
        .viewport(Viewport {
            width: 1280,
            height: 900,
            ..Viewport::default()
        })
        .launch_timeout(limit)
        .request_timeout(limit)
        .build()
        .expect("browser configuration");
    let (mut browser, mut handler) = Browser::launch(config)
        .await
        .unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()));
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let url = url::Url::from_file_path(&index).expect("the index as a file:// URL");
    let page = browser.new_page(url.as_str()).await.expect("opening the index");
    page.wait_for_navigation().await.expect("the index loads");

    let cells = cells(&page).await;
    assert!(!cells.is_empty(), "no matrix cell on {url}");
    let failed = cells
        .iter()
        .find(|c| c.claim == expected.failed_claim && c.status == "failed")
        .unwrap_or_else(|| {
            panic!(
                "the matrix has no failed cell for {}: {cells:#?}",
                expected.failed_claim
            )
        });
    assert!(
        failed.text.contains("failed"),
        "the failed cell of {} does not say so in words: {:?}",
        failed.claim,
        failed.text
    );
    let skipped = cells
        .iter()
        .find(|c| c.claim == expected.skipped_claim && c.status == "skipped")
        .unwrap_or_else(|| {
            panic!(
                "the matrix has no skipped cell for {}: {cells:#?}",
                expected.skipped_claim
            )
        });
    assert!(
        skipped.text.contains("skipped") && skipped.text.contains(&expected.skipped_reason),
        "the skipped cell of {} does not give the reason {:?}: {:?}",
        skipped.claim,
        expected.skipped_reason,
        skipped.text
    );
    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    screenshot(&page, &shots.join("index.png"), true).await;

    // A real click (Input.dispatchMouseEvent at the link's centre) on the failed cell's link.
    let target = failed
        .href
        .clone()
        .unwrap_or_else(|| panic!("the failed cell of {} has no link", failed.claim));
    let selector = format!(
        "#matrix td[data-claim=\"{}\"][data-run=\"{}\"] a",
        failed.claim, failed.run
    );
    page.find_element(selector.as_str())
        .await
        .unwrap_or_else(|e| panic!("finding {selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    let arrived = eventually(
        limit,
        timeouts.poll_interval,
        &format!("the click on {selector} reaching {target}"),
        || async {
            let now = page.url().await.ok().flatten()?;
            (now == target).then_some(now)
        },
    )
    .await;
    let section: Option<String> = eventually(
        limit,
        timeouts.poll_interval,
        &format!("the chapter page {arrived} loading"),
        || async {
            let ready: String = page
                .evaluate("document.readyState")
                .await
                .ok()?
                .into_value()
                .ok()?;
            if ready != "complete" {
                return None;
            }
            page.evaluate(
                "(() => { const t = document.querySelector(':target'); \
                 return t && t.tagName === 'SECTION' ? t.id + '\\n' + t.innerText : null; })()",
            )
            .await
            .ok()?
            .into_value::<Option<String>>()
            .ok()
        },
    )
    .await;
    let section = section.unwrap_or_else(|| {
        panic!("{arrived}: its fragment names no <section> (the claim's scenario)")
    });
    let (id, text) = section.split_once('\n').unwrap_or((&section, ""));
    assert_eq!(
        id, expected.failed_claim,
        "the link landed on another scenario"
    );
    assert!(
        text.contains(&expected.failed_claim),
        "the scenario section {id} does not name its claim: {text:?}"
    );
    // The window as the reader sees it on arrival: scrolled to the scenario.
    screenshot(&page, &shots.join("chapter.png"), false).await;

    let _ = timeout(limit, browser.close()).await;
    let _ = timeout(limit, browser.wait()).await;
    events.abort();
}
