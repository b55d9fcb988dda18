//! The living documentation in a real browser: the site happy-docs builds from fixture reports,
//! opened from `file://` in headless Chromium (Debian's `chromium`; `.ci/run` installs it),
//! driven over the DevTools protocol (`cdp.rs`). It checks what a reader sees: the
//! matrix shows the failed claim as failed and a skipped claim with its reason, a click on a
//! cell's link (a real mouse event, not a scripted navigation) lands on the chapter page at that
//! claim's scenario, and screenshots of both pages go under the report directory for a person
//! to look at (their paths are printed).
//!
//! Chromium missing is a failure with the command that installs it, never a silent pass.

use crate::fixture_dirs::copy_dir;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cdp::{Chromium, Page};
use happy_istio::timeouts::Timeouts;
use serde::Deserialize;
use tokio::time::Instant;

/// The window every page is seen in: the issue's 1280 px wide desktop.
const WINDOW: (u32, u32) = (1280, 900);

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
    /// A claim that failed, e.g. `C08`, and the run it failed on.
    failed_claim: String,
    failed_run: String,
    /// The stem of its feature file, the chapter page's name (`03-ingress`).
    failed_chapter: String,
    /// run.json's message for the failure.
    failed_message: String,
    /// A claim that was skipped, its run and the reason the report gives.
    skipped_claim: String,
    skipped_run: String,
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

/// The fixture reports (recorded sandbox runs, tests/fixtures/docs/README.md): one with skips,
/// one with failed claims.
const FIXTURES: [&str; 2] = ["green", "failed"];

/// Copies a fixture into `to`, relabelled as another Istio version, as the nightly's cells
/// differ.
fn relabelled(fixture: &Path, to: &Path, istio: &str) {
    std::fs::create_dir_all(to).expect("report dir");
    copy_dir(fixture, to);
    let path = to.join("run.json");
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("run.json")).expect("JSON");
    run["istio_version"] = istio.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&run).expect("JSON")).expect("run.json");
}

/// One scenario of a report's cucumber.json.
struct Scenario {
    feature: String,
    /// `features/05-traffic.feature`.
    uri: String,
    name: String,
    claim: String,
    verdict: &'static str,
}

fn scenarios(report: &Path) -> Vec<Scenario> {
    let text = std::fs::read_to_string(report.join("cucumber.json")).expect("cucumber.json");
    let features: serde_json::Value = serde_json::from_str(&text).expect("cucumber.json is JSON");
    let mut out = Vec::new();
    for feature in features.as_array().expect("a list of features") {
        for element in feature["elements"].as_array().into_iter().flatten() {
            if element["type"] != "scenario" {
                continue;
            }
            let statuses: Vec<&str> = element["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|step| step["result"]["status"].as_str())
                .collect();
            let verdict = if statuses.contains(&"failed") {
                "failed"
            } else if statuses.contains(&"skipped") {
                "skipped"
            } else {
                "passed"
            };
            let claim = element["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|tag| tag["name"].as_str())
                .map(|tag| tag.trim_start_matches('@'))
                .find(|tag| {
                    tag.len() == 3
                        && tag.starts_with('C')
                        && tag[1..].chars().all(|c| c.is_ascii_digit())
                });
            if let Some(claim) = claim {
                out.push(Scenario {
                    feature: feature["name"].as_str().unwrap_or_default().to_string(),
                    uri: feature["uri"].as_str().unwrap_or_default().to_string(),
                    name: element["name"].as_str().unwrap_or_default().to_string(),
                    claim: claim.to_string(),
                    verdict,
                });
            }
        }
    }
    out
}

/// What the reports say the page must show: a claim with a failed scenario (its chapter and
/// run.json's message for it), and a claim whose every scenario was skipped, with the reason
/// run.json gives (`Feature — Scenario: @tag: reason`).
fn expected(reports: &[PathBuf]) -> Expected {
    let mut failed = None;
    let mut skipped = None;
    for report in reports {
        let run: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(report.join("run.json")).expect("run.json"),
        )
        .expect("run.json is JSON");
        let run_id = run["run_id"].as_str().expect("a run id").to_string();
        let all = scenarios(report);
        if failed.is_none() {
            failed = all.iter().find(|s| s.verdict == "failed").map(|s| {
                let title = format!("{} — {}", s.feature, s.name);
                let message = run["failures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|f| f["scenario"] == title.as_str())
                    .and_then(|f| f["message"].as_str())
                    .unwrap_or_else(|| panic!("run.json lists no failure for {title}"));
                let stem = Path::new(&s.uri)
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .expect("a feature file name")
                    .to_string();
                (s.claim.clone(), run_id.clone(), stem, message.to_string())
            });
        }
        if skipped.is_none() {
            skipped = all.iter().find_map(|s| {
                if !all
                    .iter()
                    .filter(|other| other.claim == s.claim)
                    .all(|other| other.verdict == "skipped")
                {
                    return None;
                }
                let prefix = format!("{} — {}: ", s.feature, s.name);
                let entry = run["skipped"]
                    .as_array()?
                    .iter()
                    .filter_map(|e| e.as_str())
                    .find_map(|e| e.strip_prefix(prefix.as_str()))?;
                // `@kiali: Grafana and Kiali do not run on the sandbox[; @other: …]`
                let reason = entry.split("; ").next()?;
                let reason = reason.split_once(": ").map_or(reason, |(_, r)| r);
                Some((s.claim.clone(), run_id.clone(), reason.to_string()))
            });
        }
    }
    let (failed_claim, failed_run, failed_chapter, failed_message) =
        failed.expect("a fixture with a failed scenario");
    let (skipped_claim, skipped_run, skipped_reason) =
        skipped.expect("a fixture with a claim whose every scenario was skipped");
    Expected {
        failed_claim,
        failed_run,
        failed_chapter,
        failed_message,
        skipped_claim,
        skipped_run,
        skipped_reason,
    }
}

/// Builds the site with the crate's own happy-docs from the relabelled fixtures.
fn site(dir: &Path) -> (PathBuf, Expected) {
    let reports: Vec<PathBuf> = FIXTURES
        .iter()
        .zip(["1.31.1", "1.30.4"])
        .map(|(fixture, istio)| {
            let to = dir.join("reports").join(istio);
            relabelled(
                &crate::fixture_dirs::docs_fixtures().join(fixture),
                &to,
                istio,
            );
            to
        })
        .collect();
    let out = dir.join("site");
    happy_docs(&reports, &out);
    (out.join("index.html"), expected(&reports))
}

/// The site of `reports` in `out`, built by the crate's own happy-docs.
fn happy_docs(reports: &[PathBuf], out: &Path) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_happy-docs"));
    for report in reports {
        command.arg("--reports").arg(report);
    }
    let output = command
        .arg("--out")
        .arg(out)
        .output()
        .expect("running happy-docs");
    assert!(
        output.status.success(),
        "happy-docs failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The chapter page's `:target` section.
#[derive(Debug, Deserialize)]
struct TargetSection {
    id: String,
    text: String,
    failures: Vec<String>,
    /// Its top edge relative to the window, in CSS pixels.
    top: f64,
}

/// Every matrix cell, from the DOM.
async fn cells(page: &Page<'_>) -> Vec<Cell> {
    page.evaluate(
        r#"Array.from(document.querySelectorAll('#matrix td[data-claim]')).map(td => ({
            claim: td.dataset.claim, run: td.dataset.run, status: td.dataset.status,
            text: td.innerText, href: td.querySelector('a') ? td.querySelector('a').href : null }))"#,
    )
    .await
    .unwrap_or_else(|e| panic!("reading the matrix cells: {e}"))
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
async fn screenshot(page: &Page<'_>, path: &Path, full_page: bool) {
    page.screenshot(path, full_page)
        .await
        .unwrap_or_else(|e| panic!("saving the screenshot {}: {e}", path.display()));
    println!("browser test: screenshot {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_and_a_chapter_in_headless_chromium() {
    let _processes = crate::processes::shared_async().await;
    let chromium = chromium();
    let timeouts = Timeouts::from_env().expect("the timeout table reads");
    let limit = timeouts.browser;
    let dir = report_dir();
    // Its own parts of the directory only: the evidence test writes beside it.
    for own in ["reports", "site"] {
        if dir.join(own).exists() {
            std::fs::remove_dir_all(dir.join(own))
                .expect("removing the previous browser test's directory");
        }
    }
    let (index, expected) = site(&dir);
    let profile = tempfile::tempdir().expect("a profile directory for Chromium");

    let browser = Chromium::launch(&chromium, profile.path(), WINDOW, limit)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = url::Url::from_file_path(&index).expect("the index as a file:// URL");
    let page = browser
        .open(url.as_str(), WINDOW)
        .await
        .unwrap_or_else(|e| panic!("opening the index: {e}"));
    eventually(
        limit,
        timeouts.poll_interval,
        &format!("{url} loading"),
        || async {
            let now = page.url().await.ok()?;
            let ready: String = page.evaluate("document.readyState").await.ok()?;
            (now == url.as_str() && ready == "complete").then_some(())
        },
    )
    .await;

    let cells = cells(&page).await;
    assert!(!cells.is_empty(), "no matrix cell on {url}");
    let failed = cells
        .iter()
        .find(|c| c.claim == expected.failed_claim && c.run == expected.failed_run)
        .unwrap_or_else(|| {
            panic!(
                "the matrix has no cell for {} on run {}: {cells:#?}",
                expected.failed_claim, expected.failed_run
            )
        });
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert!(
        failed.text.contains("failed"),
        "the failed cell of {} does not say so in words: {:?}",
        failed.claim,
        failed.text
    );
    let skipped = cells
        .iter()
        .find(|c| c.claim == expected.skipped_claim && c.run == expected.skipped_run)
        .unwrap_or_else(|| {
            panic!(
                "the matrix has no cell for {} on run {}: {cells:#?}",
                expected.skipped_claim, expected.skipped_run
            )
        });
    assert_eq!(skipped.status, "skipped", "{skipped:?}");
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
    // And legibly, the window at the failed cell.
    page.evaluate::<serde_json::Value>(&format!(
        "document.querySelector('#matrix td[data-claim=\"{}\"][data-run=\"{}\"]')\
         .scrollIntoView({{block: 'center'}})",
        failed.claim, failed.run
    ))
    .await
    .unwrap_or_else(|e| panic!("scrolling to the failed cell: {e}"));
    screenshot(&page, &shots.join("matrix.png"), false).await;

    // A real click (Input.dispatchMouseEvent at the link's centre) on the failed cell's link.
    let target = failed
        .href
        .clone()
        .unwrap_or_else(|| panic!("the failed cell of {} has no link", failed.claim));
    let selector = format!(
        "#matrix td[data-claim=\"{}\"][data-run=\"{}\"] a",
        failed.claim, failed.run
    );
    page.click(&selector)
        .await
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    let arrived = eventually(
        limit,
        timeouts.poll_interval,
        &format!("the click on {selector} reaching {target}"),
        || async {
            let now = page.url().await.ok()?;
            (now == target).then_some(now)
        },
    )
    .await;
    let chapter = format!(
        "chapters/{}.html#{}",
        expected.failed_chapter, expected.failed_claim
    );
    assert!(
        arrived.ends_with(&chapter),
        "the link of {} leads to {arrived}, not to its chapter {chapter}",
        expected.failed_claim
    );
    let section: Option<TargetSection> = eventually(
        limit,
        timeouts.poll_interval,
        &format!("the chapter page {arrived} loading"),
        || async {
            let ready: String = page.evaluate("document.readyState").await.ok()?;
            if ready != "complete" {
                return None;
            }
            // The fragment's target, as the browser resolved it (`:target`).
            page.evaluate::<Option<TargetSection>>(
                "(() => { const t = document.querySelector(':target'); \
                 if (!t || t.tagName !== 'SECTION') return null; \
                 return { id: t.id, text: t.innerText, \
                   failures: Array.from(t.querySelectorAll('pre.failure')).map(p => p.innerText), \
                   top: t.getBoundingClientRect().top }; })()",
            )
            .await
            .ok()
        },
    )
    .await;
    let section = section.unwrap_or_else(|| {
        panic!("{arrived}: its fragment names no <section> (the claim's scenario)")
    });
    assert_eq!(
        section.id, expected.failed_claim,
        "the link landed on another scenario"
    );
    assert!(
        section.text.contains(&expected.failed_claim),
        "the scenario section {} does not name its claim: {:?}",
        section.id,
        section.text
    );
    // The failure as run.json has it, with its class in words (the message may be wrapped
    // by cucumber's own words around it).
    let core = expected
        .failed_message
        .split_once(": ")
        .map_or(expected.failed_message.as_str(), |(_, rest)| rest);
    assert!(
        section
            .failures
            .iter()
            .any(|f| f.contains(core) && f.contains("claim")),
        "the scenario {} shows no failure message {core:?} with its class: {:?}",
        section.id,
        section.failures
    );
    assert!(
        (-1.0..100.0).contains(&section.top),
        "the window is not scrolled to the scenario (its top is at {}px)",
        section.top
    );
    // The window as the reader sees it on arrival: scrolled to the scenario.
    screenshot(&page, &shots.join("chapter.png"), false).await;

    drop(page);
    browser.close().await;
}

/// The recorded sandbox run with every scenario's evidence (tests/fixtures/docs/README.md).
const EVIDENCE_FIXTURE: &str = "evidence";

/// What a reader must find on a claim's page, in what the cluster answered: the claim, and the
/// texts its evidence holds (the workshop's own samples show the same).
const EVIDENCE_FOUND: &[(&str, &[&str])] = &[
    // C01: the chain from service-a, as its JSON answer shows it.
    (
        "C01",
        &[
            "\"name\": \"service-a\"",
            "http://service-b",
            "http://service-c",
            "200 OK",
        ],
    ),
    // C11: the istio_requests_total line with response_code="500".
    ("C11", &["istio_requests_total{", "response_code=\"500\""]),
    // C21: the denial's body.
    ("C21", &["RBAC: access denied"]),
];

/// The site of a sandbox run, from the matrix to each claim's evidence: a real click on the
/// claim's cell lands on its scenario, whose "what the cluster answered" holds what the run
/// observed. Screenshots: the index, the chapter of C11 as a reader sees it, and C11's claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_of_a_sandbox_run_from_the_matrix_to_its_claims() {
    let _processes = crate::processes::shared_async().await;
    let chromium = chromium();
    let timeouts = Timeouts::from_env().expect("the timeout table reads");
    let limit = timeouts.browser;
    let dir = report_dir().join("evidence");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("removing the previous evidence test's directory");
    }
    let report = dir.join("reports").join("sandbox");
    std::fs::create_dir_all(&report).expect("report dir");
    copy_dir(
        &crate::fixture_dirs::docs_fixtures().join(EVIDENCE_FIXTURE),
        &report,
    );
    let out = dir.join("site");
    happy_docs(&[report], &out);
    let shots = report_dir().join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let index = url::Url::from_file_path(out.join("index.html")).expect("a file:// URL");
    let profile = tempfile::tempdir().expect("a profile directory for Chromium");
    let browser = Chromium::launch(&chromium, profile.path(), WINDOW, limit)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (claim, texts) in EVIDENCE_FOUND {
        let page = open_loaded(&browser, &index, WINDOW, &timeouts).await;
        if *claim == "C01" {
            screenshot(&page, &shots.join("evidence-index.png"), true).await;
        }
        let selector = format!("#matrix td[data-claim=\"{claim}\"] a");
        page.click(&selector)
            .await
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
        // The scenario the link names, once the chapter page has loaded: its evidence figures.
        let found: (String, Vec<String>) = eventually(
            limit,
            timeouts.poll_interval,
            &format!("the click on {claim}'s cell reaching its scenario"),
            || async {
                let ready: String = page.evaluate("document.readyState").await.ok()?;
                if ready != "complete" {
                    return None;
                }
                page.evaluate::<Option<(String, Vec<String>)>>(
                    "(() => { const t = document.querySelector(':target'); \
                     if (!t || t.tagName !== 'SECTION') return null; \
                     return [t.id, Array.from(t.querySelectorAll('figure.evidence')) \
                       .map(f => f.innerText)]; })()",
                )
                .await
                .ok()
                .flatten()
            },
        )
        .await;
        let (id, figures) = found;
        assert_eq!(&id, claim, "the link of {claim} landed on another scenario");
        assert!(
            !figures.is_empty(),
            "{claim}'s scenario shows no evidence (no figure.evidence)"
        );
        for text in *texts {
            assert!(
                figures.iter().any(|f| f.contains(text)),
                "{claim}'s evidence does not show {text:?}: {figures:#?}"
            );
        }
        assert_fits(&page, &format!("{claim}'s chapter at {} px", WINDOW.0)).await;
        if *claim == "C11" {
            screenshot(&page, &shots.join("evidence-claim-C11.png"), false).await;
            screenshot(
                &page,
                &shots.join("evidence-chapter-04-observability.png"),
                true,
            )
            .await;
        }
        drop(page);
    }
    // The index at 1280 px, and a chapter and the index on a phone: no horizontal scrolling of
    // the page (a wide matrix or step table scrolls inside its own box).
    for (width, height, page_path) in [
        (WINDOW.0, WINDOW.1, "index.html"),
        (PHONE.0, PHONE.1, "chapters/04-observability.html"),
        (PHONE.0, PHONE.1, "index.html"),
    ] {
        let url = url::Url::from_file_path(out.join(page_path)).expect("a file:// URL");
        let page = open_loaded(&browser, &url, (width, height), &timeouts).await;
        assert_fits(&page, &format!("{page_path} at {width} px")).await;
        if width == PHONE.0 && page_path.starts_with("chapters/") {
            screenshot(&page, &shots.join("evidence-chapter-phone.png"), false).await;
        }
        drop(page);
    }
    browser.close().await;
}

/// `url` opened in a new page of `size`, once it has loaded.
async fn open_loaded<'b>(
    browser: &'b Chromium,
    url: &url::Url,
    size: (u32, u32),
    timeouts: &Timeouts,
) -> Page<'b> {
    let page = browser
        .open(url.as_str(), size)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    eventually(
        timeouts.browser,
        timeouts.poll_interval,
        &format!("{url} loading"),
        || async {
            let ready: String = page.evaluate("document.readyState").await.ok()?;
            (ready == "complete").then_some(())
        },
    )
    .await;
    page
}

/// A phone's window (CSS pixels), for the pages that must work there too.
const PHONE: (u32, u32) = (390, 844);

/// The page is no wider than its window: nothing makes the reader scroll sideways.
async fn assert_fits(page: &Page<'_>, what: &str) {
    // With the outermost elements that stick out, to say what to fix.
    let (scroll, client, out): (f64, f64, Vec<String>) = page
        .evaluate(
            "(() => { const w = document.documentElement.clientWidth; \
             const out = Array.from(document.querySelectorAll('body *')) \
               .filter(e => (e.getBoundingClientRect().right > w + 0.5 \
                   && !(e.parentElement && e.parentElement.getBoundingClientRect().right > w + 0.5)) \
                 || (e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0 \
                   && getComputedStyle(e).overflowX === 'visible' \
                   && e.getBoundingClientRect().left + e.scrollWidth > w + 0.5)) \
               .slice(0, 5) \
               .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') \
                 + (e.className ? '.' + e.className : '') + ' ' \
                 + Math.round(e.getBoundingClientRect().right) + 'px'); \
             return [document.documentElement.scrollWidth, w, out]; })()",
        )
        .await
        .unwrap_or_else(|e| panic!("measuring {what}: {e}"));
    assert!(
        scroll <= client,
        "{what}: the page is {scroll} px wide in a {client} px window (horizontal scrolling); \
         sticking out: {out:?}"
    );
}
