//! Verdicts over what the workshop's reader would observe: batches of HTTP requests, the
//! fake-service JSON chain, logs, metrics and packet captures. Each function states a claim's
//! check in one place so the cucumber steps stay thin, and each is unit-tested with fake
//! observations — including the broken ones that must make it fail.

pub mod addons;
pub mod batch;
pub mod capture;
pub mod chain;
pub mod logs;
pub mod metrics;
