//! The README documents every option and timeout: its tables are the library's own
//! descriptions, verbatim, so a new variable cannot go undocumented.

use happy_istio::settings::Settings;
use happy_istio::timeouts::Timeouts;

const README: &str = include_str!("../../README.md");

fn assert_in_readme(what: &str, table: &str) {
    assert!(
        README.contains(table),
        "README.md's {what} table is out of date; it must contain, verbatim:\n\n{table}"
    );
}

#[test]
fn readme_lists_every_option() {
    let _processes = crate::processes::shared();
    assert_in_readme("options", &Settings::markdown_table());
}

#[test]
fn readme_lists_every_timeout() {
    let _processes = crate::processes::shared();
    assert_in_readme("timeouts", &Timeouts::markdown_table());
}

/// `HAPPY_PRINT_README_TABLES=1 cargo test --test it readme:: -- --nocapture` prints both tables.
#[test]
fn print_tables_on_request() {
    let _processes = crate::processes::shared();
    if std::env::var_os("HAPPY_PRINT_README_TABLES").is_some() {
        println!(
            "{}\n{}",
            Settings::markdown_table(),
            Timeouts::markdown_table()
        );
    }
}
