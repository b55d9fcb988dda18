//! The report crate's error type. Reports and the living documentation speak in `String`s and
//! [`crate::docs::DocsError`] naming the file at fault; what is here is the one failure of
//! diagnostics that is an error at all — the bundle directory could not be made (each part
//! that cannot be collected is written into the bundle instead, see [`crate::diagnostics`]).
//!
//! It has no `class()`: no step fails by it (the runner prints it and goes on), so nothing
//! asks whether it is the claim's or the environment's.

/// Errors of the report crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a diagnostics bundle failed.
    #[error("diagnostics bundle {path}: {source}")]
    Diagnostics {
        /// The file or directory at fault.
        path: std::path::PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// Result with the report crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
