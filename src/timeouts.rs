//! timeouts (work in progress)
