//! The suite must be able to fail. Each case breaks one claim's manifest (or mechanism) in a
//! copy of the workshop's files and runs that claim's scenarios on the sandbox through
//! `HAPPY_MANIFESTS` — the override users have — expecting them to fail. A control run on the
//! unbroken copy must pass first, so a failure cannot come from the harness or the sandbox.
//!
//! This target is its own runner: every run happens in a child process of this binary (marked
//! by `HAPPY_NEGATIVE_CHILD`) that runs the suite exactly as `cargo test --test happy` does,
//! with its own report directory.

#[path = "../steps/definitions/mod.rs"]
mod definitions;
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
        claim: "C03",
        what: "service-c v2 never fails",
        file: "services-c-v2.yaml",
        from: r#"value: "0.6""#,
        to: r#"value: "0""#,
    },
];

fn main() -> ExitCode {
    if std::env::var_os(CHILD_VAR).is_some() {
        return child();
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in CASES {
        let name = format!("{} — {}", case.claim, case.what);
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        match check(case) {
            Ok(verdict) => println!("ok   {name}: {verdict}"),
            Err(e) => {
                println!("FAIL {name}: {e}");
                failures.push(name);
            }
        }
    }
    println!("\nnegative tests: {} ran, {} failed", ran, failures.len());
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn child() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("negative: cannot start a tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(runner::run()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("happy-istio: {message}");
            ExitCode::from(2)
        }
    }
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

/// Run `claim`'s scenarios on the sandbox against the manifests in `dir`.
fn run_claim(claim: &str, dir: &Path) -> Result<(Summary, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--tags", &format!("@{claim}")])
        .env(CHILD_VAR, "1")
        .env("HAPPY_CLUSTER", "sandbox")
        .env("HAPPY_MANIFESTS", dir)
        .env("HAPPY_REPORT_DIR", dir.join("report"))
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

/// The control run passes and the broken run fails.
fn check(case: &Breakage) -> Result<String, String> {
    let control = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(control.path(), None)?;
    let (summary, output) = run_claim(case.claim, control.path())?;
    if summary.failed != 0 || summary.skipped != 0 || summary.passed == 0 {
        return Err(format!(
            "the control run on the unbroken manifests did not pass ({summary}); \
             nothing can be concluded\n{output}"
        ));
    }
    let broken = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_manifests(broken.path(), Some(case))?;
    let (summary, output) = run_claim(case.claim, broken.path())?;
    if summary.failed == 0 {
        return Err(format!(
            "the scenario did not fail with {} broken ({summary})\n{output}",
            case.file
        ));
    }
    Ok(format!(
        "control passed; broken {} failed ({summary})",
        case.file
    ))
}
