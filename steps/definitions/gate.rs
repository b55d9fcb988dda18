//! Skipping what a cluster cannot do, visibly. A scenario tagged with a capability the cluster
//! lacks (`@istio`, `@prometheus`, `@grafana`, `@kiali`, `@capture`; on the feature or the
//! scenario) gets a first step that names the reason and matches no definition, so cucumber
//! reports the scenario as skipped, with the reason in the output and in every report.
//! Scenarios skipped this way carry the tag [`SKIPPED_TAG`]; any other skipped step is a
//! failure (see the runner), so a typo in a step cannot pass for a skip.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use cucumber::gherkin;
use cucumber::parser::{Parser, Result as ParseResult};
use futures::{Stream, StreamExt};

/// The tag the gate adds to the scenarios it skips.
pub const SKIPPED_TAG: &str = "skipped-here";

/// The text of the step that skips a scenario.
pub const SKIP_STEP_PREFIX: &str = "this cluster cannot run this scenario:";

/// Which capability tags this cluster lacks, and why.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    missing: BTreeMap<String, String>,
}

/// A scenario the gate skipped: its feature, name, tags and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub feature: String,
    pub scenario: String,
    pub reason: String,
}

impl Gate {
    /// A gate from `(tag, Some(reason))` for each missing capability; `None` means available.
    pub fn new(capabilities: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        Gate {
            missing: capabilities
                .into_iter()
                .filter_map(|(tag, reason)| reason.map(|r| (tag, r)))
                .collect(),
        }
    }

    fn reason(&self, tags: &[String]) -> Option<String> {
        let reasons: Vec<String> = tags
            .iter()
            .filter_map(|t| self.missing.get(t).map(|r| format!("@{t}: {r}")))
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Rewrite a feature: skipped scenarios get the skip step first. When every scenario of a
    /// feature is skipped, its Background is dropped, so nothing runs.
    pub fn apply(&self, mut feature: gherkin::Feature) -> (gherkin::Feature, Vec<Skipped>) {
        let mut skipped = Vec::new();
        let feature_tags = feature.tags.clone();
        let mut all_skipped = !feature.scenarios.is_empty();
        for scenario in &mut feature.scenarios {
            let tags: Vec<String> = feature_tags
                .iter()
                .chain(scenario.tags.iter())
                .cloned()
                .collect();
            match self.reason(&tags) {
                Some(reason) => {
                    let template = scenario.steps.first().cloned();
                    if let Some(template) = template {
                        scenario.steps.insert(0, skip_step(&template, &reason));
                    }
                    scenario.tags.push(SKIPPED_TAG.to_string());
                    skipped.push(Skipped {
                        feature: feature.name.clone(),
                        scenario: scenario.name.clone(),
                        reason,
                    });
                }
                None => all_skipped = false,
            }
        }
        if all_skipped {
            // Nothing of this feature runs here, so neither does its Background: dropping it
            // leaves each scenario with the skip step and its reason as its only outcome (a
            // skipped Background step would read as "Background step failed").
            feature.background = None;
        }
        (feature, skipped)
    }
}

fn skip_step(template: &gherkin::Step, reason: &str) -> gherkin::Step {
    gherkin::Step {
        keyword: "Given ".to_string(),
        ty: gherkin::StepType::Given,
        value: format!("{SKIP_STEP_PREFIX} {reason}"),
        docstring: None,
        table: None,
        ..template.clone()
    }
}

/// A parser that passes every feature of `inner` through a [`Gate`] and reports what it
/// skipped to `on_skip`.
pub struct Gated<P> {
    pub inner: P,
    pub gate: Arc<Gate>,
    pub on_skip: Arc<dyn Fn(&Skipped) + Send + Sync>,
}

impl<I, P> Parser<I> for Gated<P>
where
    P: Parser<I>,
{
    type Cli = P::Cli;
    type Output = Pin<Box<dyn Stream<Item = ParseResult<gherkin::Feature>>>>;

    fn parse(self, input: I, cli: Self::Cli) -> Self::Output {
        let gate = self.gate;
        let on_skip = self.on_skip;
        Box::pin(self.inner.parse(input, cli).map(move |feature| {
            feature.map(|f| {
                let (f, skipped) = gate.apply(f);
                skipped.iter().for_each(|s| on_skip(s));
                f
            })
        }))
    }
}
