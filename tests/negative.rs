//! The suite must be able to fail. Each case breaks one claim's manifest (or mechanism) in a
//! copy of the workshop's files and runs that claim's scenarios on the sandbox through
//! `HAPPY_MANIFESTS` — the override users have — expecting them to fail. The sandbox cases
//! instead break a premise of the suite in the sandbox itself through one of its test-only
//! knobs (e.g. the container runtime pulling the workshop's Docker schema-1 image), and
//! expect the scenario that re-checks that premise to fail. A control run of the
//! same scenarios on the unbroken copy must pass first, so a failure cannot come from the
//! harness or the sandbox. `cargo test --test negative -- C16` runs the cases naming C16.
//!
//! This target is its own runner: every run happens in a child process of this binary (marked
//! by `HAPPY_NEGATIVE_CHILD`) that runs the suite exactly as `cargo test --test happy` does,
//! with its own report directory.

#[path = "../steps/definitions/mod.rs"]
mod definitions;
#[path = "../steps/in_process.rs"]
mod in_process;
#[path = "../steps/runner.rs"]
mod runner;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use happy_istio::report::Summary;

const CHILD_VAR: &str = "HAPPY_NEGATIVE_CHILD";

/// One deliberate breakage: in `file`, `from` (which must occur) becomes `to`.
struct Breakage {
    claim: &'static str,
    what: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
}

const CASES: &[Breakage] = &[
    Breakage {
        claim: "C01",
        what: "service-a no longer calls service-c",
        file: "services-a.yaml",
        from: r#"value: "http://service-b,http://service-c""#,
        to: r#"value: "http://service-b""#,
    },
    Breakage {
        claim: "C02",
        // fake-service's UI_PATH (nicholasjackson/fake-service main.go, v0.26.x): the UI moves,
        // so /ui is answered by the request handler (JSON), not redirected to the page.
        what: "service-a serves its UI under /dashboard/, not /ui/",
        file: "services-a.yaml",
        from: "            - name: UPSTREAM_URIS\n",
        to: "            - name: UI_PATH\n              value: \"/dashboard/\"\n            - name: UPSTREAM_URIS\n",
    },
    Breakage {
        claim: "C03",
        what: "service-c v2 never fails",
        file: "services-c-v2.yaml",
        from: r#"value: "0.6""#,
        to: r#"value: "0""#,
    },
    Breakage {
        claim: "C08",
        what: "the gateway's VirtualService routes to service-b",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-b\n",
    },
    Breakage {
        claim: "C09",
        // /ui still answers 301 to /ui/, but the route sends /ui/ to service-a's JSON: only a
        // check of the page the redirect leads to (not of the first answer) sees it.
        what: "the gateway's route rewrites /ui/ to /, so the redirect leads to JSON",
        file: "service-a-route.yaml",
        from: "  http:\n    - route:\n",
        to: "  http:\n    - match:\n        - uri:\n            prefix: /ui/\n      rewrite:\n        uri: /\n      route:\n        - destination:\n            host: service-a\n    - route:\n",
    },
    Breakage {
        // C13's Prometheus scenario only: its Grafana sibling is skipped on the sandbox, and a
        // control run must not skip. (`claim` is used as the tag expression `@{claim}`.)
        claim: "C13 and @prometheus",
        what: "service-b fails every fifth request, so service-a's calls to it are not all 2xx",
        file: "services-b.yaml",
        from: "            - name: SERVICE_OWNER\n",
        to: "            - name: ERROR_RATE\n              value: \"0.2\"\n            - name: SERVICE_OWNER\n",
    },
    Breakage {
        claim: "C15",
        what: "the route sends service-c's traffic to v2",
        file: "service-c-route.yaml",
        from: "subset: version-v1",
        to: "subset: version-v2",
    },
    Breakage {
        claim: "C16",
        what: "the VirtualService has no mirror",
        file: "service-c-mirror.yaml",
        from: "      mirror:\n        host: service-c.istioinaction.svc.cluster.local\n        subset: version-v2\n      mirrorPercentage:\n        value: 100.0\n",
        to: "",
    },
    Breakage {
        claim: "C17",
        what: "a DestinationRule turns off TLS to service-c",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-a\n---\napiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata:\n  name: service-c-plaintext\nspec:\n  host: service-c.istioinaction.svc.cluster.local\n  trafficPolicy:\n    tls:\n      mode: DISABLE\n",
    },
    Breakage {
        claim: "C19",
        what: "PERMISSIVE instead of STRICT",
        file: "peer-auth-strict.yaml",
        from: "mode: STRICT",
        to: "mode: PERMISSIVE",
    },
    Breakage {
        claim: "C21",
        what: "service-c allows service-b instead of service-a",
        file: "service-a-to-c-auth-policy.yaml",
        from: "cluster.local/ns/istioinaction/sa/service-a",
        to: "cluster.local/ns/istioinaction/sa/service-b",
    },
];

/// One deliberate breakage of the sandbox: the deviation `tag`'s re-check scenario
/// (`@deviation and @<tag>`) runs with `env` set.
struct SandboxBreakage {
    tag: &'static str,
    what: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const SANDBOX_CASES: &[SandboxBreakage] = &[SandboxBreakage {
    tag: "D-legacy-image",
    what: "the runtime pulls the workshop's schema-1 image, so the deviation is not needed",
    // happy-sandbox's test-only knob (sandbox/src/runtime/pull.rs, PULL_SCHEMA1_VAR).
    env: &[("HAPPY_SANDBOX_PULL_SCHEMA1", "1")],
}];

fn main() -> ExitCode {
    if std::env::var_os(CHILD_VAR).is_some() {
        return child();
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let name = |case: &Breakage| format!("{} — {}", case.claim, case.what);
    let selected = |n: &str| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()));
    let cases: Vec<&Breakage> = CASES.iter().filter(|c| selected(&name(c))).collect();
    let sandbox_name = |case: &SandboxBreakage| format!("{} — {}", case.tag, case.what);
    let sandbox_cases: Vec<&SandboxBreakage> = SANDBOX_CASES
        .iter()
        .filter(|c| selected(&sandbox_name(c)))
        .collect();
    if cases.is_empty() && sandbox_cases.is_empty() {
        println!("negative tests: none selected");
        return ExitCode::SUCCESS;
    }
    // Progress per run (what starts, how long it took, how it ended): the whole list takes
    // minutes, and a silent terminal looks like a hang.
    let started = std::time::Instant::now();
    let total = cases.len() + sandbox_cases.len() + 1;
    let tags: Vec<String> = cases
        .iter()
        .map(|c| format!("@{}", c.claim))
        .chain(sandbox_cases.iter().map(|c| recheck_tags(c)))
        .collect();
    println!("[1/{total}] control run on the unbroken manifests …");
    let t = std::time::Instant::now();
    if let Err(e) = control(&tags) {
        println!(
            "FAIL control run after {:.1}s: {e}",
            t.elapsed().as_secs_f64()
        );
        return ExitCode::FAILURE;
    }
    println!("     control run took {:.1}s", t.elapsed().as_secs_f64());
    let mut failures = 0;
    for (i, case) in cases.iter().enumerate() {
        println!("[{}/{total}] {} …", i + 2, name(case));
        let t = std::time::Instant::now();
        let outcome = check(case);
        let took = t.elapsed().as_secs_f64();
        match outcome {
            Ok(verdict) => println!("ok   {} in {took:.1}s: {verdict}", name(case)),
            Err(e) => {
                println!("FAIL {} in {took:.1}s: {e}", name(case));
                failures += 1;
            }
        }
    }
    for (i, case) in sandbox_cases.iter().enumerate() {
        println!("[{}/{total}] {} …", i + cases.len() + 2, sandbox_name(case));
        let t = std::time::Instant::now();
        let outcome = check_sandbox(case);
        let took = t.elapsed().as_secs_f64();
        match outcome {
            Ok(verdict) => println!("ok   {} in {took:.1}s: {verdict}", sandbox_name(case)),
            Err(e) => {
                println!("FAIL {} in {took:.1}s: {e}", sandbox_name(case));
                failures += 1;
            }
        }
    }
    println!(
        "\nnegative tests: {} ran, {failures} failed, in {:.1}s",
        cases.len() + sandbox_cases.len(),
        started.elapsed().as_secs_f64()
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn child() -> ExitCode {
    in_process::run_suite("negative")
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// Copy the workshop's manifests into `dir`, applying `breakage` if given.
fn copy_manifests(dir: &Path, breakage: Option<&Breakage>) -> Result<(), String> {
    let source = manifests_dir();
    let entries =
        std::fs::read_dir(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut broken = false;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mut text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some(b) = breakage.filter(|b| b.file == name) {
            if text.matches(b.from).count() != 1 {
                return Err(format!(
                    "{name} must contain {:?} exactly once for this breakage; the manifest changed",
                    b.from
                ));
            }
            text = text.replace(b.from, b.to);
            broken = true;
        }
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    match (breakage, broken) {
        (Some(b), false) => Err(format!("{} is not among the manifests", b.file)),
        _ => Ok(()),
    }
}

/// Run the scenarios matching the tag expression on the sandbox against the manifests in `dir`.
fn run_tags(tags: &str, dir: &Path, env: &[(&str, &str)]) -> Result<(Summary, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--tags", tags])
        .env(CHILD_VAR, "1")
        .env("HAPPY_CLUSTER", "sandbox")
        // The child's reports are read by this test, not by a person: no page.
        .env("HAPPY_DOCS", "off")
        .env("HAPPY_MANIFESTS", dir)
        .env("HAPPY_REPORT_DIR", dir.join("report"))
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot run the suite: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let summary = stdout
        .lines()
        .rev()
        .find_map(Summary::parse_line)
        .ok_or_else(|| format!("the run printed no summary line\n{stdout}\n{stderr}"))?;
    Ok((summary, format!("{stdout}\n{stderr}")))
}

/// The scenarios of every selected claim pass on the unbroken manifests: otherwise a failure
/// of a broken run could come from the harness or the sandbox, and would prove nothing.
fn control(tags: &[String]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(dir.path(), None)?;
    let tags: Vec<String> = tags.iter().map(|t| format!("({t})")).collect();
    let (summary, output) = run_tags(&tags.join(" or "), dir.path(), &[])?;
    let claims: std::collections::BTreeSet<&String> = tags.iter().collect();
    if summary.failed != 0 || summary.skipped != 0 || summary.passed < claims.len() {
        return Err(format!(
            "the control run on the unbroken manifests did not pass ({summary}); \
             nothing can be concluded\n{output}"
        ));
    }
    println!(
        "ok   control: {} on the unbroken manifests ({summary})",
        tags.join(" or ")
    );
    Ok(())
}

/// The claim's scenarios fail on the broken manifests.
fn check(case: &Breakage) -> Result<String, String> {
    let broken = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(broken.path(), Some(case))?;
    let (summary, output) = run_tags(&format!("@{}", case.claim), broken.path(), &[])?;
    if summary.failed == 0 {
        return Err(format!(
            "the scenario did not fail with {} broken ({summary})\n{output}",
            case.file
        ));
    }
    Ok(format!("broken {} failed ({summary})", case.file))
}

/// The tag expression of a deviation's re-check scenario.
fn recheck_tags(case: &SandboxBreakage) -> String {
    format!("@deviation and @{}", case.tag)
}

/// The deviation's re-check fails on a sandbox broken through its knob.
fn check_sandbox(case: &SandboxBreakage) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(dir.path(), None)?;
    let (summary, output) = run_tags(&recheck_tags(case), dir.path(), case.env)?;
    let knobs: Vec<String> = case.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if summary.failed == 0 {
        return Err(format!(
            "the scenario did not fail with {} ({summary})\n{output}",
            knobs.join(" ")
        ));
    }
    Ok(format!("with {} it failed ({summary})", knobs.join(" ")))
}
