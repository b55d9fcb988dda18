//! The suite's error type: every failure names the file, object, option or command at fault.

/// Errors of the suite's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Anything not yet given its own variant; the message says what and where.
    #[error("{0}")]
    Other(String),
}

/// Result with the suite's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
