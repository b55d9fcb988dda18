//! The `happy` test target: `cargo test --test happy [-- CUCUMBER OPTIONS]`.
//!
//! Provisions one cluster for the run (see `HAPPY_CLUSTER`), runs the workshop's features one
//! scenario at a time, writes JUnit XML, Cucumber JSON and `run.json` under the report
//! directory, captures a diagnostics bundle for each failed scenario, prints the summary line
//! `N passed, N failed, N skipped`, and tears the cluster down (unless asked to keep it) —
//! also on Ctrl-C. All of it is the step layer, `happy_steps` (steps/).

use std::process::ExitCode;

fn main() -> ExitCode {
    happy_steps::entry::run_suite("happy-istio")
}
