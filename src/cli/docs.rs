//! `happy-docs`: builds the living documentation from the suite's report directories.

use std::path::PathBuf;

use clap::Parser;

use crate::docs::{DEFAULT_DAYS, DEFAULT_STRIP_NIGHTS, Options, default_features_dir};

/// Builds the living documentation — the workshop's claims as a static site, each claim with
/// its verdict on every run, night after night — from the suite's report directories.
///
/// Exits 0 when the site was written (whatever the runs' verdicts), 2 on bad input (the
/// message names the file or option at fault), 1 when the site could not be written.
#[derive(Debug, Parser)]
#[command(name = "happy-docs")]
pub struct DocsArgs {
    /// One run's report directory each (run.json, cucumber.json, diagnostics/); a directory
    /// of such directories counts as all of them.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub reports: Vec<PathBuf>,
    /// The previous publication's history.json (absent: the first night).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Earlier runs' report directories (like --reports): merged into the history only, no
    /// column (runs a failed or stale publication may have left out of it; a run already
    /// there replaces itself).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub earlier: Vec<PathBuf>,
    /// Where the site goes (default: the first report directory's site/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Append the matrix as GitHub-flavoured Markdown ($GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
    /// Nights history.json keeps.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DAYS)]
    pub days: u32,
    /// Nights each history strip of the index page shows (at least 1).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_STRIP_NIGHTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub strip_nights: usize,
    /// The feature files, the chapters (default: the suite's features/).
    #[arg(long, value_name = "DIR")]
    pub features: Option<PathBuf>,
}

impl DocsArgs {
    /// The documentation builder's options these arguments name.
    pub fn options(self) -> Options {
        Options {
            reports: self.reports,
            history: self.history,
            earlier: self.earlier,
            out: self.out,
            summary_md: self.summary_md,
            days: self.days,
            strip_nights: self.strip_nights,
            features: self.features.unwrap_or_else(default_features_dir),
        }
    }
}
