//! The nightly's publish step (`ci/publish-docs`, run by the `publish` job of
//! .github/workflows/nightly.yml), run here on fixture artifacts laid out as
//! actions/download-artifact lays them out (one directory per artifact, `happy-istio-<istio>/`),
//! with the previous publication's history served by a local HTTP server (or a file):
//! the history grows by one night and stays bounded, the job summary gets the matrix, a 404
//! starts a new history and any other failure stops the publication with a clear message.
//!
//! The fixture reports are recorded from real sandbox runs and relabelled here (Istio version,
//! run id, night), as the nightly's cells would differ.

use crate::fixture_dirs::copy_dir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Recorded report directories (tests/fixtures/docs/README.md): the suite as it is (4
/// scenarios skipped), and with the gateway route broken (C08 and the claims resting on it
/// failed, with a diagnostics bundle).
const PASSING: &str = "green";
const FAILING: &str = "failed";

fn fixture(name: &str) -> PathBuf {
    crate::fixture_dirs::docs_fixtures().join(name)
}

/// One cell's artifact: a fixture relabelled as `istio` on `night` (`2026-11-30`).
fn artifact(artifacts: &Path, istio: &str, fixture_name: &str, night: &str) {
    let dir = artifacts.join(format!("happy-istio-{istio}"));
    copy_dir(&fixture(fixture_name), &dir);
    let path = dir.join("run.json");
    let mut run: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("run.json")).expect("JSON");
    run["istio_version"] = istio.into();
    // The diagnostics directory is named after the run id (README, "Reading the reports").
    let run_id = format!("{night}-{istio}");
    if let Some(old) = run["run_id"].as_str() {
        let bundle = dir.join("diagnostics").join(old);
        if bundle.is_dir() {
            std::fs::rename(&bundle, dir.join("diagnostics").join(&run_id)).expect("rename");
        }
    }
    run["run_id"] = run_id.into();
    run["started_at"] = format!("{night}T03:17:00Z").into();
    run["finished_at"] = format!("{night}T03:59:00Z").into();
    std::fs::write(&path, serde_json::to_vec_pretty(&run).expect("JSON")).expect("run.json");
}

/// A night of the nightly: one artifact per Istio version; the last one's cell failed a claim.
fn night(dir: &Path, night: &str, versions: &[&str]) -> PathBuf {
    // A fresh directory each call, as each workflow run downloads into its own.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::SeqCst);
    let artifacts = dir.join(format!("artifacts-{night}-{call}"));
    for (i, istio) in versions.iter().enumerate() {
        let fixture = if i + 1 == versions.len() && versions.len() > 1 {
            FAILING
        } else {
            PASSING
        };
        artifact(&artifacts, istio, fixture, night);
    }
    artifacts
}

struct Run {
    output: Output,
    out: PathBuf,
    summary: PathBuf,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn assert_ok(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "ci/publish-docs failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    fn history(&self) -> Value {
        let path = self.out.join("history.json");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("history.json"))
            .expect("history.json is JSON")
    }
}

fn publish(dir: &Path, name: &str, artifacts: &Path, previous: &str, extra: &[&str]) -> Run {
    let out = dir.join(format!("site-{name}"));
    let summary = dir.join(format!("summary-{name}.md"));
    let output = Command::new("bash")
        .arg(Path::new(ROOT).join("ci/publish-docs"))
        .arg("--artifacts")
        .arg(artifacts)
        .args(["--previous-history", previous])
        .arg("--out")
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .args(["--happy-docs", env!("CARGO_BIN_EXE_happy-docs")])
        .args(extra)
        .output()
        .expect("running ci/publish-docs");
    Run {
        output,
        out,
        summary,
    }
}

fn nights(history: &Value) -> BTreeSet<String> {
    runs(history)
        .iter()
        .map(|r| r["night"].as_str().expect("a run's night").to_string())
        .collect()
}

fn runs(history: &Value) -> &Vec<Value> {
    history["runs"].as_array().expect("history.json has runs")
}

/// A local HTTP server answering every request with `status` and `body`; counts requests.
struct Server {
    url: String,
    requests: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn serve(status: u16, body: Vec<u8>) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the test server");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("binding the test server");
    let url = format!(
        "http://{}/happy-istio/history.json",
        listener.local_addr().expect("its address")
    );
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let body = Bytes::from(body);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (counter, body) = (counter.clone(), body.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut response = Response::new(Full::new(body.clone()));
                    *response.status_mut() = StatusCode::from_u16(status).expect("a status");
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        url,
        requests,
        _runtime: runtime,
    }
}

#[test]
fn a_first_night_then_a_second_grows_the_history_by_one_night() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let versions = ["1.31.1", "1.30.4", "dev"];

    // Nothing published yet: Pages answers 404.
    let absent = serve(404, b"<h1>404</h1>".to_vec());
    let first = publish(
        dir.path(),
        "first",
        &night(dir.path(), "2026-11-30", &versions),
        &absent.url,
        &[],
    );
    first.assert_ok();
    assert!(
        first.stdout().contains("HTTP 404"),
        "a 404 is reported as a new history: {}",
        first.stdout()
    );
    let history = first.history();
    assert_eq!(nights(&history), BTreeSet::from(["2026-11-30".to_string()]));
    assert_eq!(runs(&history).len(), versions.len(), "one run per artifact");
    assert!(first.out.join("index.html").is_file());

    // The matrix as Markdown in the job summary: a table with a column per run.
    let summary = std::fs::read_to_string(&first.summary).expect("the summary file");
    let table: Vec<&str> = summary.lines().filter(|l| l.starts_with('|')).collect();
    assert!(
        table.len() >= 3,
        "no Markdown table in the summary:\n{summary}"
    );
    assert!(
        table[1].contains("---"),
        "the table's second line is no header separator:\n{summary}"
    );
    for istio in versions {
        assert!(
            table[0].contains(istio),
            "the summary's header has no column for Istio {istio}:\n{summary}"
        );
    }
    for claim in &claim_ids() {
        assert!(
            table.iter().any(|row| row.contains(claim.as_str())),
            "the summary's matrix has no row for {claim}:\n{summary}"
        );
    }
    // C08 failed in the failing fixture only, the dev cell: its column says so, no other does
    // (found by its heading, whatever the column order).
    let columns = |row: &str| -> Vec<String> {
        row.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let heading = columns(table[0]);
    let dev = heading
        .iter()
        .position(|h| h.contains("dev"))
        .unwrap_or_else(|| panic!("no column for the dev cell: {}", table[0]));
    let c08 = table
        .iter()
        .find(|row| row.contains("C08"))
        .expect("a row for C08");
    let cells = columns(c08);
    assert_eq!(cells.len(), heading.len(), "{c08}");
    for (i, cell) in cells.iter().enumerate().skip(1) {
        assert_eq!(
            cell.contains("failed"),
            i == dev,
            "C08 failed on the dev cell only, and the summary's row must say so: {c08}"
        );
    }

    // The failures' diagnostics bundles are inside the site, where the chapter pages link to
    // them: on Pages a link out of the site would lead nowhere.
    let site = first.out.canonicalize().expect("the site");
    let selector = scraper::Selector::parse("a[href*=\"diagnostics/\"]").expect("selector");
    let mut links = 0;
    for page in std::fs::read_dir(first.out.join("chapters")).expect("chapters/") {
        let page = page.expect("a chapter").path();
        let html = std::fs::read_to_string(&page).expect("a chapter page");
        let document = scraper::Html::parse_document(&html);
        for link in document
            .select(&selector)
            .filter_map(|a| a.value().attr("href"))
        {
            links += 1;
            let resolved = first
                .out
                .join("chapters")
                .join(link)
                .canonicalize()
                .unwrap_or_else(|e| {
                    panic!("{}: the link {link} leads nowhere: {e}", page.display())
                });
            assert!(
                resolved.starts_with(&site),
                "{}: the link {link} leaves the site ({})",
                page.display(),
                resolved.display()
            );
        }
    }
    assert!(links > 0, "no chapter page links a diagnostics bundle");

    // The next night reads it back from the server and adds itself.
    let published = serve(
        200,
        std::fs::read(first.out.join("history.json")).expect("history"),
    );
    let second = publish(
        dir.path(),
        "second",
        &night(dir.path(), "2026-12-01", &versions),
        &published.url,
        &[],
    );
    second.assert_ok();
    assert_eq!(published.requests.load(Ordering::SeqCst), 1);
    let merged = second.history();
    assert_eq!(
        nights(&merged),
        BTreeSet::from(["2026-11-30".to_string(), "2026-12-01".to_string()]),
        "the history grew by exactly one night"
    );
    assert_eq!(runs(&merged).len(), 2 * versions.len());
    for run in runs(&history) {
        assert!(
            runs(&merged).contains(run),
            "a run of the previous night was not kept as it was: {run}"
        );
    }

    // A file:// URL is read the same way.
    let from_file = publish(
        dir.path(),
        "file",
        &night(dir.path(), "2026-12-01", &versions),
        url::Url::from_file_path(first.out.join("history.json"))
            .expect("a file URL")
            .as_str(),
        &[],
    );
    from_file.assert_ok();
    assert_eq!(from_file.history(), merged);
}

/// The claim ids of the workshop, from the feature files' `@C..` tags.
fn claim_ids() -> Vec<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("features")).expect("features/") {
        let text = std::fs::read_to_string(entry.expect("a feature").path()).unwrap_or_default();
        for word in text.split_whitespace() {
            if let Some(id) = word.strip_prefix('@')
                && id.len() == 3
                && id.starts_with('C')
                && id[1..].chars().all(|c| c.is_ascii_digit())
            {
                ids.insert(id.to_string());
            }
        }
    }
    ids.into_iter().collect()
}

#[test]
fn the_history_stays_bounded() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let absent = serve(404, Vec::new());
    let first = publish(
        dir.path(),
        "seed",
        &night(dir.path(), "2026-11-30", &["1.31.1"]),
        &absent.url,
        &[],
    );
    first.assert_ok();
    // 400 earlier nights of that run, each a day before the next.
    let mut long = first.history();
    let seed = runs(&long)[0].clone();
    let newest: jiff::civil::Date = "2026-11-30".parse().expect("a date");
    let mut earlier = Vec::new();
    for back in (1..=400).rev() {
        let date = newest
            .checked_sub(jiff::Span::new().days(back))
            .expect("a date");
        let mut run = seed.clone();
        run["night"] = date.to_string().into();
        run["run_id"] = format!("{date}-1.31.1").into();
        run["started_at"] = format!("{date}T03:17:00Z").into();
        earlier.push(run);
    }
    earlier.push(seed);
    long["runs"] = Value::Array(earlier);
    let previous = dir.path().join("long-history.json");
    std::fs::write(&previous, serde_json::to_vec(&long).expect("JSON")).expect("write");

    let bounded = publish(
        dir.path(),
        "bounded",
        &night(dir.path(), "2026-12-01", &["1.31.1"]),
        previous.to_str().expect("a UTF-8 path"),
        &["--days", "366"],
    );
    bounded.assert_ok();
    let kept = nights(&bounded.history());
    assert_eq!(kept.len(), 366, "a year of nights is kept, no more");
    assert_eq!(kept.last().map(String::as_str), Some("2026-12-01"));
    assert_eq!(
        kept.first().map(String::as_str),
        Some("2025-12-01"),
        "the oldest nights went first"
    );
}

#[test]
fn a_server_error_stops_the_publication_instead_of_restarting_the_history() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = serve(500, b"internal error".to_vec());
    let run = publish(
        dir.path(),
        "broken",
        &night(dir.path(), "2026-12-01", &["1.31.1"]),
        &broken.url,
        &["--retries", "1"],
    );
    assert_eq!(
        run.output.status.code(),
        Some(1),
        "a 500 must fail the step: {}",
        run.stderr()
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains("HTTP 500") && stderr.contains(&broken.url),
        "the message names the status and the URL: {stderr}"
    );
    assert!(
        stderr.contains("not publishing"),
        "the message says nothing is published: {stderr}"
    );
    assert_eq!(
        broken.requests.load(Ordering::SeqCst),
        2,
        "a 500 is retried (--retries 1) before giving up"
    );
    assert!(!run.out.exists(), "no site is built on a lost history");
}

#[test]
fn a_previous_history_that_is_no_history_stops_the_publication() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    // A 200 that is not history.json (a portal's page, a broken publication).
    let wrong = serve(200, b"<!doctype html><p>Welcome</p>".to_vec());
    let run = publish(
        dir.path(),
        "wrong",
        &night(dir.path(), "2026-12-01", &["1.31.1"]),
        &wrong.url,
        &[],
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("not a history file") && stderr.contains(&wrong.url),
        "the message says what is wrong and where it came from: {stderr}"
    );
    assert!(
        !run.out.exists(),
        "a failed publication leaves no half-built site"
    );
}

#[test]
fn an_unreachable_history_server_stops_the_publication() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/history.json");
    let run = publish(
        dir.path(),
        "unreachable",
        &night(dir.path(), "2026-12-01", &["1.31.1"]),
        &url,
        &["--retries", "0"],
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("could not fetch the previous history")
            && run.stderr().contains(&url),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_cell_without_reports_is_named_and_the_others_are_published() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let artifacts = night(dir.path(), "2026-12-01", &["1.31.1"]);
    // A cell that uploaded a log but no run.json, and one that uploaded nothing at all.
    std::fs::create_dir_all(artifacts.join("happy-istio-1.30.4")).expect("dir");
    std::fs::write(artifacts.join("happy-istio-1.30.4/junit.xml"), "").expect("file");
    let run = publish(
        dir.path(),
        "partial",
        &artifacts,
        dir.path().join("no-history.json").to_str().expect("UTF-8"),
        &[
            "--expect",
            "happy-istio-1.31.1",
            "--expect",
            "happy-istio-1.30.4",
            "--expect",
            "happy-istio-dev",
        ],
    );
    run.assert_ok();
    assert_eq!(runs(&run.history()).len(), 1);
    let summary = std::fs::read_to_string(&run.summary).expect("summary");
    for missing in ["happy-istio-1.30.4", "happy-istio-dev"] {
        assert!(
            summary.contains(missing)
                && run
                    .stdout()
                    .contains(&format!("::warning::ci/publish-docs: artifact '{missing}'")),
            "{missing} is named in a warning and the summary:\n{summary}\n{}",
            run.stdout()
        );
    }
    assert!(!summary.contains("`happy-istio-1.31.1`"));
}

#[test]
fn bad_input_names_the_option() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let artifacts = night(dir.path(), "2026-12-01", &["1.31.1"]);
    for (extra, named) in [
        (vec!["--days", "0"], "--days '0'"),
        (vec!["--retries", "many"], "--retries 'many'"),
        (vec!["--frobnicate", "1"], "--frobnicate"),
    ] {
        let run = publish(dir.path(), "bad", &artifacts, "none.json", &extra);
        assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
        assert!(run.stderr().contains(named), "{}", run.stderr());
    }
    let run = publish(
        dir.path(),
        "ftp",
        &artifacts,
        "ftp://example.org/h.json",
        &[],
    );
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("--previous-history"),
        "{}",
        run.stderr()
    );
    // No report at all: nothing to publish, the previous site stays.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let run = publish(dir.path(), "empty", &empty, "none.json", &[]);
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert!(run.stderr().contains("no report in"), "{}", run.stderr());
}

/// What can be checked of the workflow here: the publish job is wired to this script and to
/// the cells' artifacts as the tests above exercise them (the rest runs only on GitHub).
#[test]
fn the_nightly_workflow_publishes_with_this_script() {
    let _processes = crate::processes::shared();
    let path = Path::new(ROOT).join(".github/workflows/nightly.yml");
    let text = std::fs::read_to_string(&path).expect("the nightly workflow");
    let workflow: Value = serde_saphyr::from_str(&text).expect("nightly.yml is YAML");
    let jobs = &workflow["jobs"];
    let publish = &jobs["publish"];
    assert_eq!(publish["needs"], serde_json::json!(["resolve", "happy"]));
    let condition = publish["if"].as_str().expect("an if:");
    assert!(
        condition.contains("always()") && condition.contains("needs.resolve.result == 'success'"),
        "publish runs whatever the cells did, once resolve succeeded: {condition}"
    );
    assert_eq!(publish["permissions"]["pages"], "write");
    assert_eq!(publish["permissions"]["id-token"], "write");
    assert!(
        workflow["permissions"].get("pages").is_none()
            && workflow["permissions"].get("id-token").is_none(),
        "Pages permissions on the publish job only"
    );
    assert_eq!(publish["environment"]["name"], "github-pages");

    let steps = |job: &Value| -> Vec<Value> { job["steps"].as_array().expect("steps").clone() };
    let uses = |steps: &[Value], action: &str| -> Value {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .unwrap_or_else(|| panic!("no step uses {action}"))
            .clone()
    };
    // The cells upload what the download's pattern matches, one artifact per cell.
    let cell = steps(&jobs["happy"]);
    let upload = uses(&cell, "actions/upload-artifact@");
    // (The canary cell's name gets a prefix outside the pattern: tests/it/workflows.rs.)
    assert_eq!(
        upload["with"]["name"],
        "${{ matrix.canary && format('canary-{0}-', matrix.runner) || '' }}happy-istio-${{ matrix.istio }}"
    );
    assert_eq!(upload["with"]["path"], "target/happy/");
    let publish_steps = steps(publish);
    let download = uses(&publish_steps, "actions/download-artifact@v8");
    assert_eq!(download["with"]["pattern"], "happy-istio-*");
    assert!(
        download["with"].get("merge-multiple").is_none(),
        "one directory per artifact (merge-multiple false) is what ci/publish-docs reads"
    );
    let artifacts = download["with"]["path"].as_str().expect("a download path");
    uses(&publish_steps, "actions/configure-pages@v5");
    let pages = uses(&publish_steps, "actions/upload-pages-artifact@v5");
    uses(&publish_steps, "actions/deploy-pages@v5");

    // The script is called with options it has, on the download, into what is uploaded: once
    // for the job summary, once for the site.
    let script = std::fs::read_to_string(Path::new(ROOT).join("ci/publish-docs")).expect("script");
    let runs_script: Vec<(usize, &str)> = publish_steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s["run"].as_str().map(|r| (i, r)))
        .filter(|(_, r)| r.contains("ci/publish-docs"))
        .collect();
    assert_eq!(runs_script.len(), 2, "a summary step and a site step");
    let (summary_at, summary_run) = *runs_script
        .iter()
        .find(|(_, r)| r.contains("--summary-only"))
        .expect("a step writing the job summary alone");
    let (site_at, run) = *runs_script
        .iter()
        .find(|(_, r)| !r.contains("--summary-only"))
        .expect("a step building the site");
    let pages_at = publish_steps
        .iter()
        .position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/configure-pages@"))
        })
        .expect("configure-pages");
    // The summary comes from the artifacts before, and independently of, Pages: a Pages
    // failure still leaves the night's summary.
    assert!(
        summary_at < pages_at && pages_at < site_at,
        "summary at step {summary_at}, configure-pages at {pages_at}, site at {site_at}"
    );
    let summary_step = &publish_steps[summary_at];
    assert!(
        !serde_json::to_string(summary_step)
            .expect("JSON")
            .contains("steps.pages"),
        "the summary step needs nothing of Pages: {summary_step}"
    );
    let words_of =
        |run: &str| -> Vec<String> { run.split_whitespace().map(str::to_string).collect() };
    for run in [summary_run, run] {
        for option in words_of(run).iter().filter(|w| w.starts_with("--")) {
            let option = option.trim_matches('"');
            if option == "--locked" || option == "--bin" {
                continue; // cargo's
            }
            assert!(
                script.contains(&format!("# {option} ")),
                "the workflow passes {option}, which ci/publish-docs does not document"
            );
        }
    }
    let value_in = |run: &str, option: &str| -> String {
        let words = words_of(run);
        words
            .iter()
            .position(|w| w == option)
            .and_then(|i| words.get(i + 1))
            .cloned()
            .unwrap_or_else(|| panic!("the workflow passes no {option} in {run}"))
    };
    let value = |option: &str| value_in(run, option);
    assert_eq!(value("--artifacts"), artifacts);
    assert_eq!(value_in(summary_run, "--artifacts"), artifacts);
    assert_eq!(
        value_in(summary_run, "--summary"),
        "\"$GITHUB_STEP_SUMMARY\""
    );
    assert!(
        !words_of(run).iter().any(|w| w == "--summary"),
        "the summary is written once, by the summary step: {run}"
    );
    // Earlier runs' reports, downloaded before, reach the history.
    let earlier = value("--earlier");
    let fetch_earlier = publish_steps
        .iter()
        .position(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("gh run download") && r.contains(&earlier))
        })
        .expect("a step downloading earlier runs' reports into --earlier's directory");
    assert!(fetch_earlier < site_at);
    assert_eq!(
        publish_steps[fetch_earlier]["continue-on-error"], true,
        "best effort: without them the night is published as before"
    );
    assert_eq!(publish["permissions"]["actions"], "read");
    let out = value("--out");
    assert_eq!(
        pages["with"]["path"]
            .as_str()
            .map(|p| p.trim_end_matches('/')),
        Some(out.as_str())
    );
    // The history is read back under a URL of this run's own, so no stale cached copy is read.
    assert!(
        value("--previous-history")
            .ends_with("/history.json?run=$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT\""),
        "{}",
        value("--previous-history")
    );
    // No pending publication is cancelled by a newer one.
    assert_eq!(publish["concurrency"]["group"], "pages");
    assert_eq!(publish["concurrency"]["cancel-in-progress"], false);
    assert_eq!(publish["concurrency"]["queue"], "max");

    // The cell's step hands the runner's signals to the suite (`exec` of GNU timeout, which
    // passes them on; ci/nightly-run `exec`s the suite), and stops the suite itself well before
    // the job's limit.
    let suite = cell
        .iter()
        .find(|s| s["name"] == "Run the suite on kind")
        .expect("the suite's step");
    let command = suite["run"]
        .as_str()
        .expect("a run: script")
        .lines()
        .map(str::trim)
        .find(|l| l.contains("ci/nightly-run"))
        .expect("a line running ci/nightly-run");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..3], ["exec", "timeout", "--signal=INT"], "{command}");
    assert_eq!(
        words[words.len() - 2..],
        ["bash", "ci/nightly-run"],
        "{command}"
    );
    let minutes = |word: &str| -> u64 {
        word.strip_suffix('m')
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("{word}: minutes expected"))
    };
    let kill_after = minutes(
        words[3]
            .strip_prefix("--kill-after=")
            .unwrap_or_else(|| panic!("--kill-after expected: {command}")),
    );
    let limit = minutes(words[4]);
    let job_limit = jobs["happy"]["timeout-minutes"]
        .as_u64()
        .expect("timeout-minutes");
    // The set-up steps before it (checkout, toolchain, caches) take a few minutes: 5 kept.
    assert!(
        limit + kill_after + 5 <= job_limit,
        "{limit} min + {kill_after} min + 5 min of set-up must end before the job's {job_limit} min"
    );
}

/// A night whose publication failed (its runs never reached the history) is not lost: the next
/// publication is given the earlier runs' artifacts (`--earlier`, as the workflow downloads them:
/// one directory per workflow run) and merges them into the history — not into the matrix. An
/// earlier report happy-docs cannot read costs the night nothing: a warning, and the site
/// without them.
#[test]
fn earlier_runs_reach_the_history_after_a_failed_publication() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let versions = ["1.31.1", "1.30.5"];
    let first = publish(
        dir.path(),
        "n1",
        &night(dir.path(), "2026-11-30", &versions),
        dir.path().join("none.json").to_str().expect("UTF-8"),
        &[],
    );
    first.assert_ok();
    // 2026-12-01: the cells ran, the publication failed; 2026-12-02 publishes with the
    // history of 2026-11-30 and the earlier runs' artifacts.
    let earlier = dir.path().join("earlier");
    let lost = night(dir.path(), "2026-12-01", &versions);
    std::fs::create_dir_all(&earlier).expect("dir");
    std::fs::rename(&lost, earlier.join("4242")).expect("rename");
    // The first night's artifacts are among the earlier runs too: already in the history.
    copy_dir(&dir.path().join("site-n1/reports"), &earlier.join("4141"));
    let history = first.out.join("history.json");
    let earlier_arg = earlier.display().to_string();
    let third = publish(
        dir.path(),
        "n3",
        &night(dir.path(), "2026-12-02", &versions),
        history.to_str().expect("UTF-8"),
        &["--earlier", &earlier_arg],
    );
    third.assert_ok();
    let merged = third.history();
    assert_eq!(
        nights(&merged),
        BTreeSet::from([
            "2026-11-30".to_string(),
            "2026-12-01".to_string(),
            "2026-12-02".to_string()
        ]),
        "the lost night is back"
    );
    assert_eq!(runs(&merged).len(), 3 * versions.len(), "each run once");
    let md = std::fs::read_to_string(&third.summary).expect("summary");
    let head = md
        .lines()
        .find(|l| l.starts_with("| Claim |"))
        .expect("the matrix");
    assert_eq!(
        head.matches("Istio ").count(),
        versions.len(),
        "tonight's columns only: {head}"
    );
    assert!(!head.contains("2026-12-01"), "{head}");

    // An earlier report that cannot be read: a warning, and tonight is published without them.
    let broken = earlier.join("4343/happy-istio-1.29.9");
    std::fs::create_dir_all(&broken).expect("dir");
    std::fs::write(broken.join("run.json"), "{ not json").expect("run.json");
    let fourth = publish(
        dir.path(),
        "n4",
        &night(dir.path(), "2026-12-03", &versions),
        third.out.join("history.json").to_str().expect("UTF-8"),
        &["--earlier", &earlier_arg],
    );
    fourth.assert_ok();
    assert!(
        fourth.stdout().contains("::warning::") && fourth.stdout().contains("earlier runs"),
        "{}",
        fourth.stdout()
    );
    assert_eq!(nights(&fourth.history()).len(), 4);
    // A directory of earlier runs that does not exist holds none.
    let fifth = publish(
        dir.path(),
        "n5",
        &night(dir.path(), "2026-12-04", &versions),
        fourth.out.join("history.json").to_str().expect("UTF-8"),
        &[
            "--earlier",
            dir.path().join("nothing").to_str().expect("UTF-8"),
        ],
    );
    fifth.assert_ok();
    assert_eq!(nights(&fifth.history()).len(), 5);
}

/// The job summary alone (`--summary-only`, the publish job's first step): the matrix of the
/// cells' reports and the cells left out, from the artifacts only — no history fetched, no
/// site written.
#[test]
fn the_summary_alone_needs_no_history_and_writes_no_site() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let artifacts = night(dir.path(), "2026-12-01", &["1.31.1", "1.30.5"]);
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").expect("summary");
    let run = |extra: &[&str]| {
        Command::new("bash")
            .arg(Path::new(ROOT).join("ci/publish-docs"))
            .arg("--summary-only")
            .arg("--artifacts")
            .arg(&artifacts)
            .arg("--summary")
            .arg(&summary)
            .args(["--happy-docs", env!("CARGO_BIN_EXE_happy-docs")])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .expect("running ci/publish-docs")
    };
    let output = run(&[
        "--expect",
        "happy-istio-1.31.1",
        "--expect",
        "happy-istio-dev",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let md = std::fs::read_to_string(&summary).expect("summary");
    assert!(md.starts_with("earlier step\n"), "appended: {md}");
    let head = md
        .lines()
        .find(|l| l.starts_with("| Claim |"))
        .expect("the matrix");
    assert!(
        head.contains("Istio 1.31.1") && head.contains("Istio 1.30.5"),
        "{head}"
    );
    assert!(
        md.contains("**Left out**") && md.contains("`happy-istio-dev`"),
        "{md}"
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("artifacts-") && n != "summary.md")
        .collect();
    assert!(left.is_empty(), "nothing but the summary written: {left:?}");
    // What the summary does not use is refused, not silently ignored.
    for extra in [
        &["--out", "site"][..],
        &["--previous-history", "h.json"][..],
    ] {
        let output = run(extra);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(extra[0]),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// macOS's /bin/bash is 3.2: the scripts a person runs there must not use what it lacks. No
/// bash 3.2 runs here (Debian ships none), so this reads the scripts for the constructs that
/// break it: an array expanded without the empty-array guard (`set -u` calls an empty array
/// unbound before bash 4.4: bash CHANGES, bash-4.4-rc2), associative arrays, mapfile, case
/// conversion, namerefs, `|&`, `&>>`, `coproc`, `;&`, `${x@Q}` (all bash 4 or later).
#[test]
fn the_scripts_keep_to_bash_3_2() {
    let _processes = crate::processes::shared();
    for name in ["ci/publish-docs", "ci/bench", "ci/nightly-run"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(name)).expect("script");
        let mut in_heredoc: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{name}:{}: {line}", n + 1);
            if let Some(end) = &in_heredoc {
                if line.trim() == end {
                    in_heredoc = None;
                }
                continue;
            }
            if let Some((_, rest)) = line.split_once("<<'") {
                in_heredoc = rest.split_once('\'').map(|(tag, _)| tag.to_string());
            }
            let code = line.trim_start();
            if code.starts_with('#') {
                continue;
            }
            for construct in [
                "declare -A",
                "local -A",
                "typeset -A",
                "declare -n",
                "local -n",
                "mapfile",
                "readarray",
                "coproc",
                "|&",
                "&>>",
                ";&",
                ",,}",
                "^^}",
                "@Q}",
            ] {
                assert!(!code.contains(construct), "{construct} (bash ≥ 4) at {at}");
            }
            // Every `${a[@]}` / `${a[*]}` / `${!a[@]}` sits inside its guard `${a[@]+…}`.
            for (i, _) in code.match_indices("${") {
                let after = &code[i + 2..];
                let (bang, after) = match after.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, after),
                };
                if after.starts_with('#') {
                    continue; // ${#a[@]}: a count, safe on every bash
                }
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let tail = &after[name.len()..];
                if name.is_empty() || !(tail.starts_with("[@]}") || tail.starts_with("[*]}")) {
                    continue;
                }
                let guard = format!("${{{name}[@]+");
                assert!(
                    code[..i].trim_end_matches('"').ends_with(&guard),
                    "${{{}{name}{}}} without its empty-array guard {guard}\"…\"}} at {at}",
                    if bang { "!" } else { "" },
                    &tail[..3]
                );
            }
        }
    }
}

/// download-artifact extracts a single matching artifact into its `path` itself (its README,
/// v8.0.1, `merge-multiple`): a one-cell matrix still publishes, under the cell's name.
#[test]
fn a_single_artifact_extracted_flat_is_published() {
    let _processes = crate::processes::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = night(dir.path(), "2026-12-01", &["1.31.1"]);
    let flat = nested.join("happy-istio-1.31.1");
    let run = publish(
        dir.path(),
        "flat",
        &flat,
        dir.path().join("none.json").to_str().expect("UTF-8"),
        &["--expect", "happy-istio-1.31.1"],
    );
    run.assert_ok();
    assert_eq!(runs(&run.history()).len(), 1);
    assert!(
        run.out
            .join("reports/happy-istio-1.31.1/run.json")
            .is_file()
    );
    assert!(
        !run.stdout().contains("::warning::"),
        "nothing is missing: {}",
        run.stdout()
    );
}
