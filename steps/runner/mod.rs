//! The run of the suite, shared by the `happy` target and the suite's own whole-run tests
//! (`tests/runs/`: negative, failfast, scrape15, which run it on deliberately broken or changed
//! setups).
//!
//! Order matters: signals are caught first (so Ctrl-C works from the first moment), then the
//! command line is read and the features parsed and filtered — `--help`, a bad flag, a bad tag
//! expression, a concurrency the suite cannot honour or a filter that selects nothing all end
//! the run here, before anything is made or any report touched. Only then is the cluster
//! provisioned. Every way of stopping (SIGINT, SIGTERM, SIGHUP) ends the same way as Ctrl-C:
//! the scenario in progress is abandoned, the reports are written with every finished scenario
//! (the rest marked as not run, with the reason), and the cluster is torn down. A second signal
//! during teardown exits at once, still removing what the process owns (its temporary
//! directory; its child processes are killed).
//!
//! Each phase has its own module, and [`run`] calls them in this order:
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP caught from the start, and what a first and a
//!   second one do;
//! - [`plan`]: the command line, the settings, the deviations and which scenarios run (and,
//!   once the cluster is known, which are skipped with which reason);
//! - [`provision`]: `run.json` started, the cluster provisioned under the signal watch;
//! - [`execute`]: cucumber run on the planned scenarios, with the run's record and diagnostics;
//! - [`finish`]: the reports, the console summary, the living documentation, the teardown and
//!   the exit code.

pub mod recorder;

mod execute;
mod finish;
mod plan;
mod provision;
mod signals;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use cucumber::{cli, parser, runner as cucumber_runner, writer};

use plan::Planned;
use provision::Provisioned;
use signals::Signals;

/// Cucumber's command line as this suite's writers and runner define it.
pub(crate) type HappyOpts = cli::Opts<
    parser::basic::Cli,
    cucumber_runner::basic::Cli,
    cli::Compose<writer::basic::Cli, writer::junit::Cli>,
    cli::Empty,
>;

/// Why a run could not start or finish. Each message is printed as `happy-istio: <message>`
/// (`entry::run_suite`) and names what is at fault; the run then exits with 2.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A stopping signal could not be caught, so the run could not clean up on it.
    #[error("cannot catch {signal} to clean up on it: {source}")]
    CatchSignal {
        /// The signal, e.g. `SIGINT`.
        signal: &'static str,
        /// Why tokio could not register its handler.
        #[source]
        source: std::io::Error,
    },
    /// `--concurrency N` with N > 1: scenarios share one namespace and one Istio install.
    #[error(
        "--concurrency {0}: the suite runs one scenario at a time — every scenario converges \
         the one shared namespace {ns} (and the one Istio install) to what it needs, so \
         concurrent scenarios would undo each other's setup. Leave -c unset (or 1).",
        ns = crate::definitions::world::NAMESPACE
    )]
    Concurrency(usize),
    /// A setting (`HAPPY_*`, `ISTIO_VERSION`) or a timeout override (`HAPPY_TIMEOUT_*`) that
    /// cannot be read; the library's message names the variable and its value.
    #[error("{0}")]
    Settings(#[source] happy_istio::ProvisionError),
    /// Feature files that do not parse, one message each (naming the file).
    #[error("the features cannot be read:\n  {}", .0.join("\n  "))]
    Features(Vec<String>),
    /// A report could not be started or written; the message names the file.
    #[error("{0}")]
    Report(String),
    /// The cluster could not be provisioned (its `run.json` says so too).
    #[error("{0}")]
    Provisioning(#[source] happy_istio::ProvisionError),
    /// The record lost the run's `run.json` (a bug: nothing else takes it).
    #[error("the run's run.json vanished before the end of the run")]
    ProgressVanished,
    /// The scenarios' environment was gone before teardown (a bug: only the runner takes it).
    #[error("the run's environment vanished before teardown")]
    EnvironmentVanished,
    /// A scenario's world still held the cluster when the run wanted to tear it down.
    #[error("a scenario still holds the cluster; it was not torn down")]
    ClusterStillHeld,
    /// Tearing the cluster down failed.
    #[error("teardown failed: {0}")]
    Teardown(#[source] happy_istio::ProvisionError),
}

fn features_dir() -> PathBuf {
    crate::repo_root().join("features")
}

/// Print a line on stderr; a closed terminal (after SIGHUP) must not turn cleanup into a panic.
fn say(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", line.as_ref());
}

/// Print a line on stdout, ignoring a closed stdout for the same reason.
fn say_out(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stdout(), "{}", line.as_ref());
}

/// One run of the suite: read the options, provision, run the features, report, tear down.
/// Err is a run that could not start or finish.
pub async fn run() -> Result<ExitCode, RunError> {
    let signals = Signals::install()?;
    // One TLS provider for the whole process: ring (kube and reqwest both use it).
    happy_istio::download::install_crypto_provider();

    let plan = match plan::plan(std::env::args_os()).await? {
        Planned::Run(plan) => plan,
        Planned::Exit(code) => return Ok(code),
    };
    if let Some(code) = signals.stopped_before_start() {
        return Ok(code);
    }
    let provisioned = match provision::provision(&plan, &signals).await? {
        Provisioned::Ready(provisioned) => provisioned,
        Provisioned::Ended(code) => return Ok(code),
    };
    let executed = execute::execute(
        plan.selection,
        &plan.settings,
        &plan.timeouts,
        provisioned,
        &signals,
    )
    .await?;
    finish::finish(executed, &plan.settings, &signals).await
}
