//! The workshop beside the verdicts: which of the workshop's sections each chapter page renders
//! (its own text, in the workshop's order), under which section a claim's scenario stands, and
//! what the runs observed for a scenario (the evidence of `run.json`, `crate::evidence`), the
//! latest run of each Istio version line side by side, flagged when they differ in shape.

use std::collections::BTreeMap;

use super::features::{Chapter, ScenarioDoc};
use super::model::Run;
use crate::evidence::Evidence;
use happy_claims::claims::{self, WorkshopSection};

/// The sections of the workshop's README each chapter renders, by chapter stem. A section
/// belongs to the chapter of the first claim standing under it ([`section_of_claim`]); a
/// section no claim stands under goes with
/// the next section that has a chapter (the last ones with the one before), so every section
/// of the README is on exactly one page, in order.
pub fn sections_by_chapter() -> BTreeMap<String, Vec<WorkshopSection>> {
    let sections = claims::workshop_sections();
    let chapter_of = |heading: &str| {
        claims::CLAIMS
            .iter()
            .find(|c| section_of_claim(c.id) == Some(heading))
            .map(|c| c.chapter.to_string())
    };
    let mut owners: Vec<Option<String>> = sections.iter().map(|s| chapter_of(s.heading)).collect();
    let mut next: Option<String> = None;
    for owner in owners.iter_mut().rev() {
        match owner {
            Some(o) => next = Some(o.clone()),
            None => owner.clone_from(&next),
        }
    }
    let mut previous: Option<String> = None;
    for owner in owners.iter_mut() {
        match owner {
            Some(o) => previous = Some(o.clone()),
            None => owner.clone_from(&previous),
        }
    }
    let mut by_chapter: BTreeMap<String, Vec<WorkshopSection>> = BTreeMap::new();
    for (section, owner) in sections.into_iter().zip(owners) {
        if let Some(owner) = owner {
            by_chapter.entry(owner).or_default().push(section);
        }
    }
    by_chapter
}

/// The section a claim's scenario stands under: the first one (in the workshop's order) its
/// quotes come from, where the workshop begins what the claim rests on (C05 quotes the
/// installation and, for its gateways, the ingress section: it stands under the installation);
/// `None` for a scenario that is no claim of the workshop (a deviation's re-check).
pub fn section_of_claim(claim: &str) -> Option<&'static str> {
    let claim = claims::find(claim).filter(|c| c.id == claim)?;
    let quoted: Vec<&str> = claim
        .workshop_words
        .iter()
        .filter_map(|q| claims::quote_section(q.source))
        .collect();
    claims::WORKSHOP_HEADINGS
        .iter()
        .copied()
        .find(|h| quoted.contains(h))
}

/// One step's evidence as a page shows it.
#[derive(Clone, Debug)]
pub struct StepEvidenceView {
    /// The step as written (`Then every response is 200`).
    pub step: String,
    pub evidence: Vec<Evidence>,
}

/// What one run observed for a scenario.
#[derive(Clone, Debug)]
pub struct EvidenceView {
    /// The run's id (its column).
    pub run_id: String,
    /// The run in words (Istio version, cluster, night).
    pub run: String,
    /// Its Istio version line (`1.29`).
    pub line: String,
    pub steps: Vec<StepEvidenceView>,
    /// Its shape ([`shape`]), to compare across version lines.
    pub shape: String,
}

/// What `run` observed for `scenario` of `chapter`: its own steps' evidence (the Background's,
/// the same in every scenario of the chapter, left out). `None` when it recorded none.
pub fn evidence_of(
    run: &Run,
    label: String,
    chapter: &Chapter,
    scenario: &ScenarioDoc,
) -> Option<EvidenceView> {
    let name = format!("{} — {}", chapter.title, scenario.name);
    let recorded = run.info.evidence.iter().find(|e| e.scenario == name)?;
    let own: Vec<usize> = scenario.steps.iter().map(|s| s.line).collect();
    let steps: Vec<StepEvidenceView> = recorded
        .steps
        .iter()
        .filter(|s| own.contains(&s.line) && !s.evidence.is_empty())
        .map(|s| StepEvidenceView {
            step: s.step.clone(),
            evidence: s.evidence.clone(),
        })
        .collect();
    if steps.is_empty() {
        return None;
    }
    let shape = shape(&steps);
    Some(EvidenceView {
        run_id: run.id(),
        run: label,
        line: run.version_line(),
        steps,
        shape,
    })
}

/// The shape of a scenario's evidence: which steps recorded what, and the form of each line
/// (every run of digits as `#`, names with generated suffixes as they are), so that two runs of
/// one configuration compare equal and a changed field, header or container count does not.
/// Pod names, times, counts and addresses differ on every run: they are what `#` stands for.
pub fn shape(steps: &[StepEvidenceView]) -> String {
    let mut out = String::new();
    for step in steps {
        out.push_str(&step.step);
        out.push('\n');
        for e in &step.evidence {
            out.push_str(&digits_as_hash(&e.label));
            out.push('\n');
            for line in e.text.lines() {
                out.push_str(&line_form(line));
                out.push('\n');
            }
        }
    }
    out
}

/// A line's form: the words that are neither numbers nor generated names, in order; a READY
/// count stays (a pod with three containers is another shape). A pod table's row
/// `service-a-6d8f7c9b5d-x2x7k   2/2   Running   0   1m` reads `service-a-… 2/2 Running # #`.
fn line_form(line: &str) -> String {
    line.split_whitespace()
        .map(|word| {
            // A READY count (`2/2`) is shape: how many containers a pod has.
            if let Some((a, b)) = word.split_once('/')
                && !a.is_empty()
                && !b.is_empty()
                && (a.chars().chain(b.chars())).all(|c| c.is_ascii_digit())
            {
                return word.to_string();
            }
            // A number with its unit (`35s`, `1m12s`, `3.2ms`) is one value.
            if word.starts_with(|c: char| c.is_ascii_digit()) && !word.contains('/') {
                return "#".to_string();
            }
            let word = digits_as_hash(word);
            // A Kubernetes-generated suffix (`-6d8f7c9b5d-x2x7k`) or a timestamp differs on
            // every run: keep only what comes before its first `-#` or hash-like part.
            match word.find("-#") {
                Some(at) => format!("{}-…", &word[..at]),
                None => word,
            }
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn digits_as_hash(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// The evidence to show for a scenario: the latest run of each Istio version line that
/// recorded some (latest first by version line, newest line first); and whether their shapes
/// differ.
pub fn evidence_by_line(mut views: Vec<(String, EvidenceView)>) -> (Vec<EvidenceView>, bool) {
    // `(started_at, view)`: keep each line's latest.
    views.sort_by(|a, b| b.0.cmp(&a.0));
    let mut kept: Vec<EvidenceView> = Vec::new();
    for (_, view) in views {
        if !kept.iter().any(|k| k.line == view.line) {
            kept.push(view);
        }
    }
    kept.sort_by_key(|view| std::cmp::Reverse(version_key(&view.line)));
    let differs = kept.windows(2).any(|w| w[0].shape != w[1].shape);
    (kept, differs)
}

/// `1.31` → (1, 31); `dev` sorts above every release.
fn version_key(line: &str) -> (u32, u32) {
    let mut parts = line.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => (u32::MAX, u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(line: &str, text: &str) -> EvidenceView {
        let steps = vec![StepEvidenceView {
            step: "Then every pod in istioinaction is Ready with 2/2 containers".into(),
            evidence: vec![Evidence::new("kubectl get pods -n istioinaction", text)],
        }];
        EvidenceView {
            run_id: format!("run-{line}"),
            run: format!("Istio {line}"),
            line: line.into(),
            shape: shape(&steps),
            steps,
        }
    }

    #[test]
    fn every_section_is_on_one_chapter_in_the_workshops_order() {
        let by_chapter = sections_by_chapter();
        let mut all: Vec<&str> = by_chapter.values().flatten().map(|s| s.heading).collect();
        assert_eq!(all.len(), claims::WORKSHOP_HEADINGS.len());
        all.sort();
        let mut headings = claims::WORKSHOP_HEADINGS.to_vec();
        headings.sort();
        assert_eq!(all, headings);
        let chapter = |h: &str| {
            by_chapter
                .iter()
                .find(|(_, ss)| ss.iter().any(|s| s.heading == h))
                .map(|(c, _)| c.as_str())
        };
        assert_eq!(chapter("Services"), Some("01-deploy"));
        assert_eq!(chapter("Access logs"), Some("04-observability"));
        assert_eq!(chapter("Reducing access"), Some("06-security"));
        // No claim quotes "Download kubectl": it goes with the next section's chapter.
        assert_eq!(chapter("Download kubectl"), chapter("Deploy workloads"));
    }

    #[test]
    fn a_claim_stands_under_the_first_section_it_quotes() {
        assert_eq!(section_of_claim("C10"), Some("Access logs"));
        assert_eq!(section_of_claim("C05"), Some("Install Istio"));
        assert_eq!(section_of_claim("D-legacy-image"), None);
        for claim in claims::CLAIMS {
            assert!(
                section_of_claim(claim.id).is_some(),
                "{} quotes no section",
                claim.id
            );
        }
    }

    #[test]
    fn runs_of_one_configuration_have_one_shape_and_a_change_shows() {
        let a = view(
            "1.29",
            "NAME                         READY   STATUS    RESTARTS   AGE\n\
             service-a-6d8f7c9b5d-x2x7k   2/2     Running   0          1m",
        );
        let b = view(
            "1.30",
            "NAME                         READY   STATUS    RESTARTS   AGE\n\
             service-a-77c5d9f6b8-p9q2z   2/2     Running   1          35s",
        );
        assert_eq!(
            a.shape, b.shape,
            "names, counts and ages differ on every run"
        );
        let (kept, differs) = evidence_by_line(vec![("2".into(), a.clone()), ("1".into(), b)]);
        assert!(!differs);
        assert_eq!(kept[0].line, "1.30", "the newest version line first");

        // Another container count, or another status word: the shape shows.
        let three = view(
            "1.31",
            "NAME                         READY   STATUS    RESTARTS   AGE\n\
             service-a-6d8f7c9b5d-x2x7k   3/3     Running   0          1m",
        );
        let (_, differs) = evidence_by_line(vec![("2".into(), a.clone()), ("3".into(), three)]);
        assert!(differs);
        let c = view(
            "1.31",
            "NAME                         READY   STATUS     RESTARTS   AGE\n\
             service-a-6d8f7c9b5d-x2x7k   1/2     NotReady   0          1m",
        );
        let (_, differs) = evidence_by_line(vec![("2".into(), a), ("3".into(), c)]);
        assert!(differs);
    }

    #[test]
    fn each_line_keeps_its_latest_run() {
        let older = view("1.29", "old");
        let newer = view("1.29", "new");
        let (kept, _) = evidence_by_line(vec![
            ("2026-12-01".into(), older),
            ("2026-12-02".into(), newer),
        ]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].steps[0].evidence[0].text, "new");
    }
}
