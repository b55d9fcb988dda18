//! The chapters of the living documentation: the feature files in file-name order, each with
//! its prose (the feature's description) and its scenarios as a reader follows them — the
//! steps, and the commands the reader types (the steps' doc strings). Each scenario is filed
//! under its claim: its `@Cnn` tag, or for a deviation's re-check its `@D-…` tag.

use std::path::{Path, PathBuf};

use super::DocsError;

/// One feature file.
#[derive(Clone, Debug)]
pub struct Chapter {
    /// The file name without `.feature` (`03-ingress`): the chapter page's name.
    pub stem: String,
    /// The feature's name.
    pub title: String,
    /// The feature's description (Markdown prose), as written.
    pub description: String,
    pub background: Vec<StepDoc>,
    pub scenarios: Vec<ScenarioDoc>,
    pub path: PathBuf,
}

/// One scenario as the feature file writes it.
#[derive(Clone, Debug)]
pub struct ScenarioDoc {
    /// The claim it states (`C05`).
    pub claim: String,
    /// Its anchor on the chapter page: the claim id, `C05-2` for the claim's second scenario.
    pub anchor: String,
    pub name: String,
    /// Its line in the feature file (cucumber.json names scenarios by it).
    pub line: usize,
    /// Its own tags and its feature's, without `@`.
    pub tags: Vec<String>,
    pub steps: Vec<StepDoc>,
}

/// One step as written.
#[derive(Clone, Debug)]
pub struct StepDoc {
    /// `Given`, `And`, …
    pub keyword: String,
    pub text: String,
    /// What the reader types, if the step quotes it.
    pub docstring: Option<String>,
    /// Its line in the feature file (cucumber.json names steps by it).
    pub line: usize,
}

/// Whether a tag is a claim id (`C05`).
pub(crate) fn is_claim_tag(tag: &str) -> bool {
    tag.len() > 1 && tag.starts_with('C') && tag[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The claim a scenario with these tags (its own, then its feature's) states.
fn claim_of(own_tags: &[String], line: usize) -> String {
    own_tags
        .iter()
        .find(|t| is_claim_tag(t))
        .or_else(|| own_tags.iter().find(|t| t.starts_with("D-")))
        .cloned()
        .unwrap_or_else(|| format!("line-{line}"))
}

fn steps(steps: &[gherkin::Step]) -> Vec<StepDoc> {
    steps
        .iter()
        .map(|s| StepDoc {
            keyword: s.keyword.trim().to_string(),
            text: s.value.clone(),
            docstring: s.docstring.as_ref().map(|d| dedent(d)),
            line: s.position.line,
        })
        .collect()
}

/// Remove the indentation every non-empty line shares (doc strings keep their feature file's).
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or_else(|| l.trim_start()))
        .collect();
    lines.join("\n").trim_matches('\n').to_string()
}

/// Read one feature file.
pub(crate) fn load_file(path: &Path) -> Result<Chapter, DocsError> {
    let feature = gherkin::Feature::parse_path(path, gherkin::GherkinEnv::default())
        .map_err(|e| DocsError::input(path, format!("not a readable feature file: {e}")))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let scenarios_in_order = feature
        .scenarios
        .iter()
        .chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()));
    let mut scenarios: Vec<ScenarioDoc> = Vec::new();
    for s in scenarios_in_order {
        let claim = claim_of(&s.tags, s.position.line);
        let seen = scenarios.iter().filter(|o| o.claim == claim).count();
        let anchor = if seen == 0 {
            claim.clone()
        } else {
            format!("{claim}-{}", seen + 1)
        };
        scenarios.push(ScenarioDoc {
            claim,
            anchor,
            name: s.name.clone(),
            line: s.position.line,
            tags: s.tags.iter().chain(feature.tags.iter()).cloned().collect(),
            steps: steps(&s.steps),
        });
    }
    Ok(Chapter {
        stem,
        title: feature.name.clone(),
        description: feature
            .description
            .as_deref()
            .map(dedent)
            .unwrap_or_default(),
        background: feature
            .background
            .as_ref()
            .map(|b| steps(&b.steps))
            .unwrap_or_default(),
        scenarios,
        path: path.to_path_buf(),
    })
}

/// Read every `*.feature` file of `dir`, in file-name order (the workshop's chapter order).
pub fn load_dir(dir: &Path) -> Result<Vec<Chapter>, DocsError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DocsError::input(dir, format!("cannot read the features directory: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "feature"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(DocsError::input(dir, "holds no .feature file"));
    }
    paths.iter().map(|p| load_file(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suites_features_are_chapters_with_claims() {
        let chapters = load_dir(&super::super::default_features_dir()).unwrap();
        assert_eq!(chapters[0].stem, "01-deploy");
        let install = chapters
            .iter()
            .find(|c| c.stem == "02-install-and-injection")
            .unwrap();
        let anchors: Vec<&str> = install
            .scenarios
            .iter()
            .map(|s| s.anchor.as_str())
            .collect();
        assert_eq!(anchors[..2], ["C05", "C05-2"]);
        let ingress = chapters.iter().find(|c| c.stem == "03-ingress").unwrap();
        assert!(ingress.description.starts_with("A Gateway opens port 80"));
        let c08 = &ingress.scenarios[0];
        assert!(
            c08.tags.iter().any(|t| t == "D-istio-version"),
            "{:?}",
            c08.tags
        );
        let doc = c08.steps[1].docstring.as_deref().unwrap();
        assert!(
            doc.starts_with("kubectl -n istio-system port-forward"),
            "{doc}"
        );
        let deviations = chapters.iter().find(|c| c.stem == "07-deviations").unwrap();
        assert_eq!(deviations.scenarios[0].claim, "D-legacy-image");
    }

    #[test]
    fn a_broken_feature_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("01-x.feature");
        std::fs::write(&path, "Feature x without colon\n  Scenario:\n").unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("01-x.feature"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            load_dir(empty.path())
                .unwrap_err()
                .to_string()
                .contains("no .feature")
        );
    }
}
