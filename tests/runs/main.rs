//! The suite run end to end, as child processes of this binary, to prove things about whole
//! runs: `failfast` (a broken run ends fast with its cause), `scrape15` (C13 at the real
//! Prometheus addon's 15 s scrape interval) and `negative` (every claim's scenario fails when
//! its manifest or mechanism is broken, and passes on its control). Each child runs the suite
//! exactly as `cargo test --test happy` does, marked by its group's variable.
//!
//! `cargo test --test runs` runs the three groups one after another, `negative` last (it
//! catches signals for its children; the others leave Ctrl-C its default action).
//! `cargo test --test runs -- negative C16` runs one group, its cases whose names contain
//! `C16`; `cargo test --test runs -- C16` filters the cases of every group.

#[path = "../../steps/definitions/mod.rs"]
mod definitions;
#[path = "../../steps/in_process.rs"]
mod in_process;
#[path = "../../steps/runner/mod.rs"]
mod runner;

mod failfast;
mod negative;
mod scrape15;

use std::process::ExitCode;

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
            return in_process::run_suite(name);
        }
    }
    // libtest's flags (--nocapture, --quiet, …) that cargo passes along mean nothing here.
    let mut words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen = GROUPS
        .iter()
        .find(|(name, _, _)| words.first().map(String::as_str) == Some(*name));
    if chosen.is_some() {
        words.remove(0);
    }
    let mut failed = Vec::new();
    for (name, _, run) in GROUPS {
        if chosen.is_some_and(|(c, _, _)| *c != name) {
            continue;
        }
        println!("\n== {name} ==");
        if run(&words) != ExitCode::SUCCESS {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("\nruns: failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
