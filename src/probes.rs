//! probes (work in progress)
