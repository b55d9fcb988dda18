//! happy-docs: builds the living documentation from the suite's report directories; the
//! command line is `happy_istio::cli::docs` (`happy-docs --help`), the builder
//! `happy_istio::docs`.

use std::process::ExitCode;

use clap::Parser;
use happy_istio::cli::docs::DocsArgs;
use happy_istio::docs::{self, DocsError};

fn main() -> ExitCode {
    let options = DocsArgs::parse().options();
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
