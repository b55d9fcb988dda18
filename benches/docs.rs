//! Benchmark of the living documentation: a year of nightly history (366 nights) for four
//! version lines and every claim of the features (24), plus tonight's four runs (the fixture
//! reports of tests/fixtures/docs/, relabelled; three of them the `evidence` run, whose claims'
//! pages carry each step's evidence side by side), built with `happy_istio::docs::build`.
//! Prints the build time (best and median of several builds) and the sizes of index.html and
//! history.json against the budget: under a second, index.html under 1 MB.
//!
//! `cargo bench --bench docs` (plain std::time; not a timed test: nothing here fails on speed).
//! `cargo bench --bench docs --profile dev` measures the unoptimised build, an upper bound,
//! without building the whole tree in release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use happy_istio::docs::history::{History, HistoryCell, HistoryRun};
use happy_istio::docs::matrix::Status;
use happy_istio::docs::{self, Options};

const NIGHTS: i64 = 366;
const BUILDS: usize = 7;
const LINES: [(&str, &str); 4] = [
    (
        "dev",
        "1.32.0-alpha.0123456789abcdef0123456789abcdef01234567",
    ),
    ("1.31", "1.31.1"),
    ("1.30", "1.30.5"),
    ("1.29", "1.29.8"),
];

fn claims() -> Vec<String> {
    let mut out = Vec::new();
    for chapter in docs::features::load_dir(&docs::default_features_dir()).expect("features") {
        for s in chapter.scenarios {
            if !out.contains(&s.claim) {
                out.push(s.claim);
            }
        }
    }
    out
}

/// A year of history: every line every night, with a few failures and skips so the strips
/// and failing-since columns have work to do.
fn year(claims: &[String], tonight: jiff::civil::Date) -> History {
    let mut history = History::default();
    let mut runs = Vec::new();
    for back in 1..NIGHTS {
        let night = tonight
            .checked_sub(jiff::Span::new().days(back))
            .expect("a date");
        for (li, (line, version)) in LINES.iter().enumerate() {
            let claims: BTreeMap<String, HistoryCell> = claims
                .iter()
                .enumerate()
                .map(|(ci, c)| {
                    let status = match (back as usize * 7 + ci * 3 + li) % 29 {
                        0 => Status::Failed,
                        1 | 2 => Status::Skipped,
                        3..=12 => Status::PassedWithDeviation,
                        _ => Status::Passed,
                    };
                    let reason = match status {
                        Status::Skipped => Some("@kiali: Kiali does not run here".to_string()),
                        Status::Failed => Some("the claim failed".to_string()),
                        _ => None,
                    };
                    (c.clone(), HistoryCell { status, reason })
                })
                .collect();
            runs.push(HistoryRun {
                run_id: format!("{night}-{line}"),
                night: night.to_string(),
                started_at: format!("{night}T02:00:00Z"),
                istio_version: version.to_string(),
                line: line.to_string(),
                cluster_kind: "kind".into(),
                kubernetes_version: "v1.33.1".into(),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                ended: None,
                claims,
            });
        }
    }
    history.merge(runs);
    history
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Tonight's run of each line: the recorded fixture runs, relabelled.
fn tonight_runs(dir: &Path, tonight: jiff::civil::Date) -> Vec<PathBuf> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs");
    LINES
        .iter()
        .zip(["evidence", "failed", "evidence", "evidence"])
        .map(|((line, version), fixture)| {
            let run = dir.join(format!("tonight-{line}"));
            copy_dir(&fixtures.join(fixture), &run);
            let path = run.join("run.json");
            let mut json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("run.json"))
                    .expect("json");
            json["run_id"] = format!("{tonight}-{line}").into();
            json["istio_version"] = (*version).into();
            json["started_at"] = format!("{tonight}T02:00:00Z").into();
            std::fs::write(&path, json.to_string()).expect("write run.json");
            run
        })
        .collect()
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("happy-docs-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let tonight: jiff::civil::Date = "2026-12-01".parse().expect("date");
    let claims = claims();
    let history = year(&claims, tonight);
    let history_path = tmp.join("previous-history.json");
    std::fs::write(&history_path, history.to_json().expect("encode")).expect("write history");
    let reports = tonight_runs(&tmp, tonight);

    let mut options = Options::for_reports(reports);
    options.history = Some(history_path);
    options.out = Some(tmp.join("site"));
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..BUILDS {
        let start = Instant::now();
        docs::build(&options).expect("the site builds");
        times.push(start.elapsed());
    }
    times.sort();

    // Where the time goes: the same steps as `docs::build`, one by one.
    let mut phases: Vec<String> = Vec::new();
    let mut phase = |name: &str, start: Instant| {
        phases.push(format!(
            "    {name:<34} {:>7.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        ));
        Instant::now()
    };
    let t = Instant::now();
    let runs: Vec<docs::model::Run> = options
        .reports
        .iter()
        .flat_map(|d| docs::model::load_reports(d).expect("reports"))
        .collect();
    let t = phase("read 4 runs' reports", t);
    let chapters = docs::features::load_dir(&options.features).expect("features");
    let t = phase("read the feature files", t);
    let matrix = docs::matrix::Matrix::new(&chapters, &runs);
    let t = phase("the matrix", t);
    let mut merged = History::load(options.history.as_deref().expect("history"))
        .expect("history")
        .expect("a history");
    let t = phase("read history.json (366 nights)", t);
    merged.merge(matrix.history_runs());
    merged.bound(options.days);
    let t = phase("merge and bound", t);
    docs::render::write_site(
        &tmp.join("site-phases"),
        &chapters,
        &runs,
        &matrix,
        &merged,
        options.strip_nights,
    )
    .expect("render");
    phase("render and write the site", t);

    let site = tmp.join("site");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let index = size(&site.join("index.html"));
    let history_json = size(&site.join("history.json"));
    let chapters: u64 = std::fs::read_dir(site.join("chapters"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| size(&e.path())).sum())
        .unwrap_or(0);
    let stored: History =
        History::parse(&std::fs::read_to_string(site.join("history.json")).expect("history"))
            .expect("parse");
    println!(
        "happy-docs bench: {} version lines x {} nights x {} claims ({} runs in history.json)",
        LINES.len(),
        NIGHTS,
        claims.len(),
        stored.runs.len()
    );
    println!(
        "  build (read 4 runs + 366-night history, merge, bound, render): best {:.1} ms, median {:.1} ms of {BUILDS} (budget 1000 ms: {})",
        times[0].as_secs_f64() * 1e3,
        times[BUILDS / 2].as_secs_f64() * 1e3,
        if times[BUILDS / 2] < Duration::from_secs(1) {
            "within"
        } else {
            "OVER"
        }
    );
    println!(
        "  index.html {:.1} KiB (budget 1 MiB: {}), history.json {:.1} KiB, chapters {:.1} KiB",
        index as f64 / 1024.0,
        if index < 1024 * 1024 {
            "within"
        } else {
            "OVER"
        },
        history_json as f64 / 1024.0,
        chapters as f64 / 1024.0
    );
    println!("  one build, step by step:");
    for line in &phases {
        println!("{line}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
