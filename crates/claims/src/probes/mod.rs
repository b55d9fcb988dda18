//! Probes: how the suite observes what a reader of the workshop would see. The submodules parse
//! what the workloads and tools print (fake-service JSON, Prometheus metrics, Envoy access
//! logs, curl results) and state the statistics behind "at least one 500". Waiting for an
//! eventually-consistent mesh to show it is `crate::retry`.

pub mod access_log;
pub mod curl;
pub mod fake_service;
pub mod prometheus;
pub mod statistics;

pub use access_log::{AccessLogEntry, ISTIO_ACCESS_LOG_FLUSH, parse_access_log_line};
pub use curl::{CurlOutcome, CurlResult, curl_outcome};
pub use fake_service::FakeServiceResponse;
pub use prometheus::{Sample, parse_prometheus};
pub use statistics::{MAX_FALSE_VERDICT, StatusTally, requests_to_observe};
