//! The run's record, kept outside cucumber's run so it survives an interrupt: every finished
//! scenario with its outcome (passed, failed with its class, skipped with its reason), handed
//! at once to the run's `run.json` ([`report::Progress`], rewritten as each scenario finishes),
//! and cucumber's own JUnit and JSON writers fed only whole scenarios. When the run stops early (a
//! signal, or an environment failure every later scenario shares) the runner finishes the
//! record itself: the scenarios that never ran are written as skipped with the reason, and both
//! reports are complete and parseable.
//!
//! The recorder also decides when to stop early: a failed Background or `Given` step whose
//! failure is the environment's, and which every scenario still to run repeats, would only fail
//! again in every one of them.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use cucumber::event::{self, Source};
use cucumber::gherkin;
use cucumber::{Event, Writer, cli, parser, writer};
use happy_istio::evidence::{self, Evidence, ScenarioEvidence, StepEvidence};
use happy_istio::report::{self, FailureClass, FailureRecord, Progress};
pub use happy_istio::report::{ScenarioOutcome as Outcome, ScenarioRecord};
use tokio::sync::watch;

use crate::definitions::gate::{SKIP_STEP_PREFIX, SKIPPED_TAG};
use crate::definitions::world::HappyWorld;

type Ev = parser::Result<Event<event::Cucumber<HappyWorld>>>;

/// An in-memory report file: cucumber's writers write into it, the runner then writes it out
/// whole.
#[derive(Clone, Default)]
pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("report buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Identifies a scenario across the run's own copy of the features and cucumber's events.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    feature: String,
    path: Option<std::path::PathBuf>,
    scenario: String,
    line: usize,
    column: usize,
}

impl Key {
    fn of(feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> Key {
        Key {
            feature: feature.name.clone(),
            path: feature.path.clone(),
            scenario: scenario.name.clone(),
            line: scenario.position.line,
            column: scenario.position.col,
        }
    }
}

/// The failed step of the scenario in progress.
struct StepFailure {
    step: String,
    /// A Background or `Given` step: a precondition later scenarios may share.
    precondition: bool,
    message: String,
}

struct Current {
    key: Key,
    name: String,
    failure: Option<StepFailure>,
    skipped: Option<String>,
    /// What its steps observed so far (the step logs that carry evidence; a log is the last
    /// started step's, see [`Record::step_evidence`]).
    evidence: Vec<StepEvidence>,
    /// When the step under way started (cucumber's event time).
    step_started: Option<std::time::SystemTime>,
}

/// What the recorder holds; shared between cucumber's writer chain and the runner.
pub struct Record {
    junit: writer::JUnit<HappyWorld, Buffer>,
    json: writer::Json<Buffer>,
    junit_out: Buffer,
    json_out: Buffer,
    junit_cli: writer::junit::Cli,
    /// The features as the run feeds them to cucumber, in order.
    planned: Vec<gherkin::Feature>,
    open_features: Vec<Source<gherkin::Feature>>,
    /// The events of the scenario in progress; forwarded when it finishes.
    pending: Vec<Ev>,
    current: Option<Current>,
    done: HashSet<Key>,
    records: Vec<ScenarioRecord>,
    /// Both reports have been ended.
    reports_finished: bool,
    stop: watch::Sender<Option<String>>,
    /// The run's run.json, told of every finished scenario; the runner takes it back at the end.
    progress: Option<Progress>,
}

/// The recorder's half in cucumber's writer chain.
pub(crate) struct Recorder(pub Rc<tokio::sync::Mutex<Record>>);

impl Record {
    /// A record of a run of `planned`; `stop` receives the reason when the run should stop
    /// early.
    pub fn new(planned: Vec<gherkin::Feature>, stop: watch::Sender<Option<String>>) -> Record {
        let junit_out = Buffer::default();
        let json_out = Buffer::default();
        Record {
            junit: writer::JUnit::raw(junit_out.clone(), 0),
            json: writer::Json::raw(json_out.clone()),
            junit_out,
            json_out,
            junit_cli: writer::junit::Cli::default(),
            planned,
            open_features: Vec::new(),
            pending: Vec::new(),
            current: None,
            done: HashSet::new(),
            records: Vec::new(),
            reports_finished: false,
            stop,
            progress: None,
        }
    }

    /// Tell `progress` (the run's run.json) of each scenario as it finishes.
    pub fn with_progress(mut self, progress: Progress) -> Record {
        self.progress = Some(progress);
        self
    }

    /// The run's run.json back, for its last write.
    pub fn take_progress(&mut self) -> Option<Progress> {
        self.progress.take()
    }

    async fn forward(&mut self, ev: Ev) {
        let junit_cli = self.junit_cli;
        self.junit.handle_event(ev.clone(), &junit_cli).await;
        self.json.handle_event(ev, &cli::Empty).await;
    }

    /// Take one of cucumber's events (the writer chain calls this).
    pub async fn handle(&mut self, ev: Ev) {
        use event::{Cucumber, Feature, Rule};
        let Ok(event) = &ev else {
            return self.forward(ev).await;
        };
        match &event.value {
            Cucumber::Feature(f, Feature::Started) => {
                self.open_features.push(f.clone());
                self.forward(ev).await;
            }
            Cucumber::Feature(f, Feature::Finished) => {
                self.open_features.retain(|o| o != f);
                self.forward(ev).await;
            }
            Cucumber::Feature(f, Feature::Scenario(sc, scenario_event))
            | Cucumber::Feature(f, Feature::Rule(_, Rule::Scenario(sc, scenario_event))) => {
                let rule = match &event.value {
                    Cucumber::Feature(_, Feature::Rule(r, _)) => Some(r.clone()),
                    _ => None,
                };
                let (f, sc, scenario_event) = (f.clone(), sc.clone(), scenario_event.clone());
                let at = event.at;
                // What the step recorded goes in as its logs, before its end: Cucumber JSON
                // makes them the step's embeddings, and `scenario_event` keeps them for run.json.
                for log in self.step_evidence(&scenario_event.event, at) {
                    let log_event = event::RetryableScenario {
                        event: event::Scenario::Log(log),
                        retries: scenario_event.retries,
                    };
                    self.scenario_event(&f, &sc, &log_event.event);
                    let mut logged = Event::new(Cucumber::scenario(
                        f.clone(),
                        rule.clone(),
                        sc.clone(),
                        log_event,
                    ));
                    logged.at = at;
                    self.pending.push(Ok(logged));
                }
                self.scenario_event(&f, &sc, &scenario_event.event);
                self.pending.push(ev);
                if matches!(scenario_event.event, event::Scenario::Finished) {
                    for ev in std::mem::take(&mut self.pending) {
                        self.forward(ev).await;
                    }
                    self.scenario_finished();
                }
            }
            // Held back: [`Record::finish`] first adds what never ran (after `--fail-fast`,
            // say), then ends both reports.
            Cucumber::Finished => {}
            _ => self.forward(ev).await,
        }
    }

    /// The evidence a step recorded, as log messages, when `ev` ends a step (`at` its end):
    /// what was recorded between the step's start and now. Scenarios run one at a time, so
    /// that is the step's own.
    fn step_evidence(
        &mut self,
        ev: &event::Scenario<HappyWorld>,
        at: std::time::SystemTime,
    ) -> Vec<String> {
        use event::{Scenario, Step};
        let Some(current) = self.current.as_mut() else {
            return Vec::new();
        };
        match ev {
            Scenario::Step(_, Step::Started) | Scenario::Background(_, Step::Started) => {
                current.step_started = Some(at);
                Vec::new()
            }
            Scenario::Step(_, _) | Scenario::Background(_, _) => {
                let Some(started) = current.step_started.take() else {
                    return Vec::new();
                };
                evidence::take_between(started, at)
                    .into_iter()
                    .take(evidence::MAX_PER_STEP)
                    .map(|e| e.to_message())
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn scenario_event(
        &mut self,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        ev: &event::Scenario<HappyWorld>,
    ) {
        use event::{Hook, Scenario, Step};
        if matches!(ev, Scenario::Started) {
            self.pending.clear();
            self.current = Some(Current {
                key: Key::of(feature, scenario),
                name: format!("{} — {}", feature.name, scenario.name),
                failure: None,
                skipped: None,
                evidence: Vec::new(),
                step_started: None,
            });
            return;
        }
        let Some(current) = self.current.as_mut() else {
            return;
        };
        match ev {
            Scenario::Step(step, Step::Started) | Scenario::Background(step, Step::Started) => {
                current.evidence.push(StepEvidence {
                    step: format!("{}{}", step.keyword, step.value),
                    line: step.position.line,
                    evidence: Vec::new(),
                });
            }
            Scenario::Log(message) => {
                if let (Some(evidence), Some(step)) =
                    (Evidence::from_message(message), current.evidence.last_mut())
                    && step.evidence.len() < evidence::MAX_PER_STEP
                {
                    step.evidence.push(evidence);
                }
            }
            _ => {}
        }
        let failure = match ev {
            Scenario::Background(step, Step::Failed(_, _, _, e)) => {
                Some((step, true, step_error_text(step, e)))
            }
            Scenario::Step(step, Step::Failed(_, _, _, e)) => Some((
                step,
                step.ty == gherkin::StepType::Given,
                step_error_text(step, e),
            )),
            Scenario::Step(step, Step::Skipped) | Scenario::Background(step, Step::Skipped) => {
                if scenario.tags.iter().any(|t| t == SKIPPED_TAG)
                    && let Some(reason) = step.value.strip_prefix(SKIP_STEP_PREFIX)
                {
                    current
                        .skipped
                        .get_or_insert_with(|| reason.trim().to_string());
                }
                None
            }
            Scenario::Hook(which, Hook::Failed(_, info)) => {
                let message = format!("{which} hook failed: {}", panic_text(info));
                current.failure.get_or_insert(StepFailure {
                    step: format!("{which} hook"),
                    precondition: false,
                    message,
                });
                None
            }
            _ => None,
        };
        if let Some((step, precondition, message)) = failure {
            current.failure.get_or_insert(StepFailure {
                step: format!("{}{}", step.keyword, step.value),
                precondition,
                message,
            });
        }
    }

    fn scenario_finished(&mut self) {
        let Some(current) = self.current.take() else {
            return;
        };
        let outcome = match (&current.failure, &current.skipped) {
            (Some(f), _) => Outcome::Failed(FailureRecord {
                scenario: current.name.clone(),
                class: report::class_of_message(&f.message),
                message: f.message.clone(),
                step: Some(f.step.clone()),
            }),
            (None, Some(reason)) => Outcome::Skipped(reason.clone()),
            (None, None) => Outcome::Passed,
        };
        // A retried scenario counts once, as its last attempt ended.
        if !self.done.insert(current.key.clone()) {
            self.records.retain(|r| r.name != current.name);
        }
        let record = ScenarioRecord {
            name: current.name.clone(),
            outcome: outcome.clone(),
        };
        self.records.push(record.clone());
        // run.json follows at once, so that a run killed outright still says how this ended.
        if let Some(progress) = self.progress.as_mut() {
            progress.scenario_evidence(ScenarioEvidence {
                scenario: current.name.clone(),
                steps: current
                    .evidence
                    .into_iter()
                    .filter(|s| !s.evidence.is_empty())
                    .collect(),
            });
        }
        if let Some(progress) = self.progress.as_mut()
            && let Err(e) = progress.scenario_finished(record)
        {
            let _ = writeln!(
                std::io::stderr(),
                "happy-istio: warning: run.json was not brought up to date: {e}"
            );
        }
        if let (Some(failure), Outcome::Failed(record)) = (&current.failure, &outcome)
            && let Some(reason) = self.shared_environment_failure(failure, record)
        {
            let _ = self.stop.send(Some(reason));
        }
    }

    /// Why the run should stop after `failure`, if every scenario still to run would repeat it:
    /// an environment failure of a precondition step that each of them has too.
    fn shared_environment_failure(
        &self,
        failure: &StepFailure,
        record: &FailureRecord,
    ) -> Option<String> {
        if record.class != FailureClass::Environment || !failure.precondition {
            return None;
        }
        let value = failure
            .step
            .split_once(' ')
            .map_or(failure.step.as_str(), |(_, v)| v);
        let remaining = self
            .remaining()
            .into_iter()
            .filter(|(_, s)| !s.tags.iter().any(|t| t == SKIPPED_TAG))
            .map(|(f, s)| {
                f.background
                    .iter()
                    .flat_map(|b| b.steps.iter())
                    .chain(s.steps.iter())
                    .map(|step| step.value.as_str())
                    .collect::<Vec<_>>()
            });
        let count = report::shared_by_every_remaining(value, remaining)?;
        let first_line = record.message.lines().next().unwrap_or_default();
        Some(format!(
            "the environment failed at \"{}\" in {}, a step each of the {count} scenario(s) \
             still to run shares: {first_line}",
            failure.step, record.scenario
        ))
    }

    /// The planned scenarios that have not finished, in order.
    fn remaining(&self) -> Vec<(&gherkin::Feature, &gherkin::Scenario)> {
        self.planned
            .iter()
            .flat_map(|f| {
                f.scenarios
                    .iter()
                    .chain(f.rules.iter().flat_map(|r| r.scenarios.iter()))
                    .map(move |s| (f, s))
            })
            .filter(|(f, s)| !self.done.contains(&Key::of(f, s)))
            .collect()
    }

    /// Finish the record. With `not_run_reason`, each planned scenario that did not finish
    /// (the run stopped, or cucumber's `--fail-fast` ended it) is written as skipped with that
    /// reason. Returns the JUnit XML, the Cucumber JSON
    /// and every scenario's record.
    pub async fn finish(
        &mut self,
        not_run_reason: Option<&str>,
    ) -> (String, String, Vec<ScenarioRecord>) {
        use event::{Cucumber, Scenario};
        // The scenario in progress (if any) did not finish: none of its events are reported.
        self.pending.clear();
        self.current = None;
        if !self.reports_finished {
            for f in std::mem::take(&mut self.open_features) {
                self.forward(Ok(Event::new(Cucumber::feature_finished(f))))
                    .await;
            }
            if let Some(reason) = not_run_reason {
                let mut by_feature: Vec<(gherkin::Feature, Vec<gherkin::Scenario>)> = Vec::new();
                for (f, s) in self.remaining() {
                    match by_feature.last_mut() {
                        Some((last, list)) if last == f => list.push(s.clone()),
                        _ => by_feature.push((f.clone(), vec![s.clone()])),
                    }
                }
                for (feature, scenarios) in by_feature {
                    let f = Source::new(feature.clone());
                    self.forward(Ok(Event::new(Cucumber::feature_started(f.clone()))))
                        .await;
                    for scenario in scenarios {
                        let step = not_run_step(&scenario, reason);
                        let s = Source::new(scenario.clone());
                        let step = Source::new(step);
                        for ev in [
                            Scenario::Started,
                            Scenario::step_started(step.clone()),
                            Scenario::step_skipped(step.clone()),
                            Scenario::Finished,
                        ] {
                            let ev = Cucumber::scenario(
                                f.clone(),
                                None::<Source<gherkin::Rule>>,
                                s.clone(),
                                ev.with_retries(None),
                            );
                            self.forward(Ok(Event::new(ev))).await;
                        }
                        self.done.insert(Key::of(&feature, &scenario));
                        self.records.push(ScenarioRecord {
                            name: format!("{} — {}", feature.name, scenario.name),
                            outcome: Outcome::NotRun(reason.to_string()),
                        });
                    }
                    self.forward(Ok(Event::new(Cucumber::feature_finished(f))))
                        .await;
                }
            }
            self.forward(Ok(Event::new(Cucumber::Finished))).await;
            self.reports_finished = true;
        }
        (
            self.junit_out.text(),
            self.json_out.text(),
            self.records.clone(),
        )
    }
}

/// The step standing for a scenario that never ran, with the reason as its text. Every reason
/// the runner gives already begins "not run: " (the reports show it as it is); one that does
/// not gets it here, so the step never says it twice.
fn not_run_step(scenario: &gherkin::Scenario, reason: &str) -> gherkin::Step {
    gherkin::Step {
        keyword: "Given ".to_string(),
        ty: gherkin::StepType::Given,
        value: if reason.starts_with("not run: ") {
            reason.to_string()
        } else {
            format!("not run: {reason}")
        },
        docstring: None,
        table: None,
        span: scenario.span,
        position: scenario.position,
    }
}

fn panic_text(info: &event::Info) -> String {
    info.downcast_ref::<String>()
        .cloned()
        .or_else(|| info.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(a panic without a message)".to_string())
}

fn step_error_text(step: &gherkin::Step, e: &event::StepError) -> String {
    match e {
        event::StepError::Panic(info) => panic_text(info),
        event::StepError::NotFound => {
            let mut s = String::new();
            let _ = write!(s, "the step \"{}\" matches no definition", step.value);
            s
        }
        other => other.to_string(),
    }
}

impl Writer<HappyWorld> for Recorder {
    type Cli = writer::junit::Cli;

    async fn handle_event(&mut self, ev: Ev, cli: &Self::Cli) {
        let mut record = self.0.lock().await;
        record.junit_cli = *cli;
        record.handle(ev).await;
    }
}

impl writer::NonTransforming for Recorder {}
