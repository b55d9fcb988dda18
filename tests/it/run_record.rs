//! The run's record (steps/runner/recorder.rs) fed cucumber's events for the real features: the
//! stop-early rule (an environment failure of a precondition every later scenario shares stops
//! the run; a claim failure, or one later scenarios do not share, does not), and the reports
//! of a run cut short holding every finished scenario and every unrun one, with the reason.

use std::path::PathBuf;
use std::sync::Arc;

use crate::recorder::{Outcome, Record};
use cucumber::Event;
use cucumber::event::{self, Cucumber, Source, StepError};
use cucumber::gherkin::{self, GherkinEnv};
use tokio::sync::watch;

fn features() -> Vec<gherkin::Feature> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("features");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "feature"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| gherkin::Feature::parse_path(p, GherkinEnv::default()).unwrap())
        .collect()
}

fn feature_of(features: &[gherkin::Feature], claim: &str) -> (gherkin::Feature, gherkin::Scenario) {
    features
        .iter()
        .find_map(|f| {
            f.scenarios
                .iter()
                .find(|s| s.tags.iter().any(|t| t == claim))
                .map(|s| (f.clone(), s.clone()))
        })
        .unwrap()
}

/// Feed the record one scenario whose first Background step fails with `message`.
async fn background_fails(
    record: &mut Record,
    f: &Source<gherkin::Feature>,
    s: gherkin::Scenario,
    message: &str,
) {
    let step = Source::new(f.background.as_ref().unwrap().steps[0].clone());
    let s = Source::new(s);
    let error = StepError::Panic(Arc::new(message.to_string()));
    for ev in [
        event::Scenario::Started,
        event::Scenario::background_step_started(step.clone()),
        event::Scenario::background_step_failed(step.clone(), None, None, None, error),
        event::Scenario::Finished,
    ] {
        let ev = Cucumber::scenario(
            f.clone(),
            None::<Source<gherkin::Rule>>,
            s.clone(),
            ev.with_retries(None),
        );
        record.handle(Ok(Event::new(ev))).await;
    }
}

async fn passes(record: &mut Record, f: &Source<gherkin::Feature>, s: gherkin::Scenario) {
    let s = Source::new(s);
    for ev in [event::Scenario::Started, event::Scenario::Finished] {
        let ev = Cucumber::scenario(
            f.clone(),
            None::<Source<gherkin::Rule>>,
            s.clone(),
            ev.with_retries(None),
        );
        record.handle(Ok(Event::new(ev))).await;
    }
}

/// From the ingress feature on, every scenario's Background deploys the services: an
/// environment failure there stops the run, and the reports still hold every scenario.
#[tokio::test]
async fn an_environment_failure_every_later_scenario_shares_stops_the_run() {
    let _processes = crate::processes::shared_async().await;
    let all = features();
    let (ingress, c08) = feature_of(&all, "C08");
    let (_, c09) = feature_of(&all, "C09");
    let planned: Vec<gherkin::Feature> = all
        .iter()
        .skip_while(|f| f.name != ingress.name)
        // The workshop's chapters: the deviation checks (07) share none of their Backgrounds.
        .filter(|f| {
            !f.scenarios
                .iter()
                .all(|s| s.tags.iter().any(|t| t == "deviation"))
        })
        .cloned()
        .collect();
    let total: usize = planned.iter().map(|f| f.scenarios.len()).sum();
    let (tx, rx) = watch::channel(None);
    let mut record = Record::new(planned.clone(), tx);
    let f = Source::new(planned[0].clone());
    record.handle(Ok(Event::new(Cucumber::Started))).await;
    record
        .handle(Ok(Event::new(Cucumber::feature_started(f.clone()))))
        .await;

    // A claim failure of the same step does not stop the run: the cluster answered.
    background_fails(&mut record, &f, c08.clone(), "claim failed: no").await;
    assert_eq!(*rx.borrow(), None);

    background_fails(
        &mut record,
        &f,
        c09.clone(),
        "environment failed: image rinormaloku/happy-servic:latest cannot be pulled",
    )
    .await;
    let reason = rx.borrow().clone().expect("the run stops");
    assert!(
        reason.contains("Given Istio is installed") && reason.contains("cannot be pulled"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("{} scenario(s)", total - 2)),
        "{reason}"
    );

    let (junit, json, records) = record.finish(Some("not run: the run stopped early")).await;
    let summary = happy_istio::report::summarize(&records);
    assert_eq!(
        (summary.failed, summary.not_run),
        (2, total - 2),
        "{records:?}"
    );
    let failures: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(f) => Some(f.class),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        [
            happy_istio::report::FailureClass::Claim,
            happy_istio::report::FailureClass::Environment
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    // A scenario whose Background failed has only its "background" element.
    let elements: std::collections::BTreeSet<(String, u64)> = json
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["elements"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        elements.len(),
        total,
        "every planned scenario is in the JSON report"
    );
    assert_eq!(junit.matches("<testcase").count(), total, "{junit}");
    assert!(junit.contains("not run: the run stopped early"));
    assert!(!junit.contains("not run: not run"), "{junit}");
    assert!(!json.to_string().contains("not run: not run"), "{json}");
}

/// C02's own `Given` deploys a set of files C04 onwards do not: its environment failure is not
/// shared, and the run goes on.
#[tokio::test]
async fn a_failure_later_scenarios_do_not_share_does_not_stop_the_run() {
    let _processes = crate::processes::shared_async().await;
    let all = features();
    let (deploy, c01) = feature_of(&all, "C01");
    let (tx, rx) = watch::channel(None);
    let mut record = Record::new(all.clone(), tx);
    let f = Source::new(deploy.clone());
    record
        .handle(Ok(Event::new(Cucumber::feature_started(f.clone()))))
        .await;
    passes(&mut record, &f, c01).await;
    // The Background of the deploy feature ("the namespace istioinaction") is not in the
    // install feature's C05: not shared by every later scenario.
    let (_, c02) = feature_of(&all, "C02");
    background_fails(&mut record, &f, c02, "environment failed: nodes not ready").await;
    assert_eq!(*rx.borrow(), None);
    let (_, _, records) = record.finish(None).await;
    assert_eq!(happy_istio::report::summarize(&records).passed, 1);
}

/// The record keeps the run's run.json current: after each finished scenario it holds that
/// scenario's outcome (the failed step named) while the run is still in progress, so a run
/// killed outright leaves them.
#[tokio::test]
async fn each_finished_scenario_reaches_run_json_at_once() {
    let _processes = crate::processes::shared_async().await;
    let all = features();
    let (deploy, c01) = feature_of(&all, "C01");
    let (_, c02) = feature_of(&all, "C02");
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = [&c01, &c02]
        .iter()
        .map(|s| format!("{} — {}", deploy.name, s.name))
        .collect();
    let progress = happy_istio::report::Progress::start(
        dir.path(),
        happy_istio::report::RunInfo::default(),
        names.clone(),
    )
    .unwrap();
    let (tx, _rx) = watch::channel(None);
    let mut record = Record::new(all.clone(), tx).with_progress(progress);
    let f = Source::new(deploy.clone());
    let run_json = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap()
    };
    record
        .handle(Ok(Event::new(Cucumber::feature_started(f.clone()))))
        .await;
    passes(&mut record, &f, c01).await;
    let run = run_json();
    assert_eq!(run["state"], "in-progress");
    assert_eq!(run["passed"], serde_json::json!([names[0]]));
    assert_eq!(run["summary"]["not_run"], 1);
    background_fails(&mut record, &f, c02, "environment failed: nodes not ready").await;
    let run = run_json();
    assert_eq!(run["failures"][0]["scenario"], names[1].as_str());
    assert_eq!(run["failures"][0]["class"], "environment");
    assert!(
        run["failures"][0]["step"]
            .as_str()
            .unwrap()
            .contains("the namespace istioinaction"),
        "{run}"
    );
    assert_eq!(run["summary"]["not_run"], 0);
    assert!(record.take_progress().is_some());
}

/// What a step records (`happy_istio::evidence`) lands on that step in run.json, by the time
/// between the step's start and end events: a failed step's included, nothing shared between
/// steps, and nothing recorded before a step began.
#[tokio::test]
async fn each_steps_evidence_lands_on_that_step_in_run_json() {
    let _processes = crate::processes::shared_async().await;
    let all = features();
    let (deploy, c01) = feature_of(&all, "C01");
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{} — {}", deploy.name, c01.name);
    let progress = happy_istio::report::Progress::start(
        dir.path(),
        happy_istio::report::RunInfo::default(),
        vec![name.clone()],
    )
    .unwrap();
    let (tx, _rx) = watch::channel(None);
    let mut record = Record::new(all.clone(), tx).with_progress(progress);
    let f = Source::new(deploy.clone());
    let first = Source::new(c01.steps[0].clone());
    let second = Source::new(c01.steps[1].clone());
    let s = Source::new(c01.clone());
    happy_istio::evidence::collect();
    let scenario = |ev: event::Scenario<_>| {
        Ok(Event::new(Cucumber::scenario(
            f.clone(),
            None::<Source<gherkin::Rule>>,
            s.clone(),
            ev.with_retries(None),
        )))
    };
    record
        .handle(Ok(Event::new(Cucumber::feature_started(f.clone()))))
        .await;
    happy_istio::evidence::record("before any step", "no step's");
    record.handle(scenario(event::Scenario::Started)).await;
    record
        .handle(scenario(event::Scenario::step_started(first.clone())))
        .await;
    happy_istio::evidence::record("the first step's", "a");
    record
        .handle(scenario(event::Scenario::step_skipped(first.clone())))
        .await;
    record
        .handle(scenario(event::Scenario::step_started(second.clone())))
        .await;
    happy_istio::evidence::record("the second step's", "b");
    happy_istio::evidence::record("the second step's", "c");
    let error = StepError::Panic(Arc::new("claim failed: not so".to_string()));
    record
        .handle(scenario(event::Scenario::step_failed(
            second.clone(),
            None,
            None,
            None,
            error,
        )))
        .await;
    record.handle(scenario(event::Scenario::Finished)).await;
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    let evidence = &run["evidence"][0];
    assert_eq!(evidence["scenario"], name.as_str(), "{run}");
    let steps = evidence["steps"].as_array().unwrap();
    let texts = |i: usize| -> Vec<&str> {
        steps[i]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap())
            .collect()
    };
    assert_eq!(steps.len(), 2, "{run}");
    assert_eq!(steps[0]["line"], c01.steps[0].position.line);
    assert_eq!(texts(0), ["a"]);
    assert_eq!(steps[1]["line"], c01.steps[1].position.line);
    assert_eq!(texts(1), ["b", "c"], "the failed step's evidence is kept");
}
