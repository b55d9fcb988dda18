//! diagnostics (work in progress)
