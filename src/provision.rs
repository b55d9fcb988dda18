//! provision (work in progress)
