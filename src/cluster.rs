//! cluster (work in progress)
