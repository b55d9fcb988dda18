//! happy-doctor: the preflight of a real run, alone; the command line is
//! `happy_istio::cli::doctor` (`happy-doctor --help`), the checks `happy_istio::provision::preflight`.

use std::process::ExitCode;

use clap::Parser;
use happy_istio::cli::doctor::DoctorArgs;
use happy_istio::provision::preflight;
use happy_istio::settings::Settings;
use happy_istio::timeouts::Timeouts;

#[tokio::main]
async fn main() -> ExitCode {
    let args = DoctorArgs::parse();
    happy_istio::download::install_crypto_provider();
    let timeouts = Timeouts::from_env().map_err(happy_istio::ProvisionError::from);
    let (settings, timeouts) = match (Settings::from_env(), timeouts) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("happy-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let report = preflight::run(args.target(settings.cluster), &settings, &timeouts).await;
    print!("{}", report.render());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
