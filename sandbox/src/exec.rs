//! exec (work in progress)
