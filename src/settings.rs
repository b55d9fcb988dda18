//! settings (work in progress)
