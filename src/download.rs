//! download (work in progress)
