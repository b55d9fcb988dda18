//! happy-docs: builds the living documentation — the workshop's claims as a static site, each
//! claim with its verdict on every run, night after night — from the suite's report
//! directories. See `happy_istio::docs`.
//!
//! Usage: happy-docs --reports DIR [DIR...] [--history FILE] [--earlier DIR...] [--out DIR]
//!                   [--summary-md FILE] [--days N] [--strip-nights N] [--features DIR]
//! Exits 0 when the site was written (whatever the runs' verdicts), 2 on bad input (the message
//! names the file or option at fault), 1 when the site could not be written.

use std::path::PathBuf;
use std::process::ExitCode;

use happy_istio::docs::{self, DocsError, Options};

const USAGE: &str = "\
usage: happy-docs --reports DIR [DIR...] [--history FILE] [--earlier DIR...] [--out DIR]
                  [--summary-md FILE] [--days N] [--strip-nights N] [--features DIR]

  --reports DIR...    one run's report directory each (run.json, cucumber.json, diagnostics/);
                      a directory of such directories counts as all of them
  --history FILE      the previous publication's history.json (absent: the first night)
  --earlier DIR...    earlier runs' report directories (like --reports): merged into the
                      history only, no column (runs a failed or stale publication may have
                      left out of it; a run already there replaces itself)
  --out DIR           where the site goes (default: the first report directory's site/)
  --summary-md FILE   append the matrix as GitHub-flavoured Markdown ($GITHUB_STEP_SUMMARY)
  --days N            nights history.json keeps (default 366)
  --strip-nights N    nights each history strip of the index page shows (default 30)
  --features DIR      the feature files, the chapters (default: the suite's features/)";

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, DocsError> {
    let mut options = Options::for_reports(Vec::new());
    let mut args = args.into_iter().peekable();
    fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, DocsError> {
        match args.next() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => Err(DocsError::input(flag, "needs a value")),
        }
    }
    let number = |text: String, flag: &str| -> Result<u64, DocsError> {
        text.parse::<u64>()
            .map_err(|_| DocsError::input(flag, format!("{text:?} is not a whole number")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--reports" => {
                let first = value(&mut args, "--reports")?;
                options.reports.push(PathBuf::from(first));
                while let Some(next) = args.next_if(|a| !a.starts_with("--")) {
                    options.reports.push(PathBuf::from(next));
                }
            }
            "--history" => options.history = Some(value(&mut args, "--history")?.into()),
            "--earlier" => {
                let first = value(&mut args, "--earlier")?;
                options.earlier.push(PathBuf::from(first));
                while let Some(next) = args.next_if(|a| !a.starts_with("--")) {
                    options.earlier.push(PathBuf::from(next));
                }
            }
            "--out" => options.out = Some(value(&mut args, "--out")?.into()),
            "--summary-md" => options.summary_md = Some(value(&mut args, "--summary-md")?.into()),
            "--features" => options.features = value(&mut args, "--features")?.into(),
            "--days" => {
                let n = number(value(&mut args, "--days")?, "--days")?;
                options.days = u32::try_from(n)
                    .map_err(|_| DocsError::input("--days", format!("{n} is too large")))?;
            }
            "--strip-nights" => {
                let n = number(value(&mut args, "--strip-nights")?, "--strip-nights")?;
                options.strip_nights = usize::try_from(n).unwrap_or(usize::MAX).max(1);
            }
            other => {
                return Err(DocsError::input(
                    other,
                    "not an option of happy-docs (see --help)",
                ));
            }
        }
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("happy-docs: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match docs::build(&options) {
        Ok(built) => {
            println!(
                "happy-docs: {} run(s); the site: {}",
                built.runs,
                built.index.display()
            );
            ExitCode::SUCCESS
        }
        Err(e @ DocsError::Input { .. }) => {
            eprintln!("happy-docs: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("happy-docs: {e}");
            ExitCode::FAILURE
        }
    }
}
