//! Writing the site: askama templates (`templates/docs/`, HTML-escaped by default: every text
//! from the features, the reports and error messages goes in escaped), the features'
//! descriptions through pulldown-cmark with raw HTML shown as text, one stylesheet, and
//! `history.json`.
//!
//! The HTML hooks other tools (the browser test, the publish job) rely on:
//! - `<table id="matrix">`, a `<th scope="col">` per run, a `<th scope="row">` per claim, and
//!   per cell `<td data-claim="C05" data-run="RUN-ID" data-status="passed|failed|skipped|
//!   passed-with-deviation">` whose text begins with that word (a skip with its reason) and
//!   holds a link `chapters/<stem>.html#C05`;
//! - a run that did not run to its end: in its column heading a `<span class="ended"
//!   data-state="stopped|did-not-finish|provisioning-failed">` saying so in words (the same words
//!   in its "What this page rests on" entry and the Markdown summary's column heading);
//! - on a chapter page, each scenario a `<section id="C05">` (`C05-2` for the claim's second),
//!   doc strings as `<pre><code>`, a failure message in `<pre class="failure">` with its class
//!   in words, the workshop's sample in `<figure class="sample">` and each Istio line's evidence
//!   in `<figure class="evidence" data-run="RUN-ID" data-line="1.31">`; the workshop's own
//!   sections as `<section class="workshop-section" data-section="Heading">`;
//! - a matrix cell whose evidence differs in shape from another Istio line's holds a
//!   `<span data-evidence-differs="true">` saying so; a run's whole-run deviations are in its
//!   column heading as `<span class="run-deviation" data-deviation="D-…">`.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use askama::Template;

use super::DocsError;
use super::features::{Chapter, StepDoc};
use super::history::{HISTORY_FILE, History, Strips};
use super::matrix::{ChapterRows, Column, Matrix, Status};
use super::model::{Outcome, Run};
use super::workshop::{self, EvidenceView};
use crate::deviations::Deviation;
use crate::report::{DeviationInfo, FailureClass, write_atomic};

/// The stylesheet's file name in the site.
pub(crate) const STYLESHEET: &str = "style.css";

const CSS: &str = include_str!("style.css");

/// A run as the pages describe it.
struct RunView {
    column: Column,
    /// The deviations of the whole run (`(id, title)`), stated in its column heading.
    whole_run: Vec<(String, String)>,
    note: Option<String>,
    deviations: Vec<DeviationInfo>,
    skipped: Vec<String>,
    not_run: Vec<String>,
    /// The run's own verdict in full (a provisioning failure's cause): its class and message.
    verdict: Option<(&'static str, String)>,
    settings_notes: Vec<String>,
    summary: Option<String>,
    ci_run_url: Option<String>,
    /// `(run id, label)` of an earlier run with the very same deviations: the page says so
    /// instead of repeating the table.
    same_deviations_as: Option<(String, String)>,
}

impl RunView {
    fn new(run: &Run, column: &Column) -> Self {
        RunView {
            column: column.clone(),
            whole_run: run.whole_run_deviations(),
            note: run.info.note.clone(),
            deviations: run.info.deviations.clone(),
            skipped: run.info.skipped.clone(),
            not_run: run.info.not_run.clone(),
            verdict: run
                .info
                .verdict
                .as_ref()
                .map(|v| (v.class.as_str(), v.message.clone())),
            settings_notes: run.info.settings_notes.clone(),
            summary: run.summary.map(|s| s.to_string()),
            ci_run_url: ci_run_link(run),
            same_deviations_as: None,
        }
    }

    /// `Istio 1.31.1 on sandbox (Kubernetes v1.33.0), 2026-12-01`.
    fn label(&self) -> String {
        let c = &self.column;
        format!(
            "Istio {} on {} (Kubernetes {}), {}",
            c.istio_version, c.cluster_kind, c.kubernetes_version, c.night
        )
    }
}

/// One run's claims counted by verdict, for the page's first lines.
struct Glance {
    run_id: String,
    label: String,
    /// How the run ended, when it did not run to its end.
    ending: Option<String>,
    passed: usize,
    deviation: usize,
    failed: Vec<String>,
    skipped: usize,
}

#[derive(Template)]
#[template(path = "docs/index.html")]
struct IndexPage<'a> {
    root: &'static str,
    glance: Vec<Glance>,
    runs: &'a [RunView],
    chapters: &'a [ChapterRows],
    strips: &'a [Strips],
    strip_nights: usize,
    history_runs: usize,
    generated_at: String,
    /// `(claim, run id)` of the cells whose evidence differs in shape from another Istio
    /// version line's (`workshop::evidence_by_line`).
    evidence_differs: Vec<(String, String)>,
}

impl IndexPage<'_> {
    /// Whether the cell of `claim` on `run` is flagged: its evidence differs across versions.
    fn differs(&self, claim: &str, run: &str) -> bool {
        self.evidence_differs
            .iter()
            .any(|(c, r)| c == claim && r == run)
    }

    /// `12-01` for `2026-12-01` (the full date is the heading's title).
    fn short_night(&self, night: &str) -> String {
        night.get(5..).unwrap_or(night).to_string()
    }
}

/// One step with its status on each run.
struct StepView {
    keyword: String,
    text: String,
    docstring: Option<String>,
    background: bool,
    statuses: Vec<String>,
}

/// A scenario's failure on one run.
struct FailureView {
    step: String,
    message: String,
    class: &'static str,
}

/// A scenario's result on one run.
struct ResultView {
    run: String,
    run_id: String,
    status: Status,
    text: String,
    failure: Option<FailureView>,
    /// A link to the failure's diagnostics: `(href, whether it is the CI run's page, where
    /// the bundles are among its artifacts, rather than the bundle itself)`.
    diagnostics: Option<(String, bool)>,
}

struct ScenarioView {
    anchor: String,
    claim: String,
    name: String,
    tags: Vec<String>,
    steps: Vec<StepView>,
    results: Vec<ResultView>,
    /// The claim in one line (the registry's), when it is one of the workshop's.
    statement: Option<&'static str>,
    /// The workshop's words it rests on: `(section, words)`.
    quotes: Vec<(&'static str, &'static str)>,
    /// The sample output the workshop shows for it (2022).
    sample: Option<&'static str>,
    /// What the latest run of each Istio version line observed, newest line first.
    evidence: Vec<EvidenceView>,
    /// Whether that evidence differs in shape between version lines.
    evidence_differs: bool,
    /// The workshop's files its scenario applies: `(name, the file's text when found)`.
    manifests: Vec<(&'static str, Option<String>)>,
    /// The deviations its scenario runs with.
    deviations: Vec<&'static Deviation>,
    /// The workshop's section it stands under.
    section: Option<&'static str>,
    /// What a reader types to see it on a current cluster: `(the step, its commands)` of each
    /// step that quotes them.
    commands: Vec<(String, String)>,
}

/// A section of the workshop's README, with the claims that stand under it.
struct SectionView {
    heading: &'static str,
    /// Its text, paragraph by paragraph (the heading line left out).
    paragraphs: Vec<String>,
    scenarios: Vec<ScenarioView>,
}

#[derive(Template)]
#[template(path = "docs/chapter.html")]
struct ChapterPage<'a> {
    root: &'static str,
    title: &'a str,
    description_html: String,
    runs: &'a [RunView],
    /// The workshop's sections this chapter covers, each with its claims.
    sections: Vec<SectionView>,
    /// The scenarios under no section of the workshop (a deviation's re-check).
    scenarios: Vec<ScenarioView>,
    generated_at: String,
}

/// The paragraphs of a section's text, its heading line left out.
fn paragraphs(text: &str) -> Vec<String> {
    let body = text.split_once('\n').map_or("", |(_, rest)| rest);
    body.split("\n\n")
        .map(|p| p.trim_matches('\n').to_string())
        .filter(|p| !p.trim().is_empty())
        .collect()
}

/// A manifest's text, when the repository's `manifests/` has it (the site is built from a
/// checkout); `None` otherwise, and the page names the file only.
fn manifest_text(name: &str) -> Option<String> {
    std::fs::read_to_string(crate::repo_root().join("manifests").join(name)).ok()
}

/// The feature's description as HTML: Markdown through pulldown-cmark, raw HTML shown as
/// text (a feature file is not trusted to write markup), links kept only when they go to
/// http(s), mail or within the site.
pub(crate) fn markdown_html(text: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut dropped_links = 0usize;
    let events: Vec<Event> = Parser::new(text)
        .filter_map(|event| match event {
            Event::Html(t) | Event::InlineHtml(t) => Some(Event::Text(t)),
            Event::Start(Tag::Link { ref dest_url, .. }) if !safe_url(dest_url) => {
                dropped_links += 1;
                None
            }
            Event::End(TagEnd::Link) if dropped_links > 0 => {
                dropped_links -= 1;
                None
            }
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
            other => Some(other),
        })
        .collect();
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') && !scheme.contains('#') => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

/// `to` relative to the directory `from` (both absolute, or both relative to one place).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part.as_os_str());
    }
    out
}

/// A path as a URL path (forward slashes, each segment percent-encoded where it must be).
fn href_of(path: &Path) -> String {
    path.components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .chars()
                .map(|ch| match ch {
                    'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' => ch.to_string(),
                    other => {
                        let mut buf = [0u8; 4];
                        other
                            .encode_utf8(&mut buf)
                            .bytes()
                            .map(|b| format!("%{b:02X}"))
                            .collect()
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The run's diagnostics bundle for a scenario (`diagnostics/<run>/NN-<slug>`, see
/// `crate::diagnostics`), if it exists, relative to `from`.
fn diagnostics_link(run: &Run, scenario: &str, from: &Path) -> Option<String> {
    let dir = run.dir.join("diagnostics").join(run.id());
    let suffix = format!("-{}", crate::diagnostics::slug(scenario));
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .collect();
    bundles.sort();
    let bundle = std::path::absolute(bundles.first()?).ok()?;
    Some(format!("{}/", href_of(&relative(from, &bundle))))
}

/// The CI run's page a run's reports name, when it is an http(s) URL.
fn ci_run_link(run: &Run) -> Option<String> {
    run.info
        .ci_run_url
        .clone()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

fn step_views(
    chapter: &Chapter,
    scenario: &super::features::ScenarioDoc,
    runs: &[Run],
) -> Vec<StepView> {
    let written: Vec<(&StepDoc, bool)> = chapter
        .background
        .iter()
        .map(|s| (s, true))
        .chain(scenario.steps.iter().map(|s| (s, false)))
        .collect();
    // Steps are matched by their line in the feature file: cucumber.json lists the steps a
    // scenario reached (a skipped scenario has one step, the gate's).
    let per_run: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let found = run.find(&chapter.stem, scenario.line, &scenario.name);
            written
                .iter()
                .map(|(step, background)| match found {
                    None => "not run".to_string(),
                    Some(found) => found
                        .steps
                        .iter()
                        .find(|s| s.line == step.line && s.background == *background)
                        .map(|s| s.status.clone())
                        .unwrap_or_else(|| match found.outcome {
                            Outcome::Skipped(_) => "skipped".into(),
                            _ => "not reached".into(),
                        }),
                })
                .collect()
        })
        .collect();
    written
        .iter()
        .enumerate()
        .map(|(i, (step, background))| StepView {
            keyword: step.keyword.clone(),
            text: step.text.clone(),
            docstring: step.docstring.clone(),
            background: *background,
            statuses: per_run.iter().map(|r| r[i].clone()).collect(),
        })
        .collect()
}

/// What the runs observed for a scenario: the latest run of each Istio version line that
/// recorded evidence, and whether their evidence differs in shape.
fn scenario_evidence(
    chapter: &Chapter,
    scenario: &super::features::ScenarioDoc,
    runs: &[Run],
    run_views: &[RunView],
) -> (Vec<EvidenceView>, bool) {
    workshop::evidence_by_line(
        runs.iter()
            .zip(run_views)
            .filter_map(|(run, view)| {
                workshop::evidence_of(run, view.label(), chapter, scenario)
                    .map(|e| (run.info.started_at.clone(), e))
            })
            .collect(),
    )
}

/// What the registries say of a scenario's claim, and what the runs observed: the parts of
/// its [`ScenarioView`] beyond the steps and verdicts.
fn claim_parts(
    scenario: &super::features::ScenarioDoc,
    (evidence, evidence_differs): (Vec<EvidenceView>, bool),
) -> ScenarioView {
    let claim = happy_claims::claims::find(&scenario.claim).filter(|c| c.id == scenario.claim);
    let deviation_ids: Vec<&str> = scenario
        .tags
        .iter()
        .filter(|t| t.starts_with("D-"))
        .map(String::as_str)
        .chain(claim.iter().flat_map(|c| c.deviations.iter().copied()))
        .collect();
    let deviations: Vec<&'static Deviation> = crate::deviations::DEVIATIONS
        .iter()
        .filter(|d| deviation_ids.contains(&d.id) && !crate::deviations::WHOLE_RUN.contains(&d.id))
        .collect();
    ScenarioView {
        anchor: String::new(),
        claim: String::new(),
        name: String::new(),
        tags: Vec::new(),
        steps: Vec::new(),
        results: Vec::new(),
        statement: claim.map(|c| c.statement),
        quotes: claim
            .map(|c| {
                c.workshop_words
                    .iter()
                    .map(|q| {
                        (
                            happy_claims::claims::quote_section(q.source).unwrap_or(q.source),
                            q.words,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sample: claim.and_then(|c| c.workshop_sample),
        evidence,
        evidence_differs,
        manifests: claim
            .map(|c| c.manifests.iter().map(|m| (*m, manifest_text(m))).collect())
            .unwrap_or_default(),
        deviations,
        section: workshop::section_of_claim(&scenario.claim),
        commands: scenario
            .steps
            .iter()
            .filter_map(|step| {
                step.docstring
                    .clone()
                    .map(|doc| (format!("{} {}", step.keyword, step.text), doc))
            })
            .collect(),
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), DocsError> {
    write_atomic(path, contents.as_bytes()).map_err(|e| DocsError::output(path, e))
}

fn render_error(what: &str, e: askama::Error) -> DocsError {
    DocsError::output(what, format!("the template failed: {e}"))
}

/// Write the whole site into `out`.
pub fn write_site(
    out: &Path,
    chapters: &[Chapter],
    runs: &[Run],
    matrix: &Matrix,
    history: &History,
    strip_nights: usize,
) -> Result<(), DocsError> {
    let chapters_dir = out.join("chapters");
    std::fs::create_dir_all(&chapters_dir)
        .map_err(|e| DocsError::output(&chapters_dir, e.to_string()))?;
    let chapters_abs = std::path::absolute(&chapters_dir)
        .map_err(|e| DocsError::output(&chapters_dir, e.to_string()))?;
    let generated_at = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    let mut run_views: Vec<RunView> = runs
        .iter()
        .zip(&matrix.columns)
        .map(|(r, c)| RunView::new(r, c))
        .collect();
    for i in 1..run_views.len() {
        let same = run_views[..i]
            .iter()
            .find(|earlier| {
                earlier.same_deviations_as.is_none()
                    && !earlier.deviations.is_empty()
                    && earlier.deviations == run_views[i].deviations
            })
            .map(|earlier| (earlier.column.run_id.clone(), earlier.label()));
        run_views[i].same_deviations_as = same;
    }

    let claims: Vec<String> = matrix.rows().map(|(_, r)| r.claim.clone()).collect();
    let strips: Vec<Strips> = history
        .lines()
        .iter()
        .map(|line| history.strips(line, &claims, strip_nights))
        .collect();
    let glance = run_views
        .iter()
        .enumerate()
        .map(|(i, view)| {
            let cells: Vec<(&str, Status)> = matrix
                .rows()
                .filter(|(_, r)| r.cells[i].selected)
                .map(|(_, r)| (r.claim.as_str(), r.cells[i].status))
                .collect();
            let count = |s: Status| cells.iter().filter(|(_, c)| *c == s).count();
            Glance {
                run_id: view.column.run_id.clone(),
                label: view.label(),
                ending: view.column.ending.as_ref().map(|e| e.text.clone()),
                passed: count(Status::Passed),
                deviation: count(Status::PassedWithDeviation),
                failed: cells
                    .iter()
                    .filter(|(_, c)| *c == Status::Failed)
                    .map(|(claim, _)| claim.to_string())
                    .collect(),
                skipped: count(Status::Skipped),
            }
        })
        .collect();
    // Each scenario's evidence, the latest run of each version line ([chapter][scenario]):
    // the chapter pages show it, the matrix flags the cells where it differs in shape.
    let evidence: Vec<Vec<(Vec<EvidenceView>, bool)>> = chapters
        .iter()
        .map(|chapter| {
            chapter
                .scenarios
                .iter()
                .map(|scenario| scenario_evidence(chapter, scenario, runs, &run_views))
                .collect()
        })
        .collect();
    let evidence_differs: Vec<(String, String)> = chapters
        .iter()
        .zip(&evidence)
        .flat_map(|(chapter, per_scenario)| chapter.scenarios.iter().zip(per_scenario))
        .filter(|(_, (_, differs))| *differs)
        .flat_map(|(scenario, (views, _))| {
            views
                .iter()
                .map(|v| (scenario.claim.clone(), v.run_id.clone()))
        })
        .collect();
    let index = IndexPage {
        evidence_differs,
        root: "",
        glance,
        runs: &run_views,
        chapters: &matrix.chapters,
        strips: &strips,
        strip_nights,
        history_runs: history.runs.len(),
        generated_at: generated_at.clone(),
    }
    .render()
    .map_err(|e| render_error("index.html", e))?;
    write_file(&out.join("index.html"), &index)?;

    let sections_by_chapter = workshop::sections_by_chapter();
    for (ci, chapter) in chapters.iter().enumerate() {
        let scenarios = chapter
            .scenarios
            .iter()
            .enumerate()
            .map(|(si, s)| ScenarioView {
                anchor: s.anchor.clone(),
                claim: s.claim.clone(),
                name: s.name.clone(),
                tags: s.tags.clone(),
                steps: step_views(chapter, s, runs),
                results: runs
                    .iter()
                    .zip(&run_views)
                    .enumerate()
                    .map(|(ri, (run, view))| {
                        let result = &matrix.results[ci][si][ri];
                        let status = result.status();
                        let (text, failure) = match &result.outcome {
                            Outcome::Passed if result.deviations.is_empty() => {
                                ("passed".to_string(), None)
                            }
                            Outcome::Passed => (
                                format!("passed-with-deviation ({})", result.deviations.join(", ")),
                                None,
                            ),
                            Outcome::Skipped(reason) => (format!("skipped: {reason}"), None),
                            Outcome::Failed {
                                step,
                                message,
                                class,
                            } => (
                                format!("failed: {} failure", class.as_str()),
                                Some(FailureView {
                                    step: step.clone(),
                                    // Its class in words: the message's own prefix, or one
                                    // put before an unprefixed message (counted as the claim's).
                                    message: if FailureClass::of_message(message).is_some() {
                                        message.clone()
                                    } else {
                                        format!("{}{message}", class.prefix())
                                    },
                                    class: class.as_str(),
                                }),
                            ),
                        };
                        let diagnostics = failure.as_ref().and_then(|_| {
                            diagnostics_link(run, &s.name, &chapters_abs)
                                .map(|href| (href, false))
                                .or_else(|| ci_run_link(run).map(|href| (href, true)))
                        });
                        ResultView {
                            run: view.label(),
                            run_id: view.column.run_id.clone(),
                            status,
                            text,
                            failure,
                            diagnostics,
                        }
                    })
                    .collect(),
                ..claim_parts(s, evidence[ci][si].clone())
            })
            .collect::<Vec<ScenarioView>>();
        let mut sections: Vec<SectionView> = sections_by_chapter
            .get(&chapter.stem)
            .into_iter()
            .flatten()
            .map(|section| SectionView {
                heading: section.heading,
                paragraphs: paragraphs(&section.text),
                scenarios: Vec::new(),
            })
            .collect();
        let mut unplaced = Vec::new();
        for scenario in scenarios {
            match sections
                .iter_mut()
                .find(|sec| Some(sec.heading) == scenario.section)
            {
                Some(section) => section.scenarios.push(scenario),
                None => unplaced.push(scenario),
            }
        }
        let page = ChapterPage {
            root: "../",
            title: &chapter.title,
            description_html: markdown_html(&chapter.description),
            runs: &run_views,
            sections,
            scenarios: unplaced,
            generated_at: generated_at.clone(),
        }
        .render()
        .map_err(|e| render_error(&format!("chapters/{}.html", chapter.stem), e))?;
        write_file(&chapters_dir.join(format!("{}.html", chapter.stem)), &page)?;
    }
    write_file(&out.join(STYLESHEET), CSS)?;
    let json = history
        .to_json()
        .map_err(|e| DocsError::output(out.join(HISTORY_FILE), e.to_string()))?;
    write_file(&out.join(HISTORY_FILE), &json)
}

/// A table cell's text for GitHub-flavoured Markdown: one line, `|` and markup escaped.
fn md_cell(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// The matrix as GitHub-flavoured Markdown (for `$GITHUB_STEP_SUMMARY`).
pub fn summary_md(matrix: &Matrix) -> String {
    let mut md = String::from("## Living documentation: the workshop's claims\n\n| Claim |");
    for c in &matrix.columns {
        md.push_str(&format!(
            " Istio {} ({}, Kubernetes {}, {}){} |",
            md_cell(&c.istio_version),
            md_cell(&c.cluster_kind),
            md_cell(&c.kubernetes_version),
            md_cell(&c.night),
            c.ending
                .as_ref()
                .map(|e| format!(" — **{}**", md_cell(&e.text)))
                .unwrap_or_default()
        ));
    }
    md.push_str("\n|---|");
    for _ in &matrix.columns {
        md.push_str("---|");
    }
    md.push('\n');
    for (_, row) in matrix.rows() {
        md.push_str(&format!(
            "| **{}** {} |",
            md_cell(&row.claim),
            md_cell(&row.statement)
        ));
        for cell in &row.cells {
            let mark = match cell.status {
                Status::Passed | Status::PassedWithDeviation => "✅",
                Status::Failed => "❌",
                Status::Skipped => "⏭️",
            };
            md.push_str(&format!(" {mark} {} |", md_cell(&cell.text)));
        }
        md.push('\n');
    }
    md.push('\n');
    md
}

/// Append [`summary_md`] to `path` (the step summary file accumulates).
pub(crate) fn append_summary_md(path: &Path, matrix: &Matrix) -> Result<(), DocsError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| DocsError::output(path, e.to_string()))?;
    file.write_all(summary_md(matrix).as_bytes())
        .map_err(|e| DocsError::output(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_in_markdown_is_text_and_unsafe_links_are_dropped() {
        let html = markdown_html(
            "A *Gateway* opens <script>alert(1)</script> port 80.\n\n<div onclick=x>y</div>\n\n\
             [ok](https://istio.io) [bad](javascript:alert(1))",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(html.contains("<em>Gateway</em>"), "{html}");
        assert!(html.contains("href=\"https://istio.io\""), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
    }

    #[test]
    fn relative_paths_and_hrefs() {
        assert_eq!(
            relative(
                Path::new("/r/site/chapters"),
                Path::new("/r/diagnostics/x/01-c")
            ),
            PathBuf::from("../../diagnostics/x/01-c")
        );
        assert_eq!(href_of(Path::new("../a b/ü")), "../a%20b/%C3%BC");
    }

    #[test]
    fn markdown_cells_stay_in_their_cell() {
        assert_eq!(md_cell("a|b\n<c>"), "a\\|b &lt;c&gt;");
    }
}
