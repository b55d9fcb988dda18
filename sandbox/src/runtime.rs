//! runtime (work in progress)
