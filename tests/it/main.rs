//! The suite's own tests, one binary (`cargo test --test it`; a module's tests alone:
//! `cargo test --test it features::`): the features' contract, the manifests, the README's
//! tables, the workflows, the run's record, stopping a run, the living documentation (built
//! from fixture reports, published, opened in a browser), the tools' command lines and the
//! library crates' module graphs. The claims themselves run in
//! the `happy` target, the fail-fast, real-timing and negative tests in `runs` (tests/runs/), a
//! program of its own.

// The step layer (happy_steps, steps/): the definitions and the runner's record.
use happy_steps::definitions;
use happy_steps::runner::recorder;

mod fixture_dirs;
mod processes;

mod browser;
mod cdp;
mod docs;
mod features;
mod manifests;
mod publish_docs;
mod readme;
mod run_record;
mod stopping;
mod structure;
mod tools;
mod workflows;
