//! A broken run fails fast with its cause (issue 11): the full suite on the sandbox, once with
//! one broken image in a copy of `services-b.yaml` (through `HAPPY_MANIFESTS`) and once with
//! `HAPPY_ENVOY=/bin/false`, must print as its first failure the cluster's reason — the image
//! that cannot be pulled, the proxy container that exited — classified as the environment
//! failing, long before the rollout limit a run without fail-fast would wait out.
//!
//! The wait for that first failure is bounded by the timeout table's `rollout` entry (what a
//! run that does not fail fast would wait before its first failure), not by a timed assertion;
//! once seen, the run is interrupted (SIGINT, as Ctrl-C) and must end within `delete`.
//!
//! Faults on purpose (`HAPPY_SANDBOX_FAULTS`, issue 16) on the workshop's image, with the
//! scenario that deploys the workshop (`--tags @C01`) run to its end: a Docker Hub rate limit
//! on its first two pulls is waited out (the kubelet's back-off) and the run passes, its
//! `run.json` counting the failed and retried pulls; an image that is not found fails the
//! scenario as the environment failing, naming the image, within [`NOT_FOUND_BOUND`]; and the
//! workshop's legacy image gone from Docker Hub turns the `D-legacy-image` re-check into
//! "still needed, for a different reason".
//!
//! Istio's hub unreachable (`pull:docker.io/istio/*=unreachable`): the install is tried once —
//! the hub named in one install line — and every selected Istio scenario fails as the
//! environment failing within [`ISTIO_HUB_BOUND`] in all, each recorded in `run.json` (the
//! first with the cluster's words and the hub, the others with "Istio install failed earlier
//! in this run").
//!
//! Like the negative tests, this group runs the suite as child processes of the `runs`
//! binary (marked by `HAPPY_FAILFAST_CHILD`) that runs the suite as `cargo test --test
//! happy` does.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use happy_istio::timeouts::Timeouts;

pub(crate) const CHILD_VAR: &str = "HAPPY_FAILFAST_CHILD";

/// One case: runs the suite, returns its first failure or why the case fails.
type Case = fn(&Timeouts) -> Result<String, String>;

/// The workshop's image for service-b, and the typo that breaks it.
const IMAGE: &str = "rinormaloku/happy-service:latest";
const BROKEN_IMAGE: &str = "rinormaloku/happy-servise:latest";

/// Runs the cases whose names contain one of `filter` (all when it is empty).
pub(crate) fn main(filter: &[String]) -> ExitCode {
    let timeouts = match Timeouts::from_env() {
        Ok(t) => t,
        Err(e) => {
            println!("FAIL: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cases: [(&str, Case); 6] = [
        ("broken image in services-b.yaml", broken_image),
        ("HAPPY_ENVOY=/bin/false", envoy_false),
        (
            "pull fault ratelimit:2 on the workload image",
            rate_limited_pulls,
        ),
        ("pull fault notfound on the workload image", image_not_found),
        (
            "pull fault notfound on the workshop's legacy image",
            legacy_image_gone,
        ),
        (
            "pull fault unreachable on Istio's hub",
            istio_hub_unreachable,
        ),
    ];
    // The cases are independent runs (each its own sandbox, manifests and reports), so they
    // run at once: the group takes as long as its slowest case, not the sum.
    let failures = std::thread::scope(|scope| {
        let running: Vec<_> = cases
            .into_iter()
            .filter(|(name, _)| {
                filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
            })
            .map(|(name, case)| {
                println!("{name} …");
                let timeouts = &timeouts;
                scope.spawn(move || {
                    let t = Instant::now();
                    match case(timeouts) {
                        Ok(first) => {
                            println!(
                                "ok   {name} in {:.1}s; first failure: {first}",
                                t.elapsed().as_secs_f64()
                            );
                            false
                        }
                        Err(e) => {
                            println!("FAIL {name} after {:.1}s: {e}", t.elapsed().as_secs_f64());
                            true
                        }
                    }
                })
            })
            .collect();
        running
            .into_iter()
            .map(|case| case.join().unwrap_or(true))
            .filter(|failed| *failed)
            .count()
    });
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Copy the workshop's manifests into `dir`, replacing `from` by `to` in `file`.
fn copy_manifests(dir: &Path, file: &str, from: &str, to: &str) -> Result<(), String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let entries =
        std::fs::read_dir(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mut text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if name == file {
            if text.matches(from).count() != 1 {
                return Err(format!("{file} must contain {from:?} exactly once"));
            }
            text = text.replace(from, to);
        }
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The child's stdout and stderr, line by line on one channel; the reader threads end with
/// the child's pipes.
fn read_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel::<String>();
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Run the whole suite on the sandbox with `env`, until the first failed step's message
/// (a line with the `claim failed: ` / `environment failed: ` prefix); then interrupt it.
/// Returns that line and everything printed up to it.
fn first_failure(
    timeouts: &Timeouts,
    manifests: &Path,
    env: &[(&str, &str)],
) -> Result<(String, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_VAR, "1")
        .env("HAPPY_CLUSTER", "sandbox")
        // The child's reports are read by this test, not by a person: no page.
        .env("HAPPY_DOCS", "off")
        .env("HAPPY_MANIFESTS", manifests)
        .env("HAPPY_REPORT_DIR", manifests.join("report"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the suite: {e}"))?;
    let rx = read_lines(&mut child);
    let deadline = Instant::now() + timeouts.rollout;
    let mut seen = String::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("claim failed: ") || line.contains("environment failed: ") {
                    break Some(line);
                }
            }
            Err(_) => break None,
        }
    };
    // Interrupt as Ctrl-C does, and let it tear down (bounded by `delete`), else kill it.
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let stop_deadline = Instant::now() + timeouts.delete;
    let mut stopped = false;
    while Instant::now() < stop_deadline {
        if let Ok(Some(_)) = child.try_wait() {
            stopped = true;
            break;
        }
        // Drain output meanwhile so the child never blocks on a full pipe.
        let _ = rx.recv_timeout(timeouts.poll_interval);
    }
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    match found {
        Some(line) => Ok((line.trim().to_string(), seen)),
        None => Err(format!(
            "no failed step within the rollout limit of {:?}: the run did not fail fast\n{seen}",
            timeouts.rollout
        )),
    }
}

fn broken_image(timeouts: &Timeouts) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(dir.path(), "services-b.yaml", IMAGE, BROKEN_IMAGE)?;
    let (first, output) = first_failure(timeouts, dir.path(), &[])?;
    let failure = &first[first.find("environment failed: ").ok_or_else(|| {
        format!("the first failure is not classified as the environment failing: {first}\n{output}")
    })?..];
    for part in [BROKEN_IMAGE, "service-b", "ErrImagePull"] {
        if !failure.contains(part) {
            return Err(format!(
                "the first failure does not name {part:?}: {failure}\n{output}"
            ));
        }
    }
    Ok(failure.to_string())
}

fn envoy_false(timeouts: &Timeouts) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(dir.path(), "services-b.yaml", IMAGE, IMAGE)?;
    let (first, output) = first_failure(timeouts, dir.path(), &[("HAPPY_ENVOY", "/bin/false")])?;
    let failure = &first[first.find("environment failed: ").ok_or_else(|| {
        format!("the first failure is not classified as the environment failing: {first}\n{output}")
    })?..];
    for part in ["istio-proxy", "exited", "HAPPY_ENVOY=/bin/false"] {
        if !failure.contains(part) {
            return Err(format!(
                "the first failure does not name {part:?}: {failure}\n{output}"
            ));
        }
    }
    Ok(failure.to_string())
}

/// The bound on a scenario whose image is not found: it fails within 60 s.
const NOT_FOUND_BOUND: Duration = Duration::from_secs(60);

/// The workload image as containerd names it, which the fault rules match.
const QUALIFIED_IMAGE: &str = "docker.io/rinormaloku/happy-service:latest";

/// What a child run to its end left.
struct Finished {
    /// Its `run.json`.
    run: serde_json::Value,
    /// Its `cucumber.json`, if it wrote one.
    cucumber: Option<serde_json::Value>,
    /// Everything it printed.
    output: String,
}

/// Run the suite on the sandbox with `env` and `args` to its end, bounded by `rollout` plus
/// `delete` (what one scenario may wait, then the teardown); read its reports.
fn run_to_end(
    timeouts: &Timeouts,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Finished, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(dir.path(), "services-b.yaml", IMAGE, IMAGE)?;
    let report = dir.path().join("report");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(CHILD_VAR, "1")
        .env("HAPPY_CLUSTER", "sandbox")
        .env("HAPPY_DOCS", "off")
        .env("HAPPY_MANIFESTS", dir.path())
        .env("HAPPY_REPORT_DIR", &report)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the suite: {e}"))?;
    let rx = read_lines(&mut child);
    let limit = timeouts.rollout + timeouts.delete;
    let deadline = Instant::now() + limit;
    let mut output = String::new();
    let ended = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        if let Ok(line) = rx.recv_timeout(timeouts.poll_interval) {
            output.push_str(&line);
            output.push('\n');
        }
    };
    // The rest of its output (the readers end with the child's pipes).
    while let Ok(line) = rx.recv_timeout(timeouts.poll_interval) {
        output.push_str(&line);
        output.push('\n');
    }
    if ended.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the run did not end within {limit:?}\n{output}"));
    }
    let read = |name: &str| -> Result<serde_json::Value, String> {
        let path = report.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}\n{output}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} does not parse: {e}", path.display()))
    };
    Ok(Finished {
        run: read("run.json")?,
        cucumber: read("cucumber.json").ok(),
        output,
    })
}

/// How long the scenario tagged `tag` (`@C01`) ran, its background included, from
/// `cucumber.json` (cucumber-rs writes tag names without `@`, one element for the background
/// and one for the scenario, and each step's duration in ns).
fn scenario_time(cucumber: &serde_json::Value, tag: &str) -> Option<Duration> {
    let tag = tag.trim_start_matches('@');
    let elements: Vec<&serde_json::Value> = cucumber
        .as_array()?
        .iter()
        .flat_map(|f| f["elements"].as_array().into_iter().flatten())
        .filter(|e| {
            e["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["name"].as_str().map(|n| n.trim_start_matches('@')) == Some(tag))
        })
        .collect();
    if elements.is_empty() {
        return None;
    }
    let ns: u64 = elements
        .iter()
        .flat_map(|e| e["steps"].as_array().into_iter().flatten())
        .filter_map(|s| s["result"]["duration"].as_u64())
        .sum();
    Some(Duration::from_nanos(ns))
}

fn rate_limited_pulls(timeouts: &Timeouts) -> Result<String, String> {
    let rule = format!(
        "pull:{}=ratelimit:2",
        QUALIFIED_IMAGE.replace(":latest", ":*")
    );
    let done = run_to_end(
        timeouts,
        &["--tags", "@C01"],
        &[("HAPPY_SANDBOX_FAULTS", &rule)],
    )?;
    let (run, output) = (&done.run, &done.output);
    let summary = &run["summary"];
    if summary["passed"] != 1 || summary["failed"] != 0 {
        return Err(format!(
            "with {rule} the run must pass once the kubelet retried: summary {summary}, \
             failures {}\n{output}",
            run["failures"]
        ));
    }
    let docker = &run["pulls"]["docker.io"];
    let n = |k: &str| docker[k].as_u64().unwrap_or(0);
    // The rule fails exactly the first two pulls of the image, both retried; C01 starts three
    // pods of it, so at least 3 + 2 pulls.
    if n("failed") != 2 || n("transient") != 2 || n("pulls") < 5 {
        return Err(format!(
            "run.json must count 2 failed, retried pulls of docker.io among at least 5: {docker}\n{output}"
        ));
    }
    let errors = docker["errors"].to_string();
    if !errors.contains("429 Too Many Requests") {
        return Err(format!(
            "run.json's pull errors must show the 429: {errors}"
        ));
    }
    if !docker["images"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i == IMAGE)
    {
        return Err(format!("run.json's pulls must list {IMAGE}: {docker}"));
    }
    let line = output
        .lines()
        .find(|l| l.starts_with("registry pulls: "))
        .ok_or_else(|| format!("the run printed no \"registry pulls:\" line\n{output}"))?;
    if !line.contains("(2 failed, retried)") {
        return Err(format!("the pulls line must say 2 failed, retried: {line}"));
    }
    Ok(format!("passed; {line}"))
}

fn image_not_found(timeouts: &Timeouts) -> Result<String, String> {
    let rule = format!("pull:{QUALIFIED_IMAGE}=notfound");
    let done = run_to_end(
        timeouts,
        &["--tags", "@C01"],
        &[("HAPPY_SANDBOX_FAULTS", &rule)],
    )?;
    let (run, output) = (&done.run, &done.output);
    let failures = run["failures"].as_array().cloned().unwrap_or_default();
    let [failure] = failures.as_slice() else {
        return Err(format!(
            "with {rule} exactly one scenario must fail: {failures:?}\n{output}"
        ));
    };
    if failure["class"] != "environment" {
        return Err(format!(
            "the failure must be the environment's: {failure}\n{output}"
        ));
    }
    let message = failure["message"].as_str().unwrap_or_default();
    for part in [IMAGE, "ErrImagePull", "not found", "cannot be pulled"] {
        if !message.contains(part) {
            return Err(format!("the failure does not name {part:?}: {message}"));
        }
    }
    let took = done
        .cucumber
        .as_ref()
        .and_then(|c| scenario_time(c, "@C01"))
        .ok_or_else(|| format!("cucumber.json has no @C01 scenario\n{output}"))?;
    if took > NOT_FOUND_BOUND {
        return Err(format!(
            "the scenario failed after {took:?}, past the bound of {NOT_FOUND_BOUND:?}: {message}"
        ));
    }
    Ok(format!(
        "failed in {:.1}s (bound {NOT_FOUND_BOUND:?}): {}",
        took.as_secs_f64(),
        message.lines().next().unwrap_or_default()
    ))
}

fn legacy_image_gone(timeouts: &Timeouts) -> Result<String, String> {
    let rule = "pull:docker.io/radial/busyboxplus:curl=notfound";
    let done = run_to_end(
        timeouts,
        &["--tags", "@deviation and @D-legacy-image"],
        &[("HAPPY_SANDBOX_FAULTS", rule)],
    )?;
    let (run, output) = (&done.run, &done.output);
    let failures = run["failures"].as_array().cloned().unwrap_or_default();
    let [failure] = failures.as_slice() else {
        return Err(format!(
            "with {rule} the re-check must fail once: {failures:?}\n{output}"
        ));
    };
    let message = failure["message"].as_str().unwrap_or_default();
    for part in [
        "D-legacy-image is still needed, for a different reason",
        "radial/busyboxplus:curl",
        "not found",
    ] {
        if !message.contains(part) {
            return Err(format!("the failure does not say {part:?}: {message}"));
        }
    }
    Ok(message.lines().next().unwrap_or_default().to_string())
}

/// The bound: with Istio's hub unreachable, every selected Istio scenario has failed
/// within 2 minutes in all.
const ISTIO_HUB_BOUND: Duration = Duration::from_secs(120);

/// How long the Istio scenarios ran in all, from `cucumber.json`: every element (Background
/// or Scenario) of a feature tagged `istio`, and the `istio`-tagged elements of other features.
fn istio_time(cucumber: &serde_json::Value) -> Duration {
    let tagged = |v: &serde_json::Value| {
        v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"].as_str().map(|n| n.trim_start_matches('@')) == Some("istio"))
    };
    let ns: u64 = cucumber
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| {
            let whole = tagged(f);
            f["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(move |e| whole || tagged(e))
        })
        .flat_map(|e| e["steps"].as_array().into_iter().flatten())
        .filter_map(|s| s["result"]["duration"].as_u64())
        .sum();
    Duration::from_nanos(ns)
}

fn istio_hub_unreachable(timeouts: &Timeouts) -> Result<String, String> {
    let rule = "pull:docker.io/istio/*=unreachable";
    // Every Istio scenario, and the deviation re-checks as a full run has them: the legacy
    // image's re-check does not use Istio, so the run does not stop early (a run of @istio
    // alone stops after the first failed "Given Istio is installed", every later scenario
    // sharing it, and records them as not run with that failure).
    let started = Instant::now();
    let done = run_to_end(
        timeouts,
        &["--tags", "@istio or @deviation"],
        // The default timeout table: an unreachable registry is a transient pull error (the
        // kubelet retries it), given up after the table's `pull_retry` (75 s), well inside the
        // install limit (10 min); one install fits the bound, a second would not.
        &[("HAPPY_SANDBOX_FAULTS", rule)],
    )?;
    let wall = started.elapsed();
    let (run, output) = (&done.run, &done.output);
    let installs: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("installing the sandbox's Istio"))
        .collect();
    let [install] = installs.as_slice() else {
        return Err(format!(
            "Istio must be installed once, not once per scenario: {installs:?}\n{output}"
        ));
    };
    if !install.contains("images from docker.io/istio") {
        return Err(format!("the install line must name the hub: {install}"));
    }
    if run["istio_hub"] != "docker.io/istio" {
        return Err(format!(
            "run.json must state the hub: istio_hub = {}",
            run["istio_hub"]
        ));
    }
    let summary = &run["summary"];
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    // The one scenario that does not need Istio passes; every other one failed or was
    // skipped for a capability the sandbox lacks (Grafana, Kiali); none waits unrun.
    if n("passed") != 1 || n("not_run") != 0 || n("failed") < 10 {
        return Err(format!(
            "every selected Istio scenario must fail (only the legacy image's re-check \
             passes, none is left unrun): summary {summary}\n{output}"
        ));
    }
    let failures = run["failures"].as_array().cloned().unwrap_or_default();
    if failures.len() as u64 != n("failed") {
        return Err(format!(
            "run.json must hold every failed scenario: {} of {}",
            failures.len(),
            n("failed")
        ));
    }
    for f in &failures {
        if f["class"] != "environment" {
            return Err(format!("a failure that is not the environment's: {f}"));
        }
    }
    let message = |f: &serde_json::Value| f["message"].as_str().unwrap_or_default().to_string();
    let first = message(&failures[0]);
    for part in [
        "docker.io/istio/pilot:",
        "connection refused",
        "Istio's images come from docker.io/istio",
        "HAPPY_TIMEOUT_PULL_RETRY",
    ] {
        if !first.contains(part) {
            return Err(format!("the first failure does not name {part:?}: {first}"));
        }
    }
    if first.contains("failed earlier in this run") {
        return Err(format!(
            "the first failure must be the install's own: {first}"
        ));
    }
    for f in &failures[1..] {
        if !message(f).contains("Istio install failed earlier in this run: ") {
            return Err(format!(
                "a later Istio scenario must fail with the first error, not install again: {f}"
            ));
        }
    }
    let retried = run["pulls"]["docker.io"]["transient"].as_u64().unwrap_or(0);
    if retried == 0 {
        return Err(format!(
            "run.json must count the retried pulls of docker.io: {}",
            run["pulls"]
        ));
    }
    let took = done
        .cucumber
        .as_ref()
        .map(istio_time)
        .ok_or_else(|| format!("the run wrote no cucumber.json\n{output}"))?;
    if took > ISTIO_HUB_BOUND {
        return Err(format!(
            "the Istio scenarios took {took:?} in all, past the bound of {ISTIO_HUB_BOUND:?}"
        ));
    }
    Ok(format!(
        "{} Istio scenarios failed in {:.1}s in all (bound {ISTIO_HUB_BOUND:?}; the run {:.1}s), \
         one install: {}",
        failures.len(),
        took.as_secs_f64(),
        wall.as_secs_f64(),
        first.lines().next().unwrap_or_default()
    ))
}
