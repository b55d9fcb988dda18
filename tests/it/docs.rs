//! The living documentation (`happy_istio::docs`, `happy-docs`) built from reports recorded
//! from real sandbox runs (tests/fixtures/docs/, see its README), relabelled here as several
//! Istio versions and nights. The assertions read the pages' structure with an HTML parser:
//! the matrix's cells, statuses and links, the history strips and the night a claim began
//! failing, the chapter pages' sections, failure messages and doc strings, escaping, and the
//! errors for bad input.

use crate::fixture_dirs::{copy_dir, docs_fixtures};
use std::path::{Path, PathBuf};
use std::process::Command;

use happy_istio::docs::{self, Options};
use scraper::{ElementRef, Html, Selector};

/// A copy of fixture `name` in `dest`, relabelled: run id, Istio version and start time in
/// run.json, and the run's diagnostics directory renamed to the new run id.
fn relabel(name: &str, dest: &Path, run_id: &str, istio: &str, started_at: &str) -> PathBuf {
    let dir = dest.join(run_id);
    copy_dir(&docs_fixtures().join(name), &dir);
    let path = dir.join("run.json");
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let old_id = run["run_id"].as_str().unwrap().to_string();
    run["run_id"] = run_id.into();
    run["istio_version"] = istio.into();
    run["started_at"] = started_at.into();
    std::fs::write(&path, serde_json::to_string_pretty(&run).unwrap()).unwrap();
    let diagnostics = dir.join("diagnostics");
    if diagnostics.join(&old_id).is_dir() {
        std::fs::rename(diagnostics.join(&old_id), diagnostics.join(run_id)).unwrap();
    }
    dir
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn page(path: &Path) -> Html {
    Html::parse_document(&std::fs::read_to_string(path).unwrap())
}

fn text(e: ElementRef) -> String {
    e.text().collect::<String>()
}

fn cell<'a>(doc: &'a Html, claim: &str, run: &str) -> ElementRef<'a> {
    let s = sel(&format!(
        "table#matrix td[data-claim=\"{claim}\"][data-run=\"{run}\"]"
    ));
    let found: Vec<_> = doc.select(&s).collect();
    assert_eq!(found.len(), 1, "one cell for {claim} on {run}");
    found[0]
}

fn build(reports: Vec<PathBuf>, out: &Path, history: Option<PathBuf>) -> docs::Built {
    let mut options = Options::for_reports(reports);
    options.out = Some(out.to_path_buf());
    options.history = history;
    docs::build(&options).unwrap()
}

/// Every claim row the features define, in chapter order.
fn claims() -> Vec<String> {
    let mut out = Vec::new();
    for chapter in docs::features::load_dir(&docs::default_features_dir()).unwrap() {
        for s in chapter.scenarios {
            if !out.contains(&s.claim) {
                out.push(s.claim);
            }
        }
    }
    out
}

#[test]
fn the_matrix_says_each_claims_verdict_in_words_and_links_to_its_scenario() {
    let _processes = crate::processes::shared();
    let tmp = tempfile::tempdir().unwrap();
    let runs = vec![
        relabel(
            "green",
            tmp.path(),
            "n1-131",
            "1.31.1",
            "2026-11-30T02:00:00Z",
        ),
        relabel(
            "failed",
            tmp.path(),
            "n1-130",
            "1.30.5",
            "2026-11-30T02:05:00Z",
        ),
        relabel(
            "allgreen",
            tmp.path(),
            "n1-dev",
            "1.32.0-alpha.0123456789abcdef0123456789abcdef01234567",
            "2026-11-30T02:10:00Z",
        ),
    ];
    // The 1.30 run recorded where its images came from; the fixtures predate the field.
    let path = runs[1].join("run.json");
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    run["istio_hub"] = "docker.io/istio".into();
    std::fs::write(&path, serde_json::to_string_pretty(&run).unwrap()).unwrap();
    let out = tmp.path().join("site");
    let built = build(runs, &out, None);
    assert_eq!(built.runs, 3);
    let doc = page(&built.index);

    let heads: Vec<String> = doc
        .select(&sel("table#matrix thead th[scope=col]"))
        .map(text)
        .collect();
    assert_eq!(
        heads.len(),
        4,
        "the claim column and one per run: {heads:?}"
    );
    // Columns in the history's order of lines: dev, then the newest minor first.
    assert!(heads[1].contains("Istio 1.32.0-alpha."), "{}", heads[1]);
    assert!(heads[2].contains("Istio 1.31.1") && heads[2].contains("sandbox"));
    assert!(heads[2].contains("Kubernetes v1.33.0") && heads[2].contains("2026-11-30"));
    assert!(heads[3].contains("Istio 1.30.5"));

    let rows: Vec<String> = doc
        .select(&sel("table#matrix th[scope=row]"))
        .map(text)
        .collect();
    let claims = claims();
    assert_eq!(rows.len(), claims.len(), "a row per claim: {rows:?}");
    for (row, claim) in rows.iter().zip(&claims) {
        assert!(
            row.starts_with(&format!("{claim} ")),
            "{row} is {claim}'s row"
        );
    }
    assert!(
        rows[7].contains("The ingress gateway routes to service-a"),
        "{}",
        rows[7]
    );
    assert_eq!(
        doc.select(&sel("table#matrix td[data-claim]")).count(),
        claims.len() * 3
    );

    // Every cell's visible text begins with its status word and links into a chapter.
    for td in doc.select(&sel("table#matrix td[data-claim]")) {
        let status = td.value().attr("data-status").unwrap();
        assert!(
            ["passed", "failed", "skipped", "passed-with-deviation"].contains(&status),
            "{status}"
        );
        assert!(text(td).starts_with(status), "{:?} says {status}", text(td));
        let href = td
            .select(&sel("a"))
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap();
        let (file, anchor) = href.split_once('#').unwrap();
        let chapter = page(&out.join(file));
        assert_eq!(
            chapter
                .select(&sel(&format!("section[id=\"{anchor}\"]")))
                .count(),
            1,
            "{href} leads to its scenario"
        );
    }

    let c01 = cell(&doc, "C01", "n1-131");
    assert_eq!(c01.value().attr("data-status"), Some("passed"));
    let c08_failed = cell(&doc, "C08", "n1-130");
    assert_eq!(c08_failed.value().attr("data-status"), Some("failed"));
    assert!(
        text(c08_failed).contains("claim failure"),
        "{}",
        text(c08_failed)
    );
    let c08 = cell(&doc, "C08", "n1-131");
    assert_eq!(
        c08.value().attr("data-status"),
        Some("passed-with-deviation")
    );
    assert!(text(c08).contains("D-ingress-address"), "{}", text(c08));
    let c17 = cell(&doc, "C17", "n1-130");
    assert_eq!(c17.value().attr("data-status"), Some("failed"));
    assert!(text(c17).contains("environment failure"), "{}", text(c17));
    let c14 = cell(&doc, "C14", "n1-131");
    assert_eq!(c14.value().attr("data-status"), Some("skipped"));
    assert!(
        text(c14).contains("Grafana and Kiali do not run on the sandbox"),
        "{}",
        text(c14)
    );
    let c14_dev = cell(&doc, "C14", "n1-dev");
    assert_eq!(c14_dev.value().attr("data-status"), Some("skipped"));
    assert!(text(c14_dev).contains("not selected"), "{}", text(c14_dev));
    // C12: Prometheus passed, Grafana and Kiali skipped: it passed, and says what was skipped.
    let c12 = cell(&doc, "C12", "n1-131");
    assert!(
        c12.value()
            .attr("data-status")
            .unwrap()
            .starts_with("passed")
    );
    assert!(
        text(c12).contains("1 of 2 scenarios skipped"),
        "{}",
        text(c12)
    );
    assert_eq!(
        c12.select(&sel("a")).next().unwrap().value().attr("href"),
        Some("chapters/04-observability.html#C12")
    );

    // What the page rests on: the sandbox said plainly, the deviations, the skips.
    assert_eq!(doc.select(&sel("article.run")).count(), 3);
    let rests = |run: &str| {
        doc.select(&sel(&format!("article.run#rests-{run}")))
            .next()
            .unwrap()
    };
    assert!(text(rests("n1-131")).contains("This was a sandbox run."));
    assert!(
        text(rests("n1-130")).contains("1.30.5 (line 1.30), images from docker.io/istio"),
        "{}",
        text(rests("n1-130"))
    );
    assert!(!text(rests("n1-131")).contains("images from"));
    let deviations: Vec<String> = rests("n1-dev")
        .select(&sel("table.deviations th[scope=row]"))
        .map(text)
        .collect();
    assert!(
        deviations.iter().any(|d| d.starts_with("D-legacy-image")),
        "{deviations:?}"
    );
    assert!(
        rests("n1-dev")
            .select(&sel("table.deviations ul.sources li"))
            .any(|li| text(li).starts_with("containerd/containerd client/pull.go")),
        "the deviations' upstream sources are cited"
    );
    assert!(
        rests("n1-131")
            .select(&sel("ul.skips li"))
            .any(|li| text(li).contains("Kiali shows the legacy client's traffic without mTLS"))
    );
    // The other runs kept the same deviations on: said once, then pointed to.
    for run in ["n1-131", "n1-130"] {
        let same = rests(run)
            .select(&sel("p.same-deviations a"))
            .next()
            .expect("a later run points to the first's deviations");
        assert_eq!(same.value().attr("href"), Some("#rests-n1-dev"));
        assert_eq!(rests(run).select(&sel("table.deviations")).count(), 0);
    }
    let commit = rests("n1-dev")
        .select(&sel("dd code"))
        .map(text)
        .find(|c| c.len() >= 40)
        .expect("the allgreen run recorded the suite's commit");
    assert!(
        commit.chars().take(40).all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
    // Each column heading leads to what its run rests on.
    let head_link = doc
        .select(&sel("table#matrix th#run-n1-130 a"))
        .next()
        .unwrap();
    assert_eq!(head_link.value().attr("href"), Some("#rests-n1-130"));

    // At a glance: each run's claims counted, the failed ones named.
    let glance = text(
        doc.select(&sel("ul.glance li[data-run=\"n1-130\"]"))
            .next()
            .unwrap(),
    );
    assert!(glance.contains(" failed (C08, "), "{glance}");
    assert!(glance.contains("C17"), "{glance}");

    // Self-contained: one stylesheet, no scripts, nothing fetched from elsewhere.
    assert_eq!(doc.select(&sel("script")).count(), 0);
    let links: Vec<&str> = doc
        .select(&sel("link[rel=stylesheet]"))
        .filter_map(|l| l.value().attr("href"))
        .collect();
    assert_eq!(links, ["style.css"]);
    assert!(out.join("style.css").is_file());
    for a in doc.select(&sel("a[href]")) {
        let href = a.value().attr("href").unwrap();
        assert!(
            !href.contains("//"),
            "no external link on the index: {href}"
        );
    }
}

#[test]
fn chapter_pages_show_steps_commands_failures_with_their_class_and_diagnostics() {
    let _processes = crate::processes::shared();
    let tmp = tempfile::tempdir().unwrap();
    let runs = vec![
        relabel("green", tmp.path(), "g", "1.31.1", "2026-11-30T02:00:00Z"),
        relabel("failed", tmp.path(), "f", "1.31.1", "2026-11-30T03:00:00Z"),
    ];
    let out = tmp.path().join("site");
    build(runs, &out, None);
    let ingress = page(&out.join("chapters/03-ingress.html"));
    assert!(
        ingress
            .select(&sel("div.prose p"))
            .any(|p| text(p).starts_with("A Gateway opens port 80"))
    );
    let c08 = ingress.select(&sel("section#C08")).next().unwrap();
    let commands: Vec<String> = c08.select(&sel("pre > code")).map(text).collect();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80\ncurl localhost:8080")),
        "{commands:?}"
    );
    // Each step row has a status per run; the failed one says so on the failed run.
    let step_rows: Vec<ElementRef> = c08.select(&sel("table.steps tbody tr")).collect();
    assert!(step_rows.len() > 6, "background and scenario steps");
    let failed_row = step_rows
        .iter()
        .find(|r| text(**r).contains("Then some responses are 500 and some are 200"))
        .unwrap();
    let statuses: Vec<String> = failed_row.select(&sel("td")).map(text).collect();
    assert_eq!(statuses, ["passed", "failed"]);
    let failure = c08.select(&sel("pre.failure")).next().unwrap();
    assert!(
        text(failure).starts_with("claim failed: 31 requests for /"),
        "{}",
        text(failure)
    );
    let result = c08
        .select(&sel("li.result[data-run=\"f\"]"))
        .next()
        .unwrap();
    assert_eq!(result.value().attr("data-status"), Some("failed"));
    assert!(text(result).contains("Class: claim"), "{}", text(result));
    let rests = result.select(&sel("a.rests")).next().unwrap();
    assert_eq!(rests.value().attr("href"), Some("../index.html#rests-f"));
    let bundle = result
        .select(&sel("a.diagnostics"))
        .next()
        .expect("a link to the diagnostics bundle")
        .value()
        .attr("href")
        .unwrap();
    let target = out.join("chapters").join(bundle);
    assert!(
        target.join("README.txt").is_file(),
        "{bundle} leads to the bundle"
    );

    let security = page(&out.join("chapters/06-security.html"));
    let c17 = security.select(&sel("section#C17")).next().unwrap();
    let env = c17.select(&sel("pre.failure")).next().unwrap();
    assert_eq!(env.value().attr("data-class"), Some("environment"));
    assert!(
        text(env).starts_with("environment failed: "),
        "{}",
        text(env)
    );
    assert!(
        text(c17).contains("No diagnostics bundle"),
        "this one was trimmed away"
    );

    // Built away from the bundles (the nightly's artifacts), a failure links to its CI run.
    let ci_tmp = tempfile::tempdir().unwrap();
    let ci_run = relabel(
        "failed",
        ci_tmp.path(),
        "ci",
        "1.31.1",
        "2026-11-30T03:00:00Z",
    );
    std::fs::remove_dir_all(ci_run.join("diagnostics")).unwrap();
    let path = ci_run.join("run.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    info["ci_run_url"] = "https://github.com/o/happy-istio/actions/runs/42".into();
    std::fs::write(&path, info.to_string()).unwrap();
    let ci_out = ci_tmp.path().join("site");
    build(vec![ci_run], &ci_out, None);
    let ingress = page(&ci_out.join("chapters/03-ingress.html"));
    let link = ingress
        .select(&sel("section#C08 a.diagnostics.ci"))
        .next()
        .expect("a link to the CI run");
    assert_eq!(
        link.value().attr("href"),
        Some("https://github.com/o/happy-istio/actions/runs/42")
    );

    let install = page(&out.join("chapters/02-install-and-injection.html"));
    let ids: Vec<&str> = install
        .select(&sel("section.scenario"))
        .filter_map(|s| s.value().attr("id"))
        .collect();
    assert_eq!(ids[..2], ["C05", "C05-2"]);
}

#[test]
fn history_strips_and_the_first_night_a_claim_failed() {
    let _processes = crate::processes::shared();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let history = site.join("history.json");
    let night = |n: u32, runs: Vec<PathBuf>, days: Option<u32>| {
        let mut options = Options::for_reports(runs);
        options.out = Some(site.clone());
        options.history = Some(history.clone());
        if let Some(d) = days {
            options.days = d;
        }
        docs::build(&options).unwrap();
        assert!(history.is_file(), "night {n} wrote the history");
    };
    let r = |fixture: &str, id: &str, version: &str, at: &str| {
        relabel(
            fixture,
            &tmp.path().join(format!("runs-{at}")),
            id,
            version,
            at,
        )
    };
    const DEV: &str = "1.32.0-alpha.0123456789abcdef0123456789abcdef01234567";
    night(
        1,
        vec![r("green", "n1", "1.31.0", "2026-11-27T02:00:00Z")],
        None,
    );
    night(
        2,
        vec![
            r("green", "n2", "1.31.0", "2026-11-28T02:00:00Z"),
            r("allgreen", "n2-dev", DEV, "2026-11-28T02:00:00Z"),
        ],
        None,
    );
    night(
        3,
        vec![r("failed", "n3", "1.31.1", "2026-11-29T02:00:00Z")],
        None,
    );
    night(
        4,
        vec![r("failed", "n4", "1.31.2", "2026-11-30T02:00:00Z")],
        None,
    );

    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_eq!(stored["schema"], 1);
    assert_eq!(stored["runs"].as_array().unwrap().len(), 5);

    let doc = page(&site.join("index.html"));
    let lines: Vec<&str> = doc
        .select(&sel("table.history"))
        .filter_map(|t| t.value().attr("data-line"))
        .collect();
    assert_eq!(lines, ["dev", "1.31"]);
    let strip = |line: &str, claim: &str| -> Vec<String> {
        doc.select(&sel(&format!(
            "table.history[data-line=\"{line}\"] tr[data-claim=\"{claim}\"] td.strip"
        )))
        .map(|td| td.value().attr("data-status").unwrap().to_string())
        .collect()
    };
    assert_eq!(
        strip("1.31", "C08"),
        [
            "passed-with-deviation",
            "passed-with-deviation",
            "failed",
            "failed"
        ]
    );
    assert_eq!(
        strip("1.31", "C01"),
        ["passed", "passed", "passed", "passed"]
    );
    assert_eq!(strip("1.31", "C14"), ["skipped"; 4]);
    assert_eq!(strip("dev", "C08"), ["passed-with-deviation"]);
    // The dev run did not select the Kiali scenarios: it says nothing about C14.
    assert_eq!(strip("dev", "C14"), ["none"]);
    let dev_run = stored["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "n2-dev")
        .unwrap();
    assert!(dev_run["claims"].get("C14").is_none(), "{dev_run}");
    assert_eq!(dev_run["line"], "dev");
    let since = doc
        .select(&sel(
            "table.history[data-line=\"1.31\"] tr[data-claim=\"C08\"] [data-failing-since]",
        ))
        .next()
        .expect("C08 is failing on 1.31");
    assert_eq!(since.value().attr("data-failing-since"), Some("2026-11-29"));
    assert_eq!(since.value().attr("data-failing-version"), Some("1.31.1"));
    assert!(text(since).contains("failing since 2026-11-29 (Istio 1.31.1)"));
    assert_eq!(
        doc.select(&sel(
            "table.history[data-line=\"1.31\"] tr[data-claim=\"C01\"] [data-failing-since]"
        ))
        .count(),
        0
    );

    // A run built again (same id) replaces itself; --days bounds the history.
    night(
        5,
        vec![r("failed", "n4", "1.31.2", "2026-11-30T02:30:00Z")],
        Some(2),
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    let ids: Vec<&str> = stored["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["n3", "n4"], "the last 2 nights, n4 once");
}

#[test]
fn text_from_reports_and_features_is_escaped() {
    let _processes = crate::processes::shared();
    let tmp = tempfile::tempdir().unwrap();
    let run = relabel("failed", tmp.path(), "x", "1.31.1", "2026-11-30T02:00:00Z");
    let json_path = run.join("cucumber.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let mut replaced = 0;
    for feature in json.as_array_mut().unwrap() {
        for element in feature["elements"].as_array_mut().unwrap() {
            for step in element["steps"].as_array_mut().unwrap() {
                if step["result"]["status"] == "failed" && replaced == 0 {
                    step["result"]["error_message"] =
                        "claim failed: got <script>alert('x')</script> & <b>bold</b>".into();
                    replaced += 1;
                }
            }
        }
    }
    assert_eq!(replaced, 1);
    std::fs::write(&json_path, json.to_string()).unwrap();
    // A feature whose prose carries markup and a scenario name with a tag in it.
    let features = tmp.path().join("features");
    copy_dir(&docs::default_features_dir(), &features);
    let ingress = features.join("03-ingress.feature");
    let original = std::fs::read_to_string(&ingress).unwrap();
    let changed = original.replacen(
        "  A Gateway opens port 80",
        "  <script>alert(2)</script> <img src=x onerror=alert(3)> A Gateway opens port 80",
        1,
    );
    assert_ne!(changed, original);
    std::fs::write(&ingress, changed).unwrap();

    let mut options = Options::for_reports(vec![run]);
    options.out = Some(tmp.path().join("site"));
    options.features = features;
    docs::build(&options).unwrap();
    let doc = page(&tmp.path().join("site/chapters/03-ingress.html"));
    assert_eq!(doc.select(&sel("script")).count(), 0);
    assert_eq!(doc.select(&sel("img")).count(), 0);
    assert_eq!(doc.select(&sel("pre.failure b")).count(), 0);
    let failure = doc.select(&sel("pre.failure")).next().unwrap();
    assert_eq!(
        text(failure),
        "claim failed: got <script>alert('x')</script> & <b>bold</b>"
    );
    let prose = text(doc.select(&sel("div.prose")).next().unwrap());
    assert!(prose.contains("<script>alert(2)</script>"), "{prose}");
    assert!(prose.contains("<img src=x onerror=alert(3)>"), "{prose}");
}

#[test]
fn bad_input_names_the_file_and_the_command_exits_2() {
    let _processes = crate::processes::shared();
    let exe = env!("CARGO_BIN_EXE_happy-docs");
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(exe).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let empty_s = empty.to_str().unwrap();
    let (code, err, _) = run(&["--reports", empty_s, "--out", empty_s]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&empty.join("run.json").display().to_string()),
        "{err}"
    );

    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("run.json"), "{ not json").unwrap();
    let (code, err, _) = run(&["--reports", broken.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&broken.join("run.json").display().to_string()),
        "{err}"
    );

    let good = relabel(
        "failed",
        tmp.path(),
        "good",
        "1.31.1",
        "2026-11-30T02:00:00Z",
    );
    let history = tmp.path().join("history.json");
    std::fs::write(&history, "{\"schema\": 1, \"runs\": [").unwrap();
    let out = tmp.path().join("out");
    let (code, err, _) = run(&[
        "--reports",
        good.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains(&history.display().to_string()), "{err}");
    std::fs::write(&history, "{\"schema\": 7, \"runs\": []}").unwrap();
    let (code, err, _) = run(&[
        "--reports",
        good.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("schema 7"), "{err}");

    let (code, err, _) = run(&["--reports", good.to_str().unwrap(), "--days", "x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--days"), "{err}");
    let (code, err, _) = run(&["--reports", good.to_str().unwrap(), "--bogus"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--bogus"), "{err}");

    let (code, err, _) = run(&["--reports", good.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("run good is given twice"), "{err}");

    // A failed run is no error; a missing history is the first night; a directory of
    // downloaded artifacts is every run in it; the summary is appended as Markdown.
    std::fs::remove_file(&history).unwrap();
    let artifacts = tmp.path().join("artifacts");
    relabel("green", &artifacts, "a1", "1.30.5", "2026-11-30T02:00:00Z");
    relabel("failed", &artifacts, "a2", "1.31.1", "2026-11-30T02:00:00Z");
    let summary = tmp.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let (code, err, stdout) = run(&[
        "--reports",
        artifacts.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--summary-md",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("2 run(s)"), "{stdout}");
    assert!(stdout.contains(&out.join("index.html").display().to_string()));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("earlier step\n"));
    let c08 = md.lines().find(|l| l.starts_with("| **C08**")).unwrap();
    let cells: Vec<&str> = c08.split(" | ").collect();
    // 1.31 before 1.30, whatever order the artifacts came in.
    assert!(cells[1].contains("failed (claim failure)"), "{c08}");
    assert!(cells[2].contains("passed-with-deviation"), "{c08}");
    assert!(out.join("history.json").is_file());
}

/// How a run ended early, for [`early_run`].
enum Early<'a> {
    /// Its provisioning failed with this cause: no scenario ran.
    ProvisioningFailed(&'a str),
    /// Stopped by a signal (`stopped by SIGINT`) after its first scenarios.
    Stopped(&'a str),
    /// Killed outright after its first scenarios: run.json still says in progress.
    Killed,
}

/// A run's report directory as the suite's own writer (`report::Progress`, which the runner
/// drives) leaves it when the run ends early: no cucumber.json (the suite writes that at the
/// end: a killed or unprovisioned run has none; a stopped one is shown here without it, from
/// run.json alone), the first `passed` scenarios of the features passed, then `how`. The run's
/// other details are the green fixture's.
fn early_run(
    dest: &Path,
    id: &str,
    istio: &str,
    started_at: &str,
    passed: usize,
    how: Early,
) -> PathBuf {
    use happy_istio::report::{self, Progress, ScenarioOutcome, ScenarioRecord};
    let dir = dest.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let green: report::RunInfo = serde_json::from_str(
        &std::fs::read_to_string(docs_fixtures().join("green/run.json")).unwrap(),
    )
    .unwrap();
    let mut info = report::RunInfo {
        run_id: id.into(),
        istio_version: istio.into(),
        started_at: started_at.into(),
        deviations: green.deviations,
        commit: green.commit,
        ..report::RunInfo::default()
    };
    if let Early::ProvisioningFailed(_) = how {
        info.cluster_kind = "kind".into();
    } else {
        info.cluster_kind = green.cluster_kind;
        info.cluster_name = green.cluster_name;
        info.kubernetes_version = green.kubernetes_version;
        info.note = green.note;
    }
    let names: Vec<String> = docs::features::load_dir(&docs::default_features_dir())
        .unwrap()
        .into_iter()
        .flat_map(|c| {
            let title = c.title.clone();
            c.scenarios
                .into_iter()
                .map(move |s| format!("{title} — {}", s.name))
        })
        .collect();
    let mut progress = Progress::start(&dir, info, names.clone()).unwrap();
    for name in &names[..passed] {
        progress
            .scenario_finished(ScenarioRecord {
                name: name.clone(),
                outcome: ScenarioOutcome::Passed,
            })
            .unwrap();
    }
    match how {
        Early::ProvisioningFailed(cause) => {
            progress.provisioning_failed(cause).unwrap();
        }
        Early::Stopped(signal) => {
            let records = progress.finished().to_vec();
            let (info, summary) = progress.end(
                Some(format!("stopped by {signal}")),
                &records,
                &format!("not run: the run was stopped by {signal}"),
            );
            report::write_run_file(&dir, &info, summary, None).unwrap();
        }
        Early::Killed => {}
    }
    dir
}

/// A run that could not be provisioned, one stopped by a signal and one killed outright each
/// keep their column, say how they ended, and reach the history: never a gap.
#[test]
fn runs_that_ended_early_keep_their_column_and_say_how_they_ended() {
    let _processes = crate::processes::shared();
    let tmp = tempfile::tempdir().unwrap();
    let cause = "preflight found 1 problem (HAPPY_PREFLIGHT=strict stops the run):\n  \
                 PROBLEM container engine: no Docker daemon answers";
    let runs = vec![
        early_run(
            tmp.path(),
            "prov",
            "1.30.5",
            "2026-12-09T03:17:00Z",
            0,
            Early::ProvisioningFailed(cause),
        ),
        early_run(
            tmp.path(),
            "stop",
            "1.31.1",
            "2026-12-09T03:17:00Z",
            2,
            Early::Stopped("SIGINT"),
        ),
        early_run(
            tmp.path(),
            "kill",
            "1.29.8",
            "2026-12-09T03:17:00Z",
            2,
            Early::Killed,
        ),
    ];
    let out = tmp.path().join("site");
    let summary = tmp.path().join("summary.md");
    let history = tmp.path().join("previous-history.json");
    let mut options = Options::for_reports(runs);
    options.out = Some(out.clone());
    options.summary_md = Some(summary.clone());
    options.history = Some(history);
    let built = docs::build(&options).unwrap();
    assert_eq!(built.runs, 3);
    let doc = page(&built.index);

    let ended = |run: &str| -> (String, String) {
        let span = doc
            .select(&sel(&format!("table#matrix th#run-{run} span.ended")))
            .next()
            .unwrap_or_else(|| panic!("the column of {run} says how it ended"));
        (
            span.value().attr("data-state").unwrap().to_string(),
            text(span),
        )
    };
    // Provisioning failed: a column that says it failed, why, and whose failure it was.
    let (state, words) = ended("prov");
    assert_eq!(state, "provisioning-failed");
    assert_eq!(
        words,
        "failed (environment failure): provisioning failed: preflight found 1 problem \
         (HAPPY_PREFLIGHT=strict stops the run):"
    );
    let claims = claims();
    for claim in &claims {
        let c = cell(&doc, claim, "prov");
        assert_eq!(c.value().attr("data-status"), Some("failed"), "{claim}");
        assert!(
            text(c).starts_with("failed (environment failure"),
            "{claim}: {}",
            text(c)
        );
    }
    let rests = doc.select(&sel("article.run#rests-prov")).next().unwrap();
    let verdict = rests.select(&sel("pre.failure")).next().unwrap();
    assert_eq!(verdict.value().attr("data-class"), Some("environment"));
    assert!(
        text(verdict).contains("no Docker daemon answers"),
        "the whole cause"
    );
    assert!(
        text(rests).contains("Kubernetes unknown"),
        "{}",
        text(rests)
    );
    let chapter = page(&out.join("chapters/01-deploy.html"));
    let failure = chapter
        .select(&sel("section#C01 li.result[data-run=\"prov\"] pre.failure"))
        .next()
        .expect("the chapter page shows the environment's failure");
    assert!(
        text(failure).starts_with("environment failed: provisioning failed: preflight"),
        "{}",
        text(failure)
    );

    // Stopped: the scenarios that finished keep their verdicts, the rest say why they did not
    // run.
    let (state, words) = ended("stop");
    assert_eq!(
        (state.as_str(), words.as_str()),
        ("stopped", "stopped by SIGINT")
    );
    assert_eq!(
        cell(&doc, "C01", "stop").value().attr("data-status"),
        Some("passed")
    );
    let later = cell(&doc, "C08", "stop");
    assert_eq!(later.value().attr("data-status"), Some("skipped"));
    assert!(
        text(later).contains("not run: the run was stopped by SIGINT"),
        "{}",
        text(later)
    );

    // Killed outright: run.json still said in progress; the run did not finish.
    let (state, words) = ended("kill");
    assert_eq!(state, "did-not-finish");
    assert!(words.starts_with("did not finish"), "{words}");
    assert!(words.contains("2 of "), "{words}");
    assert_eq!(
        cell(&doc, "C01", "kill").value().attr("data-status"),
        Some("passed")
    );
    let later = cell(&doc, "C08", "kill");
    assert!(
        text(later).contains("not run: the run did not finish"),
        "{}",
        text(later)
    );
    let glance = text(
        doc.select(&sel("ul.glance li[data-run=\"kill\"]"))
            .next()
            .unwrap(),
    );
    assert!(glance.contains("did not finish"), "{glance}");

    // The history has every run, each claim with a verdict: no gap on any line.
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&built.history).unwrap()).unwrap();
    let runs = stored["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert_eq!(
            run["claims"].as_object().unwrap().len(),
            claims.len(),
            "{}",
            run["run_id"]
        );
        assert!(run["ended"].is_string(), "{run}");
    }
    let prov = runs.iter().find(|r| r["run_id"] == "prov").unwrap();
    assert_eq!(prov["line"], "1.30");
    assert!(
        prov["claims"]
            .as_object()
            .unwrap()
            .values()
            .all(|c| c["status"] == "failed")
    );
    for line in ["1.31", "1.30", "1.29"] {
        let strip: Vec<&str> = doc
            .select(&sel(&format!(
                "table.history[data-line=\"{line}\"] tr[data-claim=\"C01\"] td.strip"
            )))
            .map(|td| td.value().attr("data-status").unwrap())
            .collect();
        assert_eq!(strip.len(), 1, "{line}: {strip:?}");
        assert_ne!(strip[0], "none", "{line}: no gap");
    }

    // The job summary says the same.
    let md = std::fs::read_to_string(&summary).unwrap();
    let head = md.lines().find(|l| l.starts_with("| Claim |")).unwrap();
    assert!(
        head.contains("**failed (environment failure): provisioning failed: preflight"),
        "{head}"
    );
    assert!(head.contains("**stopped by SIGINT**"), "{head}");
    assert!(head.contains("**did not finish"), "{head}");
}

/// The evidence of a recorded sandbox run on the claims' pages, beside the workshop's sample;
/// and the same run relabelled as another Istio line with C06's pod table changed in shape (a
/// container count, as a native sidecar would show), which the matrix flags on both runs and
/// the claim's page shows side by side. C01's evidence is the same on both: not flagged.
#[test]
fn evidence_beside_the_workshops_sample_and_differences_across_versions() {
    let _processes = crate::processes::shared();
    let tmp = tempfile::tempdir().unwrap();
    let older = relabel(
        "evidence",
        tmp.path(),
        "run-1-30",
        "1.30.4",
        "2026-12-06T01:00:00Z",
    );
    let newer = relabel(
        "evidence",
        tmp.path(),
        "run-1-31",
        "1.31.1",
        "2026-12-06T02:00:00Z",
    );
    // The newer line's C06 pods show 3 containers: another shape.
    let path = newer.join("run.json");
    let recorded = std::fs::read_to_string(&path).unwrap();
    let changed = recorded.replace("2/2     Running", "3/3     Running");
    assert_ne!(
        changed, recorded,
        "the fixture's pod tables show 2/2 Running"
    );
    std::fs::write(&path, changed).unwrap();
    let out = tmp.path().join("site");
    build(vec![older, newer], &out, None);

    let index = page(&out.join("index.html"));
    for run in ["run-1-30", "run-1-31"] {
        let c06 = cell(&index, "C06", run);
        assert!(
            c06.select(&sel("[data-evidence-differs]")).next().is_some(),
            "C06 on {run} is not flagged: {}",
            text(c06)
        );
        let c01 = cell(&index, "C01", run);
        assert!(
            c01.select(&sel("[data-evidence-differs]")).next().is_none(),
            "C01 on {run} is flagged although its evidence has one shape: {}",
            text(c01)
        );
    }

    let install = page(&out.join("chapters/02-install-and-injection.html"));
    let c06 = install
        .select(&sel("section#C06"))
        .next()
        .expect("C06's section");
    let lines: Vec<&str> = c06
        .select(&sel("figure.evidence"))
        .filter_map(|f| f.value().attr("data-line"))
        .collect();
    assert_eq!(
        lines,
        ["1.31", "1.30"],
        "each line's evidence, newest first"
    );
    assert!(text(c06).contains("3/3") && text(c06).contains("2/2"));
    assert!(c06.select(&sel("p.differs-note")).next().is_some());

    let deploy = page(&out.join("chapters/01-deploy.html"));
    let c01 = deploy
        .select(&sel("section#C01"))
        .next()
        .expect("C01's section");
    let sample = c01
        .select(&sel("figure.sample pre"))
        .next()
        .map(text)
        .expect("the workshop's sample");
    assert_eq!(sample, "HTTP/1.1 200 OK\nHTTP/1.1 200 OK\nHTTP/1.1 200 OK");
    let evidence = c01
        .select(&sel("figure.evidence"))
        .map(text)
        .collect::<Vec<_>>()
        .join("\n");
    for shown in [
        "HTTP/1.1 200 OK",
        "\"name\": \"service-a\"",
        "http://service-c 200",
    ] {
        assert!(
            evidence.contains(shown),
            "C01's evidence lacks {shown:?}:\n{evidence}"
        );
    }
    // The Background's evidence (the same in every scenario) is not repeated.
    assert!(!evidence.contains("no sidecars are injected"), "{evidence}");
    // The workshop's own text comes first, in its order, and every section is on some page.
    let sections: Vec<String> = deploy
        .select(&sel("section.workshop-section h2"))
        .map(text)
        .collect();
    assert_eq!(
        sections[..3],
        [
            "Download kubectl",
            "Set up a kubernetes cluster",
            "Deploy workloads"
        ]
    );
    // Manifests, collapsed, with their YAML.
    let manifests = c01
        .select(&sel("details.manifests"))
        .next()
        .expect("the manifests");
    assert!(
        text(manifests).contains("services-a.yaml") && text(manifests).contains("kind: Deployment")
    );
    // D-istio-version is said once, in the column headings, not as every cell's deviation.
    let heading = index
        .select(&sel(
            "#matrix thead .run-deviation[data-deviation=\"D-istio-version\"]",
        ))
        .count();
    assert_eq!(heading, 2, "one per run's column");
    assert!(!text(cell(&index, "C06", "run-1-30")).contains("D-istio-version"));

    // Where a deviation applies, what to type today instead.
    let ingress = page(&out.join("chapters/03-ingress.html"));
    let today = ingress
        .select(&sel(
            "section#C08 .deviation[data-deviation=\"D-ingress-address\"] pre.today",
        ))
        .next()
        .map(text)
        .expect("C08's deviation says what to type today");
    assert!(
        today.contains("kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80"),
        "{today}"
    );

    // Self-contained: nothing a page loads comes from elsewhere (no script at all, no remote
    // style, font, image or frame), and the stylesheet fetches nothing.
    let mut pages = vec![out.join("index.html")];
    for entry in std::fs::read_dir(out.join("chapters")).unwrap() {
        pages.push(entry.unwrap().path());
    }
    for path in &pages {
        let doc = page(path);
        let loaded: Vec<String> = doc
            .select(&sel("script, iframe, object, embed, link, img, source"))
            .filter(|e| {
                let v = e.value();
                v.name() != "link"
                    || v.attr("href")
                        != Some(if path.ends_with("index.html") {
                            "style.css"
                        } else {
                            "../style.css"
                        })
            })
            .map(|e| e.html())
            .collect();
        assert!(loaded.is_empty(), "{} loads {loaded:?}", path.display());
    }
    let css = std::fs::read_to_string(out.join("style.css")).unwrap();
    for fetch in ["@import", "url(", "http:", "https:"] {
        assert!(!css.contains(fetch), "style.css fetches something: {fetch}");
    }
}
