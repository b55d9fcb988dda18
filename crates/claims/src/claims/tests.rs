//! The registry agrees with the repository: the features' claim tags and scenarios, the
//! workshop's files, the check functions, the negative cases of `tests/runs/negative.rs`, the
//! deviations, and the workshop's text it quotes. Each test reads the files as text, so a
//! change on either side that breaks a link fails here with what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::checks::batch::{both_outcomes_batch, one_answer_batch, request_batch};
use crate::probes::MAX_FALSE_VERDICT;

/// One scenario of `features/`, as text.
#[derive(Debug)]
struct Scenario {
    /// The feature file's stem.
    chapter: String,
    name: String,
    /// The feature's tags and its own (without `@`).
    tags: Vec<String>,
    /// Its steps and doc strings, with the feature's Background's.
    text: String,
}

fn features() -> Vec<Scenario> {
    let dir = crate::repo_root().join("features");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("features/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "feature"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no feature files in {}", dir.display());
    paths.iter().flat_map(|p| parse_feature(p)).collect()
}

/// Tags, `Feature:`, `Background:` and `Scenario:` lines as Gherkin writes them; every other
/// line belongs to the block above it.
fn parse_feature(path: &Path) -> Vec<Scenario> {
    let text = std::fs::read_to_string(path).expect("readable feature");
    let chapter = path
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a file stem")
        .to_string();
    let (mut feature_tags, mut pending) = (Vec::new(), Vec::new());
    let mut background = String::new();
    let mut in_background = false;
    let mut scenarios: Vec<Scenario> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('@') {
            pending.extend(
                trimmed
                    .split_whitespace()
                    .map(|t| t.trim_start_matches('@').to_string()),
            );
        } else if trimmed.starts_with("Feature:") {
            feature_tags = std::mem::take(&mut pending);
        } else if trimmed.starts_with("Background:") {
            in_background = true;
        } else if let Some(name) = trimmed
            .strip_prefix("Scenario:")
            .or_else(|| trimmed.strip_prefix("Scenario Outline:"))
        {
            in_background = false;
            let mut tags = feature_tags.clone();
            tags.append(&mut pending);
            scenarios.push(Scenario {
                chapter: chapter.clone(),
                name: name.trim().to_string(),
                tags,
                text: background.clone(),
            });
        } else if in_background {
            background.push_str(trimmed);
            background.push('\n');
        } else if let Some(s) = scenarios.last_mut() {
            s.text.push_str(trimmed);
            s.text.push('\n');
        }
    }
    scenarios
}

fn is_claim_tag(tag: &str) -> bool {
    tag.len() == 3 && tag.starts_with('C') && tag[1..].bytes().all(|b| b.is_ascii_digit())
}

fn scenarios_of<'a>(all: &'a [Scenario], id: &str) -> Vec<&'a Scenario> {
    all.iter()
        .filter(|s| s.tags.iter().any(|t| t == id))
        .collect()
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_string).collect()
}

#[test]
fn every_claim_tag_has_an_entry_and_every_entry_its_scenarios() {
    let all = features();
    let ids: Vec<&str> = CLAIMS.iter().map(|c| c.id).collect();
    let expected: Vec<String> = (1..=22).map(|n| format!("C{n:02}")).collect();
    assert_eq!(ids, expected, "one entry per claim, C01–C22 in order");
    let tagged: BTreeSet<String> = all
        .iter()
        .flat_map(|s| s.tags.iter().filter(|t| is_claim_tag(t)).cloned())
        .collect();
    assert_eq!(
        tagged,
        set(ids.iter().copied()),
        "the claim tags of features/ and the entries of CLAIMS"
    );
    for claim in CLAIMS {
        let scenarios = scenarios_of(&all, claim.id);
        assert_eq!(
            set(scenarios.iter().map(|s| s.name.as_str())),
            set(claim.scenarios.iter().copied()),
            "{}: the scenarios tagged @{} and the entry's `scenarios`",
            claim.id,
            claim.id
        );
        for s in &scenarios {
            assert_eq!(
                s.chapter, claim.chapter,
                "{}: scenario {:?} is in features/{}.feature",
                claim.id, s.name, s.chapter
            );
        }
        assert!(
            !claim.statement.trim().is_empty(),
            "{}: no statement",
            claim.id
        );
        assert!(
            !claim.workshop_words.is_empty(),
            "{}: no workshop words",
            claim.id
        );
        assert!(!claim.checks.is_empty(), "{}: no checks", claim.id);
        assert!(
            !claim.upstream_facts.is_empty(),
            "{}: no upstream fact",
            claim.id
        );
        assert_eq!(find(&claim.id.to_lowercase()).map(|c| c.id), Some(claim.id));
    }
}

#[test]
fn the_manifests_named_exist_and_are_the_ones_the_scenarios_apply() {
    let all = features();
    let dir = crate::repo_root().join("manifests");
    for claim in CLAIMS {
        for m in claim.manifests {
            assert!(
                dir.join(m).is_file(),
                "{}: manifests/{m} does not exist",
                claim.id
            );
        }
        // The files the scenarios name (steps, Background, doc strings), and the legacy
        // client's legacy.yaml, which its step loads without naming it.
        let mut applied = BTreeSet::new();
        for s in scenarios_of(&all, claim.id) {
            for word in s
                .text
                .split(|c: char| !(c.is_ascii_alphanumeric() || "-.".contains(c)))
            {
                if word.ends_with(".yaml") {
                    applied.insert(word.to_string());
                }
            }
            if s.text.contains("the legacy client") {
                applied.insert("legacy.yaml".to_string());
            }
        }
        assert_eq!(
            set(claim.manifests.iter().copied()),
            applied,
            "{}: the entry's `manifests` and the files its scenarios apply",
            claim.id
        );
    }
}

/// The source file and item a check path names: `checks::chain::shape` is `fn shape` in
/// `crates/claims/src/checks/chain.rs`; `steps::security::call_from` is in
/// `steps/definitions/security.rs`; a type between file and item (`Cluster::wait_pods_ready`)
/// is allowed.
fn resolve(path: &str) -> Result<(), String> {
    let root = crate::repo_root();
    let segments: Vec<&str> = path.split("::").collect();
    let item = *segments.last().ok_or("an empty path")?;
    let (base, modules) = match segments.first() {
        Some(&"steps") => (root.join("steps/definitions"), &segments[1..]),
        _ => (root.join("crates/claims/src"), &segments[..]),
    };
    for take in (1..modules.len()).rev() {
        let dir = modules[..take].join("/");
        for file in [format!("{dir}.rs"), format!("{dir}/mod.rs")] {
            let file = base.join(file);
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let declared = ["fn", "const", "struct", "enum", "type"].iter().any(|kw| {
                text.contains(&format!("{kw} {item}("))
                    || text.contains(&format!("{kw} {item}<"))
                    || text.contains(&format!("{kw} {item}:"))
                    || text.contains(&format!("{kw} {item} "))
            });
            return if declared {
                Ok(())
            } else {
                Err(format!("{} declares no {item}", file.display()))
            };
        }
    }
    Err(format!("no source file for {path}"))
}

#[test]
fn the_checks_named_exist() {
    for claim in CLAIMS {
        for check in claim.checks {
            if let Err(e) = resolve(check) {
                panic!("{}: check {check}: {e}", claim.id);
            }
        }
    }
}

#[test]
fn the_request_counts_are_the_codes_and_the_bounds_hold() {
    for claim in CLAIMS {
        let bounds = match &claim.requests {
            Requests::Statistical(bounds) => *bounds,
            Requests::NotStatistical(why) => {
                assert!(!why.trim().is_empty(), "{}: say why", claim.id);
                continue;
            }
        };
        assert!(
            !bounds.is_empty(),
            "{}: statistical without a bound",
            claim.id
        );
        for b in bounds {
            if let Err(e) = resolve(b.counted_by) {
                panic!("{}: {}: counted_by {}: {e}", claim.id, b.step, b.counted_by);
            }
            match b.counted_by {
                "checks::batch::request_batch" => {
                    assert_eq!(b.requests, request_batch(), "{}: {}", claim.id, b.step)
                }
                "checks::batch::one_answer_batch" => {
                    assert_eq!(b.requests, one_answer_batch(), "{}: {}", claim.id, b.step)
                }
                "checks::batch::both_outcomes_batch" => {
                    assert_eq!(
                        b.requests,
                        both_outcomes_batch(),
                        "{}: {}",
                        claim.id,
                        b.step
                    )
                }
                _ => {}
            }
            let exact = f64::from(b.outcomes) * b.miss.powf(f64::from(b.requests));
            assert!(
                exact <= b.bound && b.bound <= exact * 1.1,
                "{}: {}: {} · {}^{} = {exact:e}, stated {:e}",
                claim.id,
                b.step,
                b.outcomes,
                b.miss,
                b.requests,
                b.bound
            );
            assert!(
                b.bound < MAX_FALSE_VERDICT,
                "{}: {}: {:e} is not below {MAX_FALSE_VERDICT:e}",
                claim.id,
                b.step,
                b.bound
            );
            assert!(!b.why.trim().is_empty(), "{}: {}", claim.id, b.step);
        }
    }
}

/// `(claim, what)` of every case in `tests/runs/negative.rs`: its `claim: "…"` (a tag
/// expression whose first word is the claim) and the `what: "…"` after it; and of every
/// sandbox case (`SandboxBreakage`) whose `tag: "…"` is a claim's id (the others break a
/// deviation's premise, not a claim).
fn negative_cases() -> Vec<(String, String)> {
    let path = crate::repo_root().join("tests/runs/negative.rs");
    let text = std::fs::read_to_string(&path).expect("tests/runs/negative.rs");
    let value = |line: &str, key: &str| -> Option<String> {
        let rest = line.trim().strip_prefix(key)?.trim();
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.rfind('"')?].to_string())
    };
    let mut cases = Vec::new();
    let mut claim: Option<String> = None;
    for line in text.lines() {
        if let Some(c) = value(line, "claim:") {
            claim = Some(c.split_whitespace().next().unwrap_or_default().to_string());
        } else if let Some(tag) = value(line, "tag:") {
            claim = find(&tag).is_some().then_some(tag);
        } else if let Some(what) = value(line, "what:")
            && let Some(c) = claim.take()
        {
            cases.push((c, what));
        }
    }
    assert!(
        !cases.is_empty(),
        "no `claim:` cases read from {}",
        path.display()
    );
    cases
}

#[test]
fn the_negative_cases_are_the_ones_listed() {
    let cases = negative_cases();
    let mut by_claim: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (claim, what) in &cases {
        assert!(
            find(claim).is_some(),
            "tests/runs/negative.rs names {claim:?}, which is no claim"
        );
        by_claim
            .entry(claim.clone())
            .or_default()
            .insert(what.clone());
    }
    for claim in CLAIMS {
        let listed: BTreeSet<String> = claim
            .negative
            .iter()
            .filter_map(|n| match n {
                Negative::Case(what) => Some(what.to_string()),
                _ => None,
            })
            .collect();
        let found = by_claim.remove(claim.id).unwrap_or_default();
        assert_eq!(
            listed, found,
            "{}: the entry's Negative::Case list and the cases of tests/runs/negative.rs \
             naming it",
            claim.id
        );
        let without = claim
            .negative
            .iter()
            .any(|n| matches!(n, Negative::Pending(_) | Negative::Impossible(_)));
        let at_check_level = claim
            .negative
            .iter()
            .any(|n| matches!(n, Negative::Check(_)));
        assert!(
            !(at_check_level && without),
            "{}: a check-level negative case is a case: no Pending/Impossible beside it",
            claim.id
        );
        assert!(
            if without {
                found.is_empty()
            } else {
                !found.is_empty() || at_check_level
            },
            "{}: {}",
            claim.id,
            if without {
                "has a negative case now: replace Negative::Pending/Impossible by it"
            } else {
                "has no negative case: say what is planned (Negative::Pending) or why none \
                 can be (Negative::Impossible)"
            }
        );
        for n in claim.negative {
            match n {
                Negative::Pending(why) | Negative::Impossible(why) => {
                    assert!(!why.trim().is_empty(), "{}", claim.id)
                }
                Negative::Check(test) => {
                    if let Err(e) = resolve(test) {
                        panic!("{}: check-level negative case {test}: {e}", claim.id);
                    }
                }
                Negative::Case(_) => {}
            }
        }
    }
}

#[test]
fn the_deviations_are_the_ones_its_scenarios_carry() {
    let all = features();
    for claim in CLAIMS {
        let carried: BTreeSet<String> = scenarios_of(&all, claim.id)
            .iter()
            .flat_map(|s| s.tags.iter().filter(|t| t.starts_with("D-")).cloned())
            .collect();
        assert_eq!(
            set(claim.deviations.iter().copied()),
            carried,
            "{}: the entry's `deviations` and the deviation tags of its scenarios",
            claim.id
        );
        for id in claim.deviations {
            let d = crate::deviations::find(id)
                .unwrap_or_else(|| panic!("{}: {id} is no deviation", claim.id));
            assert_eq!(d.id, *id, "{}: spell {id} as deviations.rs does", claim.id);
            assert!(
                d.claims.contains(&claim.id),
                "{}: {id} does not list it among its claims",
                claim.id
            );
        }
    }
    for d in crate::deviations::DEVIATIONS {
        for c in d.claims {
            let claim = find(c).unwrap_or_else(|| panic!("{}: {c} is no claim", d.id));
            assert!(
                claim.deviations.contains(&d.id),
                "{c}: {} lists it, its entry does not list {}",
                d.id,
                d.id
            );
        }
    }
}

/// The workshop's README (the repository's copy), cut into sections by heading.
fn workshop_sections() -> BTreeMap<&'static str, String> {
    let path = crate::repo_root().join(WORKSHOP_README_COPY);
    let copy = std::fs::read_to_string(&path).expect("the workshop's README copy");
    assert_eq!(
        copy, WORKSHOP_README_TEXT,
        "the copy compiled in is the file"
    );
    let (header, _) = copy.split_once('\n').expect("a header line");
    assert!(
        header.contains(WORKSHOP_README.trim_end_matches(" README.md")),
        "{}: the first line says where the copy comes from",
        path.display()
    );
    let sections = super::workshop_sections();
    assert_eq!(
        sections.iter().map(|s| s.heading).collect::<Vec<_>>(),
        WORKSHOP_HEADINGS,
        "every heading is found, in the README's order"
    );
    sections.into_iter().map(|s| (s.heading, s.text)).collect()
}

#[test]
fn every_quote_is_the_workshops_own_words_in_the_section_named() {
    let sections = workshop_sections();
    let prefix = format!("{WORKSHOP_README}, section ");
    for claim in CLAIMS {
        let mut own = Vec::new();
        for q in claim.workshop_words {
            let heading = q.source.strip_prefix(&prefix).unwrap_or_else(|| {
                panic!(
                    "{}: source {:?} must read \"{prefix}<heading>\"",
                    claim.id, q.source
                )
            });
            let section = sections
                .get(heading)
                .unwrap_or_else(|| panic!("{}: no section {heading:?}", claim.id));
            assert!(
                section.contains(q.words),
                "{}: {:?} is not in the section {heading:?} of {WORKSHOP_README_COPY}",
                claim.id,
                q.words
            );
            own.push(section);
        }
        if let Some(sample) = claim.workshop_sample {
            assert!(
                own.iter().any(|s| s.contains(sample)),
                "{}: its sample output is not in the section(s) it quotes:\n{sample}",
                claim.id
            );
        }
    }
}

#[test]
fn every_upstream_fact_names_its_source() {
    for claim in CLAIMS {
        for f in claim.upstream_facts {
            assert!(!f.fact.trim().is_empty(), "{}", claim.id);
            // A repository (owner/name) or a documentation site.
            assert!(
                f.source.contains('/') || f.source.contains("istio.io"),
                "{}: {:?} names no repository or URL",
                claim.id,
                f.source
            );
            if !f.confirmed {
                assert!(
                    f.source.contains("not re-read") || f.source.contains("assumed"),
                    "{}: an unconfirmed fact's source says what was not read: {:?}",
                    claim.id,
                    f.source
                );
            }
        }
    }
}
