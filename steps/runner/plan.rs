//! What the run will do, decided before anything is made: cucumber's command line (with the
//! suite's own help on the environment), the settings and timeouts, the deviations from the
//! workshop announced, and the scenarios the filters select. A bad flag, a bad setting or a
//! filter that selects nothing ends the run here, with nothing provisioned and no report
//! touched. Once the cluster is known, [`gate`] says which planned scenarios it cannot run and
//! why.

use std::ffi::OsString;
use std::process::ExitCode;

use cucumber::gherkin;
use cucumber::parser;
use cucumber::tag::Ext as _;
use futures::StreamExt as _;
use happy_istio::deviations::Deviations;
use happy_istio::provision::{Capabilities, ClusterHandle, ClusterKind};
use happy_istio::settings::{self, Settings};
use happy_istio::timeouts::Timeouts;

use super::{HappyOpts, RunError, features_dir, say};
use crate::definitions::gate::{Gate, Skipped};

/// The run as planned: what it is configured with and what it runs.
pub(super) struct Plan {
    pub(super) settings: Settings,
    pub(super) timeouts: Timeouts,
    pub(super) deviations: Deviations,
    pub(super) selection: Selection,
}

/// The scenarios the command line selects, and the command line cucumber is then given.
pub(super) struct Selection {
    pub(super) opts: HappyOpts,
    /// The selected features, each holding only its selected scenarios (and rules).
    pub(super) features: Vec<gherkin::Feature>,
}

/// How planning ended: a run to make, or the exit code of one that ends here.
pub(super) enum Planned {
    Run(Box<Plan>),
    Exit(ExitCode),
}

/// Plan the run from its command line `args` (the program name first) and the environment.
pub(super) async fn plan(args: impl IntoIterator<Item = OsString>) -> Result<Planned, RunError> {
    let (opts, filter) = match parse_cli(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` are not errors; clap prints them on stdout.
            let code = if e.use_stderr() { 2 } else { 0 };
            return Ok(Planned::Exit(ExitCode::from(code)));
        }
    };
    check_options(&opts)?;
    let settings = Settings::from_env().map_err(RunError::Settings)?;
    let timeouts = Timeouts::from_env().map_err(|e| RunError::Settings(e.into()))?;
    // Every departure from the workshop's text, announced before anything runs.
    let deviations = Deviations::resolve(&settings);
    eprint!("{deviations}");
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    for warning in settings::unknown_variables(names.iter().map(String::as_str)) {
        say(format!("happy-istio: warning: {warning}"));
    }
    let features = filter_features(&opts, read_features(&opts).await?);
    if scenario_count(&features) == 0 {
        say(nothing_selected(filter.as_deref()));
        return Ok(Planned::Exit(ExitCode::FAILURE));
    }
    Ok(Planned::Run(Box::new(Plan {
        settings,
        timeouts,
        deviations,
        selection: Selection { opts, features },
    })))
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
fn check_options(opts: &HappyOpts) -> Result<(), RunError> {
    match opts.runner.concurrency.filter(|n| *n > 1) {
        Some(n) => Err(RunError::Concurrency(n)),
        None => Ok(()),
    }
}

/// The features as cucumber would read them (`--input` honoured); a feature that does not
/// parse is an error naming it.
async fn read_features(opts: &HappyOpts) -> Result<Vec<gherkin::Feature>, RunError> {
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
    if errors.is_empty() {
        Ok(features)
    } else {
        Err(RunError::Features(errors))
    }
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

/// `features` with only the scenarios the command line selects; rules and features left with
/// none are dropped.
fn filter_features(opts: &HappyOpts, features: Vec<gherkin::Feature>) -> Vec<gherkin::Feature> {
    features
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
        .collect()
}

pub(super) fn scenario_count(features: &[gherkin::Feature]) -> usize {
    features
        .iter()
        .map(|f| f.scenarios.len() + f.rules.iter().map(|r| r.scenarios.len()).sum::<usize>())
        .sum()
}

/// Every planned scenario as the reports name it: `Feature — Scenario`, in order.
pub(super) fn all_names(features: &[gherkin::Feature]) -> Vec<String> {
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

/// What a run whose filter selects nothing says (`filter` as written on the command line).
fn nothing_selected(filter: Option<&str>) -> String {
    format!(
        "happy-istio: {} selects no scenario of {}; nothing was provisioned",
        filter.unwrap_or("no filter"),
        features_dir().display()
    )
}

/// The planned features as this cluster runs them: each scenario it cannot run is kept, marked
/// skipped with the reason (see `definitions::gate`), and said on stderr.
pub(super) fn gate(
    features: Vec<gherkin::Feature>,
    handle: &dyn ClusterHandle,
) -> Vec<gherkin::Feature> {
    let (features, skipped) = apply_gate(
        &gate_for(handle.capabilities(), handle.info().kind),
        features,
    );
    for s in &skipped {
        say(format!(
            "happy-istio: SKIP {} — {}: {}",
            s.feature, s.scenario, s.reason
        ));
    }
    features
}

/// The capability tags of the features, with the reason each is missing on a cluster of `kind`
/// offering `caps`, and the deviation re-checks that do not apply to `kind`.
fn gate_for(caps: &Capabilities, kind: ClusterKind) -> Gate {
    let tag = |tag: &str, capability: &happy_istio::provision::Capability| {
        (
            tag.to_string(),
            capability.missing_reason().map(str::to_string),
        )
    };
    Gate::new([
        tag("istio", &caps.istio),
        tag("prometheus", &caps.prometheus),
        tag("grafana", &caps.grafana),
        tag("kiali", &caps.kiali),
        tag("capture", &caps.packet_capture),
        tag("egress-gateway", &caps.egress_gateway),
    ])
    .with_rechecks_not_applicable(
        happy_istio::deviations::rechecks_not_applicable(kind)
            .into_iter()
            .map(|(id, why)| (id.to_string(), why.to_string())),
    )
}

fn apply_gate(
    gate: &Gate,
    features: Vec<gherkin::Feature>,
) -> (Vec<gherkin::Feature>, Vec<Skipped>) {
    let mut gated = Vec::new();
    let mut skipped = Vec::new();
    for feature in features {
        let (parts, skips) = gate.apply(feature);
        gated.extend(parts);
        skipped.extend(skips);
    }
    (gated, skipped)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cucumber::gherkin::GherkinEnv;
    use happy_istio::provision::Capability;

    use super::*;
    use crate::definitions::gate::SKIPPED_TAG;

    fn opts(args: &[&str]) -> (HappyOpts, Option<String>) {
        let args = std::iter::once("happy").chain(args.iter().copied());
        parse_cli(args.map(OsString::from)).unwrap()
    }

    /// The repository's features, as the run reads them.
    fn workshop() -> Vec<gherkin::Feature> {
        let (all, _) = opts(&[]);
        futures::executor::block_on(read_features(&all)).unwrap()
    }

    fn parse(text: &str) -> gherkin::Feature {
        gherkin::Feature::parse(text, GherkinEnv::default()).unwrap()
    }

    const FEATURE: &str = "\
@f
Feature: F
  @a
  Scenario: one
    Given x
  @b
  Scenario: two
    Given x
  @r
  Rule: R
    @a
    Scenario: three
      Given x
    Scenario: four
      Given x
";

    fn names_selected(args: &[&str]) -> Vec<String> {
        let (opts, _) = opts(args);
        all_names(&filter_features(&opts, vec![parse(FEATURE)]))
    }

    #[test]
    fn tags_of_the_feature_the_rule_and_the_scenario_count_together() {
        assert_eq!(
            names_selected(&[]),
            ["F — one", "F — two", "F — three", "F — four"]
        );
        assert_eq!(names_selected(&["--tags", "@a"]), ["F — one", "F — three"]);
        assert_eq!(names_selected(&["--tags", "@r"]), ["F — three", "F — four"]);
        assert_eq!(
            names_selected(&["--tags", "@f and not @a"]),
            ["F — two", "F — four"]
        );
        assert_eq!(names_selected(&["--tags", "@b"]), ["F — two"]);
    }

    #[test]
    fn a_name_filter_selects_by_the_scenario_name_alone() {
        assert_eq!(names_selected(&["--name", "^t"]), ["F — two", "F — three"]);
        assert_eq!(names_selected(&["--name", "our$"]), ["F — four"]);
        assert!(
            parse_cli(["happy", "--name", "x", "--tags", "@a"].map(OsString::from)).is_err(),
            "cucumber's command line takes one filter"
        );
    }

    #[test]
    fn rules_and_features_left_empty_are_dropped() {
        let (b, _) = opts(&["--tags", "@b"]);
        let features = filter_features(&b, vec![parse(FEATURE)]);
        assert!(features[0].rules.is_empty(), "rule R has nothing selected");
        assert_eq!(scenario_count(&features), 1);
        let (none, _) = opts_none();
        assert!(filter_features(&none, vec![parse(FEATURE)]).is_empty());
    }

    fn opts_none() -> (HappyOpts, Option<String>) {
        opts(&["--tags", "@nonexistent"])
    }

    #[test]
    fn the_workshop_features_select_by_claim_tag() {
        let features = workshop();
        let tagged: Vec<String> = features
            .iter()
            .flat_map(|f| {
                f.scenarios
                    .iter()
                    .filter(|s| s.tags.iter().any(|t| t == "C16"))
                    .map(move |s| format!("{} — {}", f.name, s.name))
            })
            .collect();
        assert!(!tagged.is_empty(), "some scenario states claim C16");
        let (opts, filter) = opts(&["--tags", "@C16"]);
        assert_eq!(filter.as_deref(), Some("--tags @C16"));
        assert_eq!(all_names(&filter_features(&opts, features)), tagged);
    }

    #[test]
    fn a_filter_that_selects_nothing_is_named_in_the_message() {
        let (none, filter) = opts_none();
        assert_eq!(scenario_count(&filter_features(&none, workshop())), 0);
        let message = nothing_selected(filter.as_deref());
        assert!(
            message.starts_with("happy-istio: --tags @nonexistent selects no scenario of "),
            "{message}"
        );
        assert!(message.ends_with("; nothing was provisioned"), "{message}");
        let (_, filter) = opts(&["--name", "zzz"]);
        assert!(nothing_selected(filter.as_deref()).contains("--name zzz selects no scenario"));
    }

    #[test]
    fn help_is_not_an_error_and_describes_the_environment() {
        let help = parse_cli(["happy", "--help"].map(OsString::from)).unwrap_err();
        assert!(!help.use_stderr(), "help goes to stdout and exits 0");
        assert!(help.to_string().contains("HAPPY_CLUSTER"), "{help}");
        let bad = parse_cli(["happy", "--bogus"].map(OsString::from)).unwrap_err();
        assert!(bad.use_stderr());
        let bad = parse_cli(["happy", "--tags", "@a and"].map(OsString::from)).unwrap_err();
        assert!(bad.use_stderr());
    }

    #[test]
    fn a_concurrency_above_one_is_refused_with_the_reason() {
        assert!(check_options(&opts(&[]).0).is_ok());
        assert!(check_options(&opts(&["--concurrency", "1"]).0).is_ok());
        let err = check_options(&opts(&["-c", "2"]).0).unwrap_err();
        assert!(matches!(err, RunError::Concurrency(2)));
        let message = err.to_string();
        assert!(
            message.starts_with("--concurrency 2: the suite runs one scenario at a time")
                && message.contains("namespace istioinaction"),
            "{message}"
        );
    }

    /// Each capability a cluster can lack, with the tag the features carry for it.
    fn lacking(which: &str) -> Capabilities {
        let mut caps = Capabilities::all();
        let field = match which {
            "istio" => &mut caps.istio,
            "prometheus" => &mut caps.prometheus,
            "grafana" => &mut caps.grafana,
            "kiali" => &mut caps.kiali,
            "capture" => &mut caps.packet_capture,
            "egress-gateway" => &mut caps.egress_gateway,
            other => panic!("no capability {other}"),
        };
        *field = Capability::missing(format!("no {which} here"));
        caps
    }

    const CAPABILITY_TAGS: [&str; 6] = [
        "istio",
        "prometheus",
        "grafana",
        "kiali",
        "capture",
        "egress-gateway",
    ];

    #[test]
    fn a_missing_capability_skips_its_tagged_scenarios_with_the_reason() {
        let features = workshop();
        let tags_in_features: BTreeSet<&str> = features
            .iter()
            .flat_map(|f| {
                f.tags
                    .iter()
                    .chain(f.scenarios.iter().flat_map(|s| s.tags.iter()))
            })
            .map(String::as_str)
            .collect();
        for tag in CAPABILITY_TAGS {
            assert!(tags_in_features.contains(tag), "no feature uses @{tag}");
            let gate = gate_for(&lacking(tag), ClusterKind::Kind);
            let (gated, skipped) = apply_gate(&gate, features.clone());
            assert!(!skipped.is_empty(), "@{tag}: nothing skipped");
            for s in &skipped {
                assert!(
                    s.reason.contains(&format!("@{tag}: no {tag} here")),
                    "@{tag}: {s:?}"
                );
            }
            let marked = gated
                .iter()
                .flat_map(|f| f.scenarios.iter())
                .filter(|s| s.tags.iter().any(|t| t == SKIPPED_TAG))
                .count();
            assert_eq!(marked, skipped.len(), "@{tag}: each skipped one is marked");
            assert_eq!(
                scenario_count(&gated),
                scenario_count(&features),
                "@{tag}: a skipped scenario is still planned (and reported)"
            );
        }
    }

    #[test]
    fn with_everything_offered_on_kind_nothing_is_skipped() {
        let (_, skipped) = apply_gate(
            &gate_for(&Capabilities::all(), ClusterKind::Kind),
            workshop(),
        );
        assert_eq!(skipped, []);
    }

    #[test]
    fn a_recheck_whose_premise_is_not_this_clusters_is_skipped_with_the_deviations_reason() {
        let kind = ClusterKind::Existing;
        let not_applicable = happy_istio::deviations::rechecks_not_applicable(kind);
        assert!(
            !not_applicable.is_empty(),
            "some re-check does not apply to an existing cluster"
        );
        let (_, skipped) = apply_gate(&gate_for(&Capabilities::all(), kind), workshop());
        for (id, why) in not_applicable {
            let expected = format!("@deviation @{id}: {why}");
            assert!(
                skipped.iter().any(|s| s.reason == expected),
                "{id}: {skipped:?}"
            );
        }
    }
}
