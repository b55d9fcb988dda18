//! Skipping what a cluster cannot do, visibly. A scenario tagged with a capability the cluster
//! lacks (`@istio`, `@prometheus`, `@grafana`, `@kiali`, `@capture`, `@egress-gateway`; on the feature or the
//! scenario) gets a first step that names the reason and matches no definition, so cucumber
//! reports the scenario as skipped, with the reason in the output and in every report.
//! Scenarios skipped this way carry the tag [`SKIPPED_TAG`]; any other skipped step is a
//! failure (see the runner), so a typo in a step cannot pass for a skip. A deviation re-check
//! (`@deviation @<id>`) whose premise is not this cluster's is skipped the same way, with the
//! reason `crates/claims/src/deviations.rs` gives; the claim scenarios carrying the deviation's tag are not.
//!
//! A skipped scenario must not run its feature's Background (a Background that breaks would
//! turn "cannot run here" into "failed"): the gate splits such scenarios off into a copy of the
//! feature without Background — same name, path and tags, so every report names them as
//! before — which runs first.

use std::collections::BTreeMap;

use cucumber::gherkin;

/// The tag the gate adds to the scenarios it skips.
pub const SKIPPED_TAG: &str = "skipped-here";

/// The text of the step that skips a scenario.
pub const SKIP_STEP_PREFIX: &str = "this cluster cannot run this scenario:";

/// Which capability tags this cluster lacks, and why.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    missing: BTreeMap<String, String>,
    /// Deviation re-checks that do not apply here: deviation id → reason.
    rechecks: BTreeMap<String, String>,
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
            rechecks: BTreeMap::new(),
        }
    }

    /// The same gate, also skipping the re-check scenarios (`@deviation @<id>`) of these
    /// deviations, each with its reason.
    pub fn with_rechecks_not_applicable(
        mut self,
        rechecks: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.rechecks.extend(rechecks);
        self
    }

    fn reason(&self, tags: &[String]) -> Option<String> {
        let is_recheck = tags.iter().any(|t| t == "deviation");
        let reasons: Vec<String> = tags
            .iter()
            .filter_map(|t| self.missing.get(t).map(|r| format!("@{t}: {r}")))
            .chain(tags.iter().filter(|_| is_recheck).filter_map(|t| {
                self.rechecks
                    .get(t)
                    .map(|r| format!("@deviation @{t}: {r}"))
            }))
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Rewrite a feature: skipped scenarios get the skip step first and move to a copy of the
    /// feature without Background, returned first; the others stay, with the Background, in
    /// the second. A feature with no skipped scenario comes back whole.
    pub fn apply(&self, feature: gherkin::Feature) -> (Vec<gherkin::Feature>, Vec<Skipped>) {
        let mut skipped = Vec::new();
        let feature_tags = feature.tags.clone();
        let mut gated = Vec::new();
        let mut runnable = Vec::new();
        let mut feature = feature;
        for mut scenario in std::mem::take(&mut feature.scenarios) {
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
                    gated.push(scenario);
                }
                None => runnable.push(scenario),
            }
        }
        if gated.is_empty() {
            feature.scenarios = runnable;
            return (vec![feature], skipped);
        }
        let mut out = vec![gherkin::Feature {
            background: None,
            scenarios: gated,
            rules: Vec::new(),
            ..feature.clone()
        }];
        if !runnable.is_empty() || !feature.rules.is_empty() {
            feature.scenarios = runnable;
            out.push(feature);
        }
        (out, skipped)
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
