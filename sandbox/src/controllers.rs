//! controllers (work in progress)
