//! fake-service's error injection: deterministic, not random. The n-th request (counting from
//! one) fails when `n % int(1/ERROR_RATE) == 0`, so ERROR_RATE=0.6 gives `int(1.66) = 1`:
//! every request fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the injector decided for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Pass,
    /// Answer with `code` after `delay`; `message` is the response's `error` field.
    Fail {
        code: u16,
        delay: Duration,
        message: &'static str,
    },
    /// Go divides by zero (ERROR_RATE > 1) and net/http drops the connection.
    Abort,
}

/// The request counter and the fault settings.
pub(crate) struct Injector {
    rate: f64,
    code: u16,
    delay_type: bool,
    delay: Duration,
    count: AtomicU64,
}

/// `int(1/rate)` as Go computes it, `None` when no request ever fails (rate 0: Go's
/// `int(+Inf)` is the minimum int64, which never divides a positive count).
pub(crate) fn divisor(rate: f64) -> Option<u64> {
    if rate <= 0.0 {
        return None;
    }
    Some((1.0 / rate).trunc() as u64)
}

/// Whether request number `n` (from 1) fails for `rate`; `None` means Go would panic.
pub(crate) fn fails(n: u64, rate: f64) -> Option<bool> {
    match divisor(rate) {
        None => Some(false),
        Some(0) => None,
        Some(d) => Some(n.is_multiple_of(d)),
    }
}

impl Injector {
    pub(crate) fn new(rate: f64, code: u16, error_type: &str, delay: Duration) -> Self {
        Self {
            rate,
            code,
            delay_type: error_type != "http_error",
            delay,
            count: AtomicU64::new(0),
        }
    }

    /// Count one request and decide its fate.
    pub(crate) fn next(&self) -> Decision {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        match fails(n, self.rate) {
            None => Decision::Abort,
            Some(false) => Decision::Pass,
            Some(true) if self.delay_type => Decision::Fail {
                code: self.code,
                delay: self.delay,
                message: "Service delay automatically injected",
            },
            Some(true) => Decision::Fail {
                code: self.code,
                delay: Duration::ZERO,
                message: "Service error automatically injected",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_point_six_fails_every_request() {
        assert_eq!(divisor(0.6), Some(1));
        assert!((1..=50).all(|n| fails(n, 0.6) == Some(true)));
    }

    #[test]
    fn rate_point_two_fails_every_fifth() {
        let failing: Vec<u64> = (1..=20).filter(|n| fails(*n, 0.2) == Some(true)).collect();
        assert_eq!(failing, [5, 10, 15, 20]);
        assert_eq!(divisor(0.3), Some(3));
    }

    #[test]
    fn zero_rate_never_fails_and_above_one_aborts() {
        assert!((1..=50).all(|n| fails(n, 0.0) == Some(false)));
        assert_eq!(fails(1, 1.5), None);
    }

    #[test]
    fn injector_counts_requests() {
        let i = Injector::new(0.5, 503, "http_error", Duration::ZERO);
        assert_eq!(i.next(), Decision::Pass);
        assert!(matches!(i.next(), Decision::Fail { code: 503, .. }));
        assert_eq!(i.next(), Decision::Pass);
    }
}
