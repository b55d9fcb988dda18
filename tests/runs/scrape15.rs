//! The Prometheus-based claim C13 at the real addon's timing. The sandbox's Prometheus scrapes
//! every second by default (fast runs); the addon Istio ships scrapes every 15 s (istio/istio
//! `samples/addons/prometheus.yaml`, 1.28–1.31: `scrape_interval: 15s`). This target runs the
//! C13 Prometheus scenario on the sandbox with `HAPPY_SANDBOX_SCRAPE_INTERVAL=15s`, so the
//! suite's polling (wait until Prometheus has scraped the scenario's requests, judge their
//! growth) is exercised as a real cluster would time it. It takes about a minute.
//!
//! Like the negative tests, the suite runs in a child process of the `runs`
//! binary (marked by `HAPPY_SCRAPE15_CHILD`), exactly as `cargo test --test happy` runs it.

use std::process::{Command, ExitCode};
use std::time::Instant;

use happy_istio::report::Summary;
use happy_sandbox::mesh::prometheus::{ADDON_SCRAPE_INTERVAL, SCRAPE_INTERVAL_ENV};

pub const CHILD_VAR: &str = "HAPPY_SCRAPE15_CHILD";
/// The scenario: C13's Prometheus check (its Grafana sibling needs Grafana, absent here).
const TAGS: &str = "@C13 and @prometheus";

/// Runs C13 at the addon's scrape interval; `filter` is ignored (one case).
pub fn main(_filter: &[String]) -> ExitCode {
    match parent() {
        Ok(verdict) => {
            println!("ok   {verdict}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL C13 at a 15 s scrape interval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parent() -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let interval = format!("{}s", ADDON_SCRAPE_INTERVAL.as_secs());
    let started = Instant::now();
    let out = Command::new(exe)
        .args(["--tags", TAGS])
        .env(CHILD_VAR, "1")
        .env("HAPPY_CLUSTER", "sandbox")
        // The child's reports are read by this test, not by a person: no page.
        .env("HAPPY_DOCS", "off")
        .env(SCRAPE_INTERVAL_ENV, &interval)
        .env("HAPPY_REPORT_DIR", dir.path().join("report"))
        .output()
        .map_err(|e| format!("cannot run the suite: {e}"))?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find_map(Summary::parse_line)
        .ok_or_else(|| format!("the run printed no summary line\n{stdout}\n{stderr}"))?;
    if summary.failed != 0 || summary.skipped != 0 || summary.passed != 1 {
        return Err(format!(
            "{TAGS} with {SCRAPE_INTERVAL_ENV}={interval}: {summary}\n{stdout}\n{stderr}"
        ));
    }
    Ok(format!(
        "{TAGS} passed with Prometheus scraping every {interval} ({summary}, {:.0} s)",
        took.as_secs_f64()
    ))
}
