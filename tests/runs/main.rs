//! The suite run end to end, as child processes of this binary, to prove things about whole
//! runs: `failfast` (a broken run ends fast with its cause), `scrape15` (C13 at the real
//! Prometheus addon's 15 s scrape interval) and `negative` (every claim's scenario fails when
//! its manifest or mechanism is broken, and passes on its control). Each child runs the suite
//! exactly as `cargo test --test happy` does, marked by its group's variable.
//!
//! `cargo test --test runs` runs the three groups at once, each in a child process of this
//! binary (marked by `HAPPY_RUNS_GROUP`), and prints their lines as they come, each prefixed
//! with its group: most of a group's time is waiting (a pull-retry limit, a scrape interval, a
//! check's limit), so together they take about as long as the longest. Ctrl-C reaches every
//! child (one process group): `negative` stops its runs, the others end with theirs.
//! `cargo test --test runs -- negative C16` runs one group here, its cases whose names contain
//! `C16`; `cargo test --test runs -- C16` filters the cases of every group.

mod failfast;
mod negative;
mod scrape15;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

/// Marks a child that runs one group (its value: the group's name).
const GROUP_VAR: &str = "HAPPY_RUNS_GROUP";

/// A group: its name, the variable that marks its children, and its runner.
type Group = (&'static str, &'static str, fn(&[String]) -> ExitCode);

const GROUPS: [Group; 3] = [
    ("failfast", failfast::CHILD_VAR, failfast::main),
    ("scrape15", scrape15::CHILD_VAR, scrape15::main),
    ("negative", negative::CHILD_VAR, negative::main),
];

fn main() -> ExitCode {
    for (name, var, _) in GROUPS {
        if std::env::var_os(var).is_some() {
            return happy_steps::entry::run_suite(name);
        }
    }
    // libtest's flags (--nocapture, --quiet, …) that cargo passes along mean nothing here.
    let mut words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let named = std::env::var(GROUP_VAR)
        .ok()
        .or_else(|| words.first().cloned());
    if let Some((name, _, run)) = GROUPS.iter().find(|(n, _, _)| Some(*n) == named.as_deref()) {
        if words.first() == Some(&name.to_string()) {
            words.remove(0);
        }
        return run(&words);
    }
    run_all(&words)
}

/// Every group at once, each in a child process; their lines as they come, prefixed.
fn run_all(words: &[String]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            println!("FAIL cannot find this test binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut children = Vec::new();
    for (name, _, _) in GROUPS {
        let spawned = Command::new(&exe)
            .args(words)
            .env(GROUP_VAR, name)
            .stdout(Stdio::piped())
            .spawn();
        match spawned {
            Ok(mut child) => {
                let stdout = child.stdout.take();
                let echo = std::thread::spawn(move || {
                    for line in stdout
                        .map(BufReader::new)
                        .into_iter()
                        .flat_map(|r| r.lines())
                    {
                        match line {
                            Ok(line) => println!("[{name}] {line}"),
                            Err(_) => break,
                        }
                    }
                });
                children.push((name, child, echo));
            }
            Err(e) => println!("FAIL [{name}] cannot start: {e}"),
        }
    }
    let mut failed: Vec<&str> = GROUPS
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| !children.iter().any(|(c, _, _)| c == n))
        .collect();
    for (name, mut child, echo) in children {
        let ok = child.wait().is_ok_and(|status| status.success());
        let _ = echo.join();
        if !ok {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        println!("\nruns: failfast, scrape15 and negative passed");
        ExitCode::SUCCESS
    } else {
        println!("\nruns: failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
