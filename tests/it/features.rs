//! The features are the workshop's living documentation and the suite's contract: every step
//! must match exactly one definition (no undefined, no ambiguous step), every claim C01–C22
//! must have a scenario, and every scenario must state exactly one claim — except the
//! deviation re-checks (`@deviation`), which each name exactly one deviation of
//! `crates/claims/src/deviations.rs` instead.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::definitions::gate::{Gate, SKIP_STEP_PREFIX, SKIPPED_TAG};
use crate::definitions::world::HappyWorld;
use cucumber::World;
use cucumber::gherkin::{self, GherkinEnv};

fn features() -> Vec<gherkin::Feature> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("features");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("features/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "feature"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no feature files in {}", dir.display());
    paths
        .iter()
        .map(|p| {
            gherkin::Feature::parse_path(p, GherkinEnv::default())
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()))
        })
        .collect()
}

fn claim_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| {
            t.len() == 3 && t.starts_with('C') && t[1..].chars().all(|c| c.is_ascii_digit())
        })
        .cloned()
        .collect()
}

#[test]
fn every_step_matches_exactly_one_definition() {
    let _processes = crate::processes::shared();
    let steps = HappyWorld::collection();
    let mut problems = Vec::new();
    for feature in features() {
        let all = feature
            .background
            .iter()
            .flat_map(|b| b.steps.iter())
            .chain(feature.scenarios.iter().flat_map(|s| s.steps.iter()));
        for step in all {
            match steps.find(step) {
                Ok(Some(_)) => {}
                Ok(None) => problems.push(format!(
                    "{}: undefined: {} {}",
                    feature.name, step.keyword, step.value
                )),
                Err(e) => problems.push(format!(
                    "{}: ambiguous: {} {} ({e:?})",
                    feature.name, step.keyword, step.value
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "steps without exactly one definition:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_claim_has_a_scenario_and_every_scenario_one_claim() {
    let _processes = crate::processes::shared();
    let mut seen = BTreeSet::new();
    for feature in features() {
        assert!(
            claim_tags(&feature.tags).is_empty(),
            "{}: claim tags belong on scenarios",
            feature.name
        );
        for scenario in &feature.scenarios {
            if scenario.tags.iter().any(|t| t == "deviation") {
                continue;
            }
            let claims = claim_tags(&scenario.tags);
            assert_eq!(
                claims.len(),
                1,
                "{}: scenario {:?} must state exactly one claim, has {claims:?}",
                feature.name,
                scenario.name
            );
            seen.extend(claims);
        }
    }
    let missing: Vec<String> = (1..=22)
        .map(|n| format!("C{n:02}"))
        .filter(|c| !seen.contains(c))
        .collect();
    assert!(missing.is_empty(), "claims without a scenario: {missing:?}");
}

fn deviation_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| t.starts_with("D-"))
        .cloned()
        .collect()
}

/// The deviation list and the features agree: each deviation tag names a deviation; the claims
/// a deviation lists are exactly the claims of the scenarios carrying its tag (on the scenario
/// or its feature), so Cucumber's output shows the deviation on every scenario it affects; and
/// each deviation re-checked by a scenario has exactly one `@deviation` scenario, with no claim.
#[test]
fn deviations_and_features_agree() {
    let _processes = crate::processes::shared();
    use happy_istio::deviations::{DEVIATIONS, Recheck, find};
    let mut claims_by_tag: std::collections::BTreeMap<String, BTreeSet<String>> =
        Default::default();
    let mut rechecks: std::collections::BTreeMap<String, usize> = Default::default();
    for feature in features() {
        for scenario in &feature.scenarios {
            let tags: Vec<String> = feature.tags.iter().chain(&scenario.tags).cloned().collect();
            let ids = deviation_tags(&tags);
            for id in &ids {
                let d = find(id).unwrap_or_else(|| {
                    panic!(
                        "{:?}: @{id} is not a deviation in crates/claims/src/deviations.rs",
                        scenario.name
                    )
                });
                assert_eq!(d.id, id, "tags spell the id exactly");
            }
            if scenario.tags.iter().any(|t| t == "deviation") {
                let own = deviation_tags(&scenario.tags);
                assert_eq!(
                    own.len(),
                    1,
                    "{:?} must re-check exactly one deviation",
                    scenario.name
                );
                assert!(claim_tags(&scenario.tags).is_empty(), "{:?}", scenario.name);
                *rechecks.entry(own[0].clone()).or_default() += 1;
                continue;
            }
            // Where a scenario does what a deviation changes, it carries the deviation's tag.
            for (id, step_text) in [
                ("D-legacy-image", "the legacy client"),
                ("D-ingress-address", "through the ingress gateway"),
                ("D-capture-command", "I capture the traffic"),
            ] {
                let does_it = scenario.steps.iter().any(|s| s.value.contains(step_text));
                assert!(
                    !does_it || ids.iter().any(|t| t == id),
                    "{:?} has a step {step_text:?} but no tag @{id}",
                    scenario.name
                );
            }
            for id in ids {
                claims_by_tag
                    .entry(id)
                    .or_default()
                    .extend(claim_tags(&tags));
            }
        }
    }
    for d in DEVIATIONS {
        let listed: BTreeSet<String> = d.claims.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            claims_by_tag.get(d.id).cloned().unwrap_or_default(),
            listed,
            "{}: its claims and the scenarios tagged @{} differ",
            d.id,
            d.id
        );
        let want = usize::from(d.recheck == Recheck::Scenario);
        assert_eq!(
            rechecks.get(d.id).copied().unwrap_or(0),
            want,
            "{}: re-check scenarios tagged @deviation @{}",
            d.id,
            d.id
        );
    }
}

#[test]
fn the_gate_skips_with_the_reason_and_nothing_else() {
    let _processes = crate::processes::shared();
    let gate = Gate::new([
        ("istio".to_string(), None),
        (
            "kiali".to_string(),
            Some("Kiali does not run here".to_string()),
        ),
    ]);
    let steps = HappyWorld::collection();
    let mut skipped_claims = BTreeSet::new();
    for feature in features() {
        let (parts, skipped) = gate.apply(feature.clone());
        let after_all: Vec<&gherkin::Scenario> =
            parts.iter().flat_map(|p| p.scenarios.iter()).collect();
        assert_eq!(after_all.len(), feature.scenarios.len(), "{}", feature.name);
        for before in &feature.scenarios {
            let after = after_all
                .iter()
                .find(|s| s.name == before.name && s.position == before.position)
                .expect("every scenario is kept, under its name");
            let marked = after.tags.iter().any(|t| t == SKIPPED_TAG);
            let wants_kiali = before
                .tags
                .iter()
                .chain(&feature.tags)
                .any(|t| t == "kiali");
            assert_eq!(marked, wants_kiali, "{}", before.name);
            if marked {
                let first = &after.steps[0];
                assert!(
                    first.value.starts_with(SKIP_STEP_PREFIX)
                        && first.value.contains("Kiali does not run here")
                );
                assert!(
                    steps.find(first).expect("not ambiguous").is_none(),
                    "the skip step must match no definition"
                );
                skipped_claims.extend(claim_tags(&before.tags));
            } else {
                assert_eq!(before.steps, after.steps);
            }
        }
        assert_eq!(
            skipped.len(),
            after_all
                .iter()
                .filter(|s| s.tags.iter().any(|t| t == SKIPPED_TAG))
                .count()
        );
        for part in &parts {
            // Reports name the parts as the feature they came from.
            assert_eq!(
                (&part.name, &part.path, &part.tags),
                (&feature.name, &feature.path, &feature.tags)
            );
            let marked = part
                .scenarios
                .iter()
                .filter(|s| s.tags.iter().any(|t| t == SKIPPED_TAG))
                .count();
            // A part is all skipped (and then has no Background) or all runnable.
            assert!(
                marked == 0 || marked == part.scenarios.len(),
                "{}",
                feature.name
            );
            if marked > 0 {
                assert!(part.background.is_none(), "{}", feature.name);
            } else {
                assert_eq!(part.background, feature.background, "{}", feature.name);
            }
        }
    }
    assert_eq!(
        skipped_claims,
        BTreeSet::from(["C12".to_string(), "C14".to_string(), "C22".to_string()])
    );
}

#[test]
fn a_feature_whose_every_scenario_is_skipped_skips_its_background_too() {
    let _processes = crate::processes::shared();
    let gate = Gate::new([("istio".to_string(), Some("no Istio here".to_string()))]);
    for feature in features() {
        let needs_istio = feature.tags.iter().any(|t| t == "istio");
        let (parts, _) = gate.apply(feature.clone());
        if needs_istio {
            assert_eq!(parts.len(), 1, "{}", feature.name);
            for scenario in &parts[0].scenarios {
                assert!(
                    scenario.steps[0].value.starts_with(SKIP_STEP_PREFIX),
                    "{}: {}",
                    feature.name,
                    scenario.name
                );
            }
        }
        for part in &parts {
            let all_skipped = part
                .scenarios
                .iter()
                .all(|s| s.tags.iter().any(|t| t == SKIPPED_TAG));
            if all_skipped {
                assert!(part.background.is_none(), "{}", feature.name);
            } else {
                assert_eq!(part.background, feature.background, "{}", feature.name);
            }
        }
    }
}

/// On a cluster without Prometheus, the observability feature runs C10 and C11 with its
/// Background, but the gated C12/C13 scenarios must be skipped before any Background step runs:
/// they are split off, without the Background, and come first.
#[test]
fn a_skipped_scenario_never_runs_its_features_background() {
    let _processes = crate::processes::shared();
    let gate = Gate::new([
        ("istio".to_string(), None),
        (
            "prometheus".to_string(),
            Some("no Prometheus here".to_string()),
        ),
        ("grafana".to_string(), Some("no Grafana here".to_string())),
        ("kiali".to_string(), Some("no Kiali here".to_string())),
    ]);
    let observability = features()
        .into_iter()
        .find(|f| {
            f.scenarios
                .iter()
                .any(|s| s.tags.iter().any(|t| t == "C10"))
        })
        .expect("the feature of C10");
    assert!(observability.background.is_some());
    let (parts, skipped) = gate.apply(observability.clone());
    assert_eq!(parts.len(), 2);
    let (gated, runnable) = (&parts[0], &parts[1]);
    assert!(gated.background.is_none());
    assert_eq!(runnable.background, observability.background);
    let claims = |f: &gherkin::Feature| -> Vec<String> {
        f.scenarios
            .iter()
            .flat_map(|s| claim_tags(&s.tags))
            .collect()
    };
    assert_eq!(claims(gated), ["C12", "C12", "C13", "C13", "C14"]);
    assert_eq!(claims(runnable), ["C10", "C11"]);
    assert_eq!(skipped.len(), 5);
}

/// On an existing cluster the D-ingress-address re-check is skipped with the reason (its
/// premise is kind's), while the claims carrying @D-ingress-address still run; elsewhere the
/// re-check runs.
#[test]
fn a_deviation_recheck_is_skipped_where_its_premise_is_not_the_clusters() {
    let _processes = crate::processes::shared();
    use happy_istio::deviations::rechecks_not_applicable;
    use happy_istio::provision::ClusterKind;
    let gate_on = |kind: ClusterKind| {
        Gate::new([("istio".to_string(), None)]).with_rechecks_not_applicable(
            rechecks_not_applicable(kind)
                .into_iter()
                .map(|(id, why)| (id.to_string(), why.to_string())),
        )
    };
    let skipped_on = |kind: ClusterKind| -> Vec<(String, Vec<String>)> {
        let gate = gate_on(kind);
        features()
            .into_iter()
            .flat_map(|f| gate.apply(f).1)
            .map(|s| (s.scenario, vec![s.reason]))
            .collect()
    };
    let existing = skipped_on(ClusterKind::Existing);
    assert_eq!(existing.len(), 1, "{existing:?}");
    assert!(
        existing[0].0.contains("ingress address"),
        "the re-check scenario: {existing:?}"
    );
    assert!(
        existing[0].1[0].starts_with("@deviation @D-ingress-address: ")
            && existing[0].1[0].contains("premise"),
        "{existing:?}"
    );
    for kind in [ClusterKind::Kind, ClusterKind::K3s, ClusterKind::Sandbox] {
        assert!(skipped_on(kind).is_empty(), "{kind}");
    }
}

#[test]
fn file_lists_split_like_the_workshop_writes_them() {
    let _processes = crate::processes::shared();
    use crate::definitions::parameters::Files;
    let Ok(Files(files)) = "a.yaml, b.yaml and c.yaml".parse();
    assert_eq!(files, ["a.yaml", "b.yaml", "c.yaml"]);
    let Ok(Files(one)) = "peer-auth-strict.yaml".parse();
    assert_eq!(one, ["peer-auth-strict.yaml"]);
}

/// The stop-early rule on the real features: an environment failure of the shared deployment
/// step in the ingress feature's Background repeats in every later scenario (the run stops),
/// while one in C02's own `Given` does not (C04 onwards apply another set of files).
#[test]
fn a_shared_precondition_is_one_every_later_scenario_repeats() {
    let _processes = crate::processes::shared();
    use happy_istio::report::shared_by_every_remaining;
    let all: Vec<(String, Vec<String>)> = features()
        .iter()
        .flat_map(|f| {
            f.scenarios.iter().map(move |s| {
                let steps = f
                    .background
                    .iter()
                    .flat_map(|b| b.steps.iter())
                    .chain(s.steps.iter())
                    .map(|st| st.value.clone())
                    .collect();
                (claim_tags(&s.tags).join(""), steps)
            })
        })
        .collect();
    let after = |claim: &str| -> Vec<Vec<&str>> {
        let at = all.iter().position(|(c, _)| c == claim).unwrap();
        all[at + 1..]
            .iter()
            .map(|(_, steps)| steps.iter().map(String::as_str).collect())
            .collect()
    };
    let deployed =
        "services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied";
    // With the deviation checks (07, no claim tag) selected too, the run goes on: the first of
    // them deploys none of the services and would not repeat the failure.
    assert_eq!(shared_by_every_remaining(deployed, after("C08")), None);
    let claims_only = |claim: &str| -> Vec<Vec<&str>> {
        let at = all.iter().position(|(c, _)| c == claim).unwrap();
        all[at + 1..]
            .iter()
            .filter(|(c, _)| !c.is_empty())
            .map(|(_, steps)| steps.iter().map(String::as_str).collect())
            .collect()
    };
    assert!(shared_by_every_remaining(deployed, claims_only("C08")).is_some());
    assert!(shared_by_every_remaining("Istio is installed", claims_only("C08")).is_some());
    let c02 = "services-a.yaml, services-b.yaml and services-c-v1.yaml are applied";
    assert_eq!(shared_by_every_remaining(c02, after("C02")), None);
}
