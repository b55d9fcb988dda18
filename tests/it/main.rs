//! The suite's own tests, one binary (`cargo test --test it`; a module's tests alone:
//! `cargo test --test it features::`): the features' contract, the manifests, the README's
//! tables, the workflows, the run's record, stopping a run, and the living documentation
//! (built from fixture reports, published, opened in a browser). The claims themselves run in
//! the `happy` target, the negative and fail-fast tests in their own (`negative`, `failfast`,
//! `scrape15`), each a program of its own.

// The step layer, as the `happy` target compiles it.
#[path = "../../steps/definitions/mod.rs"]
#[allow(dead_code)]
mod definitions;
// The runner, for the record it holds (`run_record`) and for its phases' unit tests
// (`steps/runner/*.rs`, `mod tests`: the `happy` target that runs them has no test harness).
#[path = "../../steps/runner/mod.rs"]
#[allow(dead_code)]
mod runner;
use runner::recorder;

mod fixture_dirs;

mod browser;
mod docs;
mod features;
mod manifests;
mod publish_docs;
mod readme;
mod run_record;
mod stopping;
mod workflows;
