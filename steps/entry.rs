//! The suite run inside this process: the `happy` target's `main`, and the suite's own tests
//! that re-run their executable as a child to run the suite on a broken or changed setup
//! (`tests/runs/`: negative, failfast, scrape15).

use std::process::ExitCode;

use crate::runner;

/// Run the suite to its end on a fresh tokio runtime; `label` names the caller in the one
/// error that can come before the suite starts.
pub fn run_suite(label: &str) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{label}: cannot start a tokio runtime: {e}");
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
