//! istio (work in progress)
