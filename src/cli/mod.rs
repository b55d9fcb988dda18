//! The command lines of the suite's tools (`happy-docs`, `happy-doctor`,
//! `resolve-istio-versions`), declared with clap so that parsing, `--help` and the errors for
//! bad arguments (exit status 2, naming the argument) come from one maintained parser. Each
//! binary under `src/bin/` only parses with these and calls the library.

pub mod docs;
pub mod doctor;
pub mod resolve;
