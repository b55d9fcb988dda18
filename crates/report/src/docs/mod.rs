//! The living documentation: the workshop as a static web site, each claim with its verdict on
//! every run. `happy-docs` (src/bin/happy-docs.rs) and the end of every local run call
//! [`build`]; the site is plain HTML and one stylesheet, with nothing external, so it opens
//! from `file://` as well as from GitHub Pages.
//!
//! - [`model`] reads each run's `run.json` and `cucumber.json` into scenario outcomes,
//! - [`features`] reads the feature files (the chapters, their prose, the reader's commands),
//! - [`matrix`] turns both into the claims × runs matrix,
//! - [`history`] keeps the verdicts night after night (`history.json`, bounded),
//! - [`workshop`] places the workshop's own sections on the chapter pages and each claim under
//!   one, and gathers each scenario's evidence per Istio line (flagging differences in shape),
//! - [`render`] writes the pages through askama templates (auto-escaped).
//!
//! The command line and the HTML hooks other tools rely on are fixed in
//! `notes/DOCS-CONTRACT.md` of the project and restated on [`render`].

pub mod features;
pub mod history;
pub mod matrix;
pub mod model;
pub mod render;
pub mod workshop;

use std::fmt;
use std::path::PathBuf;

/// What went wrong building the site; every variant names the file or option at fault.
#[derive(Debug)]
pub enum DocsError {
    /// Bad input: a report, feature file, history file or option (the command exits 2).
    Input { path: PathBuf, message: String },
    /// The site could not be written.
    Output { path: PathBuf, message: String },
}

impl DocsError {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DocsError::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn output(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DocsError::Output {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DocsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocsError::Input { path, message } => write!(f, "{}: {message}", path.display()),
            DocsError::Output { path, message } => {
                write!(f, "cannot write {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for DocsError {}

/// Nights kept in `history.json` unless told otherwise (a year, and a leap day).
pub const DEFAULT_DAYS: u32 = 366;

/// Nights shown in each history strip of the index page (`history.json` keeps all of them).
pub const DEFAULT_STRIP_NIGHTS: usize = 30;

/// What to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// Each run's report directory (or a directory of them).
    pub reports: Vec<PathBuf>,
    /// The previous publication's `history.json`; absent = the first night.
    pub history: Option<PathBuf>,
    /// Earlier runs' report directories (like `reports`): merged into the history only, not
    /// shown as columns. The nightly passes the reports of its recent runs, so that runs a
    /// failed publication never published, or a stale read-back of the history dropped, reach
    /// it with the next one (a run already in the history replaces itself with the same).
    pub earlier: Vec<PathBuf>,
    /// Where the site goes; `None` = the first report directory's `site/`.
    pub out: Option<PathBuf>,
    /// Where to append the matrix as GitHub-flavoured Markdown.
    pub summary_md: Option<PathBuf>,
    /// Nights kept in the history.
    pub days: u32,
    /// Nights shown in the index page's history strips.
    pub strip_nights: usize,
    /// The feature files (the chapters).
    pub features: PathBuf,
}

impl Options {
    /// Options for one run's report directory, with the defaults.
    pub fn for_reports(reports: Vec<PathBuf>) -> Self {
        Options {
            reports,
            history: None,
            earlier: Vec::new(),
            out: None,
            summary_md: None,
            days: DEFAULT_DAYS,
            strip_nights: DEFAULT_STRIP_NIGHTS,
            features: default_features_dir(),
        }
    }

    /// The output directory these options name.
    pub fn out_dir(&self) -> PathBuf {
        match (&self.out, self.reports.first()) {
            (Some(out), _) => out.clone(),
            (None, Some(first)) => first.join("site"),
            (None, None) => PathBuf::from("site"),
        }
    }
}

/// The suite's own feature files (where this crate was built from).
pub fn default_features_dir() -> PathBuf {
    crate::repo_root().join("features")
}

/// What [`build`] wrote.
#[derive(Clone, Debug)]
pub struct Built {
    pub index: PathBuf,
    pub chapters: Vec<PathBuf>,
    pub history: PathBuf,
    pub runs: usize,
}

/// Build the site: read the reports, the features and the previous history, merge, render.
pub fn build(options: &Options) -> Result<Built, DocsError> {
    if options.reports.is_empty() {
        return Err(DocsError::input(
            "--reports",
            "no report directory given (at least one --reports DIR)",
        ));
    }
    if options.days == 0 {
        return Err(DocsError::input("--days", "must be at least 1"));
    }
    let mut runs: Vec<model::Run> = Vec::new();
    for dir in &options.reports {
        for run in model::load_reports(dir)? {
            if let Some(seen) = runs.iter().find(|r| r.id() == run.id()) {
                return Err(DocsError::input(
                    run.dir.join(crate::report::RUN_FILE),
                    format!(
                        "run {} is given twice (also {}): give each run's reports once",
                        run.id(),
                        seen.dir.join(crate::report::RUN_FILE).display()
                    ),
                ));
            }
            runs.push(run);
        }
    }
    // Columns in the history's order of version lines (dev, then the newest minor first),
    // then by cluster kind and start time: the same matrix whatever order the artifacts came.
    runs.sort_by_cached_key(|r| {
        (
            history::line_order(&r.version_line()),
            r.info.cluster_kind.clone(),
            r.info.started_at.clone(),
        )
    });
    let chapters = features::load_dir(&options.features)?;
    let matrix = matrix::Matrix::new(&chapters, &runs);
    let previous = match &options.history {
        Some(path) => history::History::load(path)?,
        None => None,
    };
    let mut history = previous.unwrap_or_default();
    let mut earlier: Vec<model::Run> = Vec::new();
    for dir in &options.earlier {
        for run in model::load_reports(dir)? {
            // Tonight's own runs stand as tonight's columns say; each earlier run once.
            if runs
                .iter()
                .chain(earlier.iter())
                .all(|r| r.id() != run.id())
            {
                earlier.push(run);
            }
        }
    }
    if !earlier.is_empty() {
        history.merge(matrix::Matrix::new(&chapters, &earlier).history_runs());
    }
    history.merge(matrix.history_runs());
    history.bound(options.days);
    let out = options.out_dir();
    render::write_site(
        &out,
        &chapters,
        &runs,
        &matrix,
        &history,
        options.strip_nights,
    )?;
    if let Some(path) = &options.summary_md {
        render::append_summary_md(path, &matrix)?;
    }
    Ok(Built {
        index: out.join("index.html"),
        chapters: chapters
            .iter()
            .map(|c| out.join("chapters").join(format!("{}.html", c.stem)))
            .collect(),
        history: out.join(history::HISTORY_FILE),
        runs: runs.len(),
    })
}
