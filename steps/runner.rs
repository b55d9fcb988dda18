//! The run of the suite, shared by the `happy` target and the suite's own negative tests
//! (`tests/negative.rs`, which run it on deliberately broken copies of the manifests).
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

#[path = "recorder.rs"]
mod recorder;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use cucumber::event::ScenarioFinished;
use cucumber::gherkin;
use cucumber::tag::Ext as _;
use cucumber::writer::Coloring;
use cucumber::{World, WriterExt, cli, parser, runner as cucumber_runner, writer};
use futures::StreamExt as _;
use happy_istio::cluster::Cluster;
use happy_istio::diagnostics::Diagnostics;
use happy_istio::manifests::ManifestDir;
use happy_istio::provision::{self, ClusterHandle};
use happy_istio::report::{self, RunInfo};
use happy_istio::settings::{self, Settings};
use happy_istio::timeouts::Timeouts;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::definitions::gate::{Gate, SKIPPED_TAG, Skipped};
use crate::definitions::world::{Env, HappyWorld, ISTIO_NAMESPACE, NAMESPACE};
use recorder::{Record, Recorder};

/// At most this many diagnostics bundles per run.
const DIAGNOSTICS_CAP: usize = 10;

/// Cucumber's command line as this suite's writers and runner define it.
pub type HappyOpts = cli::Opts<
    parser::basic::Cli,
    cucumber_runner::basic::Cli,
    cli::Compose<writer::basic::Cli, writer::junit::Cli>,
    cli::Empty,
>;

fn features_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("features")
}

/// Print a line on stderr; a closed terminal (after SIGHUP) must not turn cleanup into a panic.
fn say(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", line.as_ref());
}

/// Print a line on stdout, ignoring a closed stdout for the same reason.
fn say_out(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stdout(), "{}", line.as_ref());
}

/// The capability tags of the features, with the reason each is missing on this cluster.
fn gate_for(handle: &dyn ClusterHandle) -> Gate {
    let caps = handle.capabilities();
    Gate::new([
        (
            "istio".to_string(),
            caps.istio.missing_reason().map(str::to_string),
        ),
        (
            "prometheus".to_string(),
            caps.prometheus.missing_reason().map(str::to_string),
        ),
        (
            "grafana".to_string(),
            caps.grafana.missing_reason().map(str::to_string),
        ),
        (
            "kiali".to_string(),
            caps.kiali.missing_reason().map(str::to_string),
        ),
        (
            "capture".to_string(),
            caps.packet_capture.missing_reason().map(str::to_string),
        ),
        (
            "egress-gateway".to_string(),
            caps.egress_gateway.missing_reason().map(str::to_string),
        ),
    ])
    .with_rechecks_not_applicable(
        happy_istio::deviations::rechecks_not_applicable(handle.info().kind)
            .into_iter()
            .map(|(id, why)| (id.to_string(), why.to_string())),
    )
}

/// A signal the run caught, with the exit code it ends the run with (128 + its number).
#[derive(Clone, Copy, Debug)]
struct Caught {
    name: &'static str,
    code: u8,
}

/// SIGINT, SIGTERM and SIGHUP, caught from the start of the run and counted.
struct Signals {
    rx: watch::Receiver<Vec<Caught>>,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        let (tx, rx) = watch::channel(Vec::new());
        for (kind, name, code) in [
            (SignalKind::interrupt(), "SIGINT", 130),
            (SignalKind::terminate(), "SIGTERM", 143),
            (SignalKind::hangup(), "SIGHUP", 129),
        ] {
            let mut stream =
                signal(kind).map_err(|e| format!("cannot catch {name} to clean up on it: {e}"))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tx.send_modify(|caught| caught.push(Caught { name, code }));
                }
            });
        }
        Ok(Signals { rx })
    }

    /// The first signal caught so far.
    fn first(&self) -> Option<Caught> {
        self.rx.borrow().first().copied()
    }

    /// Resolves once `n` signals have been caught, with the `n`th.
    async fn nth(&self, n: usize) -> Caught {
        let mut rx = self.rx.clone();
        match rx.wait_for(|caught| caught.len() >= n).await {
            Ok(caught) => caught[n - 1],
            Err(_) => std::future::pending().await,
        }
    }
}

/// A second signal: leave at once. What can be cleaned up without waiting is: the process's own
/// children are killed, so no Envoy or Prometheus outlives the run, and then `owned` — the
/// provisioner's future or the teardown — is dropped, which removes what the process owns (the
/// sandbox's directory; a kind cluster being made). In that order: a child still running could
/// write into the directory while it is being removed and leave it behind.
fn force_exit<T>(caught: Caught, what_may_be_left: &str, owned: T) -> ! {
    let killed = kill_own_children();
    drop(owned);
    say(format!(
        "happy-istio: {} again: exiting at once (killed {killed} child process(es)){what_may_be_left}",
        caught.name
    ));
    std::process::exit(caught.code.into())
}

/// Kill every process whose parent is this process (Linux: from `/proc`). Returns how many.
fn kill_own_children() -> usize {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            // SAFETY: kill(2) with a pid read from /proc whose parent is this process.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}

/// Read cucumber's command line, with the suite's own help on the environment.
/// Also returns the filter as written (`--tags EXPR` / `--name REGEX`), for messages.
fn parse_cli(
    args: impl IntoIterator<Item = OsString>,
) -> Result<(HappyOpts, Option<String>), clap::Error> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let help = Settings::help_text();
    let command = HappyOpts::command()
        .name("happy")
        .bin_name("cargo test --test happy --")
        .about("The happy-istio conformance suite: the workshop's claims against a cluster")
        .long_about(None)
        .after_help(help.clone())
        .after_long_help(help);
    let matches = command.try_get_matches_from(args)?;
    let written = |id: &str| {
        matches
            .get_raw(id)
            .and_then(|mut values| values.next())
            .map(|v| format!("--{id} {}", v.to_string_lossy()))
    };
    let filter = written("name").or_else(|| written("tags"));
    Ok((HappyOpts::from_arg_matches(&matches)?, filter))
}

/// Refuse options the suite cannot honour.
fn check_options(opts: &HappyOpts) -> Result<(), String> {
    if let Some(n) = opts.runner.concurrency.filter(|n| *n > 1) {
        return Err(format!(
            "--concurrency {n}: the suite runs one scenario at a time — every scenario converges \
             the one shared namespace {NAMESPACE} (and the one Istio install) to what it needs, \
             so concurrent scenarios would undo each other's setup. Leave -c unset (or 1)."
        ));
    }
    Ok(())
}

/// Whether cucumber's filters select `scenario` (the same rule as cucumber's own: `--name`
/// wins over `--tags`; feature, rule and scenario tags count together).
fn selected(
    opts: &HappyOpts,
    feature: &gherkin::Feature,
    rule: Option<&gherkin::Rule>,
    scenario: &gherkin::Scenario,
) -> bool {
    match (&opts.re_filter, &opts.tags_filter) {
        (Some(re), _) => re.is_match(&scenario.name),
        (None, Some(tags)) => tags.eval(
            feature
                .tags
                .iter()
                .chain(rule.iter().flat_map(|r| r.tags.iter()))
                .chain(scenario.tags.iter()),
        ),
        (None, None) => true,
    }
}

/// The features as cucumber would read them (`--input` honoured), filtered by the command
/// line; a feature that does not parse is an error naming it.
async fn plan_features(opts: &HappyOpts) -> Result<Vec<gherkin::Feature>, String> {
    use cucumber::Parser as _;
    let parsed: Vec<_> = parser::Basic::new()
        .parse(features_dir(), opts.parser.clone())
        .collect()
        .await;
    let mut features = Vec::new();
    let mut errors = Vec::new();
    for feature in parsed {
        match feature {
            Ok(f) => features.push(f),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "the features cannot be read:\n  {}",
            errors.join("\n  ")
        ));
    }
    Ok(features
        .into_iter()
        .filter_map(|mut f| {
            let scenarios = std::mem::take(&mut f.scenarios);
            f.scenarios = scenarios
                .into_iter()
                .filter(|s| selected(opts, &f, None, s))
                .collect();
            let mut rules = std::mem::take(&mut f.rules);
            for r in &mut rules {
                let scenarios = std::mem::take(&mut r.scenarios);
                r.scenarios = scenarios
                    .into_iter()
                    .filter(|s| selected(opts, &f, Some(r), s))
                    .collect();
            }
            f.rules = rules
                .into_iter()
                .filter(|r| !r.scenarios.is_empty())
                .collect();
            (!f.scenarios.is_empty() || !f.rules.is_empty()).then_some(f)
        })
        .collect())
}

fn scenario_count(features: &[gherkin::Feature]) -> usize {
    features
        .iter()
        .map(|f| f.scenarios.len() + f.rules.iter().map(|r| r.scenarios.len()).sum::<usize>())
        .sum()
}

/// What cucumber runs: the features this run prepared (filtered, then gated).
struct Prepared(Vec<gherkin::Feature>);

impl<I> cucumber::Parser<I> for Prepared {
    type Cli = parser::basic::Cli;
    type Output = futures::stream::Iter<std::vec::IntoIter<parser::Result<gherkin::Feature>>>;

    fn parse(self, _input: I, _cli: Self::Cli) -> Self::Output {
        futures::stream::iter(self.0.into_iter().map(Ok).collect::<Vec<_>>())
    }
}

/// How the scenarios' part of the run ended.
enum Ended {
    Finished,
    Signal(Caught),
    Stopped(String),
}

/// One run of the suite: read the options, provision, run the features, report, tear down.
/// Err is a message for a run that could not start or finish.
pub async fn run() -> Result<ExitCode, String> {
    let signals = Signals::install()?;
    // One TLS provider for the whole process: ring (kube and reqwest both use it).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let (mut opts, filter) = match parse_cli(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
    };
    check_options(&opts)?;
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let timeouts = Timeouts::from_env().map_err(|e| e.to_string())?;
    // Every departure from the workshop's text, announced before anything runs.
    let deviations = happy_istio::deviations::Deviations::resolve(&settings);
    eprint!("{deviations}");
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    for warning in settings::unknown_variables(names.iter().map(String::as_str)) {
        say(format!("happy-istio: warning: {warning}"));
    }
    let planned = plan_features(&opts).await?;
    let selected_count = scenario_count(&planned);
    if selected_count == 0 {
        let filter = filter.unwrap_or_else(|| "no filter".to_string());
        say(format!(
            "happy-istio: {filter} selects no scenario of {}; nothing was provisioned",
            features_dir().display()
        ));
        return Ok(ExitCode::FAILURE);
    }
    if let Some(caught) = signals.first() {
        say(format!(
            "happy-istio: {} before anything was started; nothing to clean up",
            caught.name
        ));
        return Ok(ExitCode::from(caught.code));
    }

    let report_dir = settings.report_dir.clone();
    report::begin(&report_dir)?;
    let started = jiff::Timestamp::now();
    let run_id = report::new_run_id(started, std::process::id());
    say(format!(
        "happy-istio: run {run_id}: {selected_count} scenario(s) selected; reports in {}",
        report_dir.display()
    ));
    // run.json from the first moment (in progress, every scenario not run yet), so that a run
    // stopped in any way — even killed outright — leaves one.
    let mut progress = report::Progress::start(
        &report_dir,
        RunInfo {
            run_id: run_id.clone(),
            started_at: started.to_string(),
            cluster_kind: settings.cluster.to_string(),
            istio_version: asked_istio_version(&settings),
            deviations: deviations.report(),
            commit: report::suite_commit(Path::new(env!("CARGO_MANIFEST_DIR"))),
            ci_run_url: report::ci_run_url(),
            ..RunInfo::default()
        },
        all_names(&planned),
    )?;
    say(format!(
        "happy-istio: provisioning the cluster (HAPPY_CLUSTER={})",
        settings.cluster
    ));

    let mut provisioning = Box::pin(provision::provision(&settings, &timeouts));
    let provisioned = tokio::select! {
        biased;
        caught = signals.nth(1) => Err(caught),
        p = &mut provisioning => Ok(p),
    };
    let handle = match provisioned {
        Ok(p) => {
            drop(provisioning);
            match p {
                Ok(handle) => handle,
                Err(e) => {
                    let cause = e.to_string();
                    write_provisioning_failure(progress, &cause, &report_dir);
                    return Err(cause);
                }
            }
        }
        Err(caught) => {
            say(format!(
                "happy-istio: {} while provisioning: letting it finish so that it can be torn \
                 down (a second signal stops at once)",
                caught.name
            ));
            let finished = tokio::select! {
                biased;
                forced = signals.nth(2) => Err(forced),
                p = &mut provisioning => Ok(p),
            };
            match finished {
                Err(forced) => force_exit(forced, kept_note(&settings).as_str(), provisioning),
                Ok(Err(e)) => {
                    say(format!("happy-istio: provisioning failed: {e}"));
                    write_provisioning_failure(progress, &e.to_string(), &report_dir);
                }
                Ok(Ok(handle)) => {
                    drop(provisioning);
                    note_cluster(&mut progress, handle.as_ref(), Vec::new());
                    let reason = format!("not run: the run was stopped by {}", caught.name);
                    let (info, summary) = progress.end(
                        Some(format!("stopped by {} while provisioning", caught.name)),
                        &[],
                        &reason,
                    );
                    if let Err(e) = report::write(&report_dir, &info, summary, None, None) {
                        say(format!("happy-istio: {e}"));
                    }
                    say("happy-istio: tearing down (a second signal stops at once)");
                    teardown(handle, false, &signals, &settings).await?;
                }
            }
            return Ok(ExitCode::from(caught.code));
        }
    };

    let info = handle.info().clone();
    say(format!(
        "happy-istio: cluster {} ({}), Kubernetes {}{}",
        info.name,
        info.kind,
        info.kubernetes_version,
        info.note
            .as_deref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default()
    ));
    say(format!(
        "happy-istio: an Istio install by this run takes its images from {}",
        handle.istio_hub()
    ));
    let settings_notes = settings.not_applicable(info.kind);
    for note in &settings_notes {
        say(format!("happy-istio: note: {note}"));
    }
    note_cluster(&mut progress, handle.as_ref(), settings_notes);
    if let Err(e) = progress.write() {
        say(format!(
            "happy-istio: warning: run.json was not brought up to date: {e}"
        ));
    }
    let gate = gate_for(handle.as_ref());
    let mut features = Vec::new();
    for feature in planned {
        let (parts, skipped) = gate.apply(feature);
        for s in &skipped {
            log_skip(s);
        }
        features.extend(parts);
    }
    let cluster = Cluster::new(handle.client(), timeouts.clone());
    // The run's registry pulls, from the kubelet's Events (pulls made while provisioning too).
    let pull_counter = happy_istio::cluster::pulls::PullCounter::start(handle.client(), started);
    let manifests = ManifestDir::new(settings.manifests_dir.clone());
    let diagnostics = Diagnostics::new(
        report_dir.join("diagnostics").join(&run_id),
        DIAGNOSTICS_CAP,
    );
    Env::install(Arc::new(Env::new(
        cluster,
        handle,
        manifests,
        timeouts,
        diagnostics,
    )));

    let (stop_tx, mut stop_rx) = watch::channel(None::<String>);
    // One task runs cucumber and the runner: the record is shared, not sent.
    let record = std::rc::Rc::new(tokio::sync::Mutex::new(
        Record::new(features.clone(), stop_tx).with_progress(progress),
    ));
    let fail_fast = opts.runner.fail_fast;
    // Filtering is done: cucumber gets the prepared features and must not filter again.
    opts.re_filter = None;
    opts.tags_filter = None;
    let ended = {
        let cucumber = HappyWorld::cucumber::<PathBuf>()
            .with_parser(Prepared(features))
            .with_writer(
                writer::Basic::raw(std::io::stdout(), Coloring::Auto, 0)
                    .summarized()
                    .tee::<HappyWorld, _>(
                        Recorder(std::rc::Rc::clone(&record))
                            .discard_stats_writes()
                            .discard_arbitrary_writes(),
                    )
                    .normalized(),
            )
            // Scenarios share one cluster and one namespace: one at a time.
            .max_concurrent_scenarios(1)
            // A skipped step is a failure — an undefined step must not pass for a skip — except
            // in the scenarios the gate skipped on purpose, with their reason.
            .fail_on_skipped_with(|_, _, scenario| !scenario.tags.iter().any(|t| t == SKIPPED_TAG))
            .after(|_feature, _rule, scenario, finished, world| {
                Box::pin(async move {
                    let failed = matches!(
                        finished,
                        ScenarioFinished::StepFailed(..) | ScenarioFinished::BeforeHookFailed(..)
                    );
                    if let (true, Some(world)) = (failed, world) {
                        capture_diagnostics(&world.env(), &scenario.name).await;
                    }
                })
            })
            .with_cli(opts);
        tokio::select! {
            biased;
            caught = signals.nth(1) => Ended::Signal(caught),
            reason = stop_rx.wait_for(Option::is_some) => Ended::Stopped(
                reason.ok().and_then(|r| r.clone()).unwrap_or_default(),
            ),
            _ = cucumber.run(features_dir()) => Ended::Finished,
        }
    };
    let not_run_reason = match &ended {
        Ended::Finished if fail_fast => {
            "not run: --fail-fast stopped the run after a failure".to_string()
        }
        Ended::Finished => "not run: cucumber did not run it".to_string(),
        Ended::Signal(caught) => format!("not run: the run was stopped by {}", caught.name),
        Ended::Stopped(reason) => format!("not run: the run stopped early: {reason}"),
    };
    match &ended {
        Ended::Signal(caught) => say(format!(
            "happy-istio: {}: abandoning the scenario in progress; writing the reports",
            caught.name
        )),
        Ended::Stopped(reason) => say(format!("happy-istio: stopping early: {reason}")),
        Ended::Finished => {}
    }
    let (junit, json, records, progress) = {
        let mut record = record.lock().await;
        let (junit, json, records) = record.finish(Some(&not_run_reason)).await;
        (junit, json, records, record.take_progress())
    };
    drop(record);
    let Some(progress) = progress else {
        return Err("the run's run.json vanished before the end of the run".into());
    };

    let Some(env) = Env::take() else {
        return Err("the run's environment vanished before teardown".into());
    };
    let stopped = match &ended {
        Ended::Finished => None,
        Ended::Signal(caught) => Some(format!("stopped by {}", caught.name)),
        Ended::Stopped(reason) => Some(format!("stopped early: {reason}")),
    };
    let (mut run_info, summary) = progress.end(stopped, &records, &not_run_reason);
    (run_info.pulls, run_info.pulls_note) = pull_counter.finish();
    run_info.istio_hub = Some(env.istio_hub());
    match env.istio_version() {
        Some(version) => run_info.istio_version = version,
        // A run that ended without installing Istio: a complete one says so; a stopped one
        // keeps the version it was asked for, so its column stays in that version's line.
        None if run_info.stopped.is_none() => {
            run_info.istio_version = "not installed by this run".to_string();
        }
        None => {}
    }
    let written = report::write(&report_dir, &run_info, summary, Some(&junit), Some(&json));

    say_out("");
    say_out(summary.to_string());
    if summary.failed > 0 {
        let environment = run_info
            .failures
            .iter()
            .filter(|f| f.class == report::FailureClass::Environment)
            .count();
        say_out(format!(
            "failures: {} claim, {environment} environment",
            summary.failed - environment
        ));
        for f in &run_info.failures {
            say_out(format!(
                "  {} failure: {}: {}",
                f.class,
                f.scenario,
                f.message.lines().next().unwrap_or_default()
            ));
        }
    }
    say_out(happy_istio::cluster::pulls::describe(&run_info.pulls));
    if let Some(note) = &run_info.pulls_note {
        say_out(format!("registry pulls: {note}"));
    }
    if let Some(stopped) = &run_info.stopped {
        say_out(format!(
            "{stopped}; {} scenario(s) not run",
            summary.not_run
        ));
    }
    for line in report::slowest_steps(&json, report::SLOWEST_SHOWN)
        .map(|s| report::describe_slowest(&s))
        .unwrap_or_default()
    {
        say_out(line);
    }
    match &written {
        Ok(()) => {
            for file in report::files(&report_dir) {
                say_out(format!("report: {}", file.display()));
            }
        }
        Err(e) => say(format!("happy-istio: {e}")),
    }
    if written.is_ok() && settings.docs {
        write_docs(&report_dir);
    }

    let any_failed = summary.failed > 0 || run_info.stopped.is_some();
    say("happy-istio: tearing down (a second signal stops at once)");
    let env = match Arc::try_unwrap(env) {
        Ok(env) => env,
        Err(_) => return Err("a scenario still holds the cluster; it was not torn down".into()),
    };
    teardown(env.into_handle(), any_failed, &signals, &settings).await?;
    written?;
    Ok(match ended {
        Ended::Signal(caught) => ExitCode::from(caught.code),
        Ended::Stopped(_) => ExitCode::FAILURE,
        Ended::Finished if summary.failed == 0 && summary.not_run == 0 => ExitCode::SUCCESS,
        Ended::Finished => ExitCode::FAILURE,
    })
}

/// The run's living documentation page (`happy_istio::docs`) in `site/` of the report
/// directory, its history strips continuing the previous local runs'. A failure here is said
/// and changes nothing else: the run's verdict and exit code are the scenarios'.
fn write_docs(report_dir: &Path) {
    let mut options = happy_istio::docs::Options::for_reports(vec![report_dir.to_path_buf()]);
    options.features = features_dir();
    let history = options
        .out_dir()
        .join(happy_istio::docs::history::HISTORY_FILE);
    // A local history that cannot be read (another schema, a damaged file) must not cost the
    // user tonight's page: it is said, and the page starts a new history.
    options.history = match happy_istio::docs::history::History::load(&history) {
        Ok(_) => Some(history),
        Err(e) => {
            say(format!(
                "happy-istio: the previous runs' history is not carried on: {e}; the page starts \
                 a new one"
            ));
            None
        }
    };
    match happy_istio::docs::build(&options) {
        Ok(built) => say_out(format!("living documentation: {}", built.index.display())),
        Err(e) => say(format!(
            "happy-istio: the living documentation page was not written (the run's verdict \
             stands): {e}"
        )),
    }
}

fn log_skip(s: &Skipped) {
    say(format!(
        "happy-istio: SKIP {} — {}: {}",
        s.feature, s.scenario, s.reason
    ));
}

/// The Istio version the run was asked for (`ISTIO_VERSION`), as a report names it before any
/// is installed: `dev` for the newest dev build (its docs line), `latest` unresolved.
fn asked_istio_version(settings: &Settings) -> String {
    use happy_istio::settings::IstioVersionRequest;
    match &settings.istio_version {
        IstioVersionRequest::Pinned => happy_istio::istio::releases::pinned_default().to_string(),
        IstioVersionRequest::Latest => "latest".to_string(),
        IstioVersionRequest::LatestDev => happy_istio::istio::releases::UNRESOLVED_DEV.to_string(),
        IstioVersionRequest::Exact(v) => v.to_string(),
    }
}

/// What the provisioned cluster is, into the run's run.json.
fn note_cluster(
    progress: &mut report::Progress,
    handle: &dyn ClusterHandle,
    settings_notes: Vec<String>,
) {
    let info = handle.info();
    let run = progress.info_mut();
    run.cluster_kind = info.kind.to_string();
    run.cluster_name = info.name.clone();
    run.kubernetes_version = info.kubernetes_version.clone();
    run.note = info.note.clone();
    run.settings_notes = settings_notes;
    run.istio_hub = Some(handle.istio_hub().to_string());
}

/// The run could not be provisioned: its run.json says so (the environment's verdict, every
/// selected scenario not run with the cause), and the run ends as before with the cause.
fn write_provisioning_failure(progress: report::Progress, cause: &str, report_dir: &Path) {
    match progress.provisioning_failed(cause) {
        Ok(_) => say(format!(
            "happy-istio: provisioning failed; report: {}",
            report_dir.join(report::RUN_FILE).display()
        )),
        Err(e) => say(format!("happy-istio: {e}")),
    }
}

fn all_names(features: &[gherkin::Feature]) -> Vec<String> {
    features
        .iter()
        .flat_map(|f| {
            f.scenarios
                .iter()
                .chain(f.rules.iter().flat_map(|r| r.scenarios.iter()))
                .map(move |s| format!("{} — {}", f.name, s.name))
        })
        .collect()
}

/// What a forced exit may leave behind, to say so.
fn kept_note(settings: &Settings) -> String {
    match settings.cluster {
        settings::ClusterChoice::Sandbox => String::new(),
        _ => format!(
            "; a cluster being made may be left (for kind: `kind delete cluster --name {}`)",
            settings.kind_cluster
        ),
    }
}

async fn capture_diagnostics(env: &Env, scenario: &str) {
    let namespaces = [NAMESPACE, ISTIO_NAMESPACE, "default"];
    match env
        .diagnostics
        .capture(&env.cluster, scenario, &namespaces, env.handle.istioctl())
        .await
    {
        Ok(Some(path)) => say(format!(
            "happy-istio: diagnostics for {scenario:?}: {}",
            path.display()
        )),
        Ok(None) => say(format!(
            "happy-istio: diagnostics cap of {DIAGNOSTICS_CAP} bundles reached; none for {scenario:?}"
        )),
        Err(e) => say(format!(
            "happy-istio: diagnostics for {scenario:?} failed: {e}"
        )),
    }
}

/// Tear the cluster down; a second signal meanwhile exits at once (dropping the teardown, so
/// what drops cleanly — the sandbox's directory — still goes, and killing this process's
/// children).
async fn teardown(
    handle: Box<dyn ClusterHandle>,
    any_failed: bool,
    signals: &Signals,
    settings: &Settings,
) -> Result<(), String> {
    let mut teardown = handle.teardown(any_failed);
    let done = tokio::select! {
        biased;
        forced = signals.nth(2) => Err(forced),
        done = &mut teardown => Ok(done),
    };
    match done {
        Ok(done) => done.map_err(|e| format!("teardown failed: {e}")),
        Err(forced) => force_exit(forced, kept_note(settings).as_str(), teardown),
    }
}
