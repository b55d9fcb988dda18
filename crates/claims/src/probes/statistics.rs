//! The statistics every statistical step states: how many requests make a false verdict
//! less likely than [`MAX_FALSE_VERDICT`], and a tally of the status codes seen.

use std::collections::BTreeMap;

/// The largest probability with which a statistical step may give a false verdict.
pub const MAX_FALSE_VERDICT: f64 = 1e-9;

/// The smallest `n` with `(1 - p_event)^n < max_false`: after `n` independent requests an
/// event of probability `p_event` has been seen at least once, except with probability below
/// `max_false`.
///
/// `p_event = 0.5` (one of two service-c endpoints fails every request) gives 30.
/// `p_event >= 1` needs one request. `p_event <= 0` (or NaN) can never be observed, and
/// `max_false` outside `(0, 1)` cannot be met: both give `u32::MAX`, which a step should treat
/// as "this claim cannot be checked statistically".
pub fn requests_to_observe(p_event: f64, max_false: f64) -> u32 {
    if p_event.is_nan() || p_event <= 0.0 || !(max_false > 0.0 && max_false < 1.0) {
        return u32::MAX;
    }
    if p_event >= 1.0 {
        return 1;
    }
    let miss = 1.0 - p_event;
    // The closed form can be off by one through rounding; settle it by checking the bound.
    let estimate = (max_false.ln() / miss.ln()).floor().max(0.0);
    if estimate >= f64::from(u32::MAX) {
        return u32::MAX;
    }
    let mut n = (estimate as u32).saturating_sub(1).max(1);
    while miss.powf(f64::from(n)) >= max_false {
        n = n.saturating_add(1);
        if n == u32::MAX {
            break;
        }
    }
    n
}

/// The probability that `n` independent requests all miss an event of probability `p_event`.
#[cfg(test)] // only the tests use it
pub(crate) fn probability_all_miss(p_event: f64, n: u32) -> f64 {
    (1.0 - p_event).powf(f64::from(n))
}

/// Counts of HTTP status codes seen (0 for "no response", as curl's `000`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTally {
    counts: BTreeMap<u16, u32>,
}

impl StatusTally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one response.
    pub fn record(&mut self, status: u16) {
        *self.counts.entry(status).or_insert(0) += 1;
    }

    /// How often `status` was seen.
    pub fn count(&self, status: u16) -> u32 {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    /// How many responses were counted.
    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }

    /// Every status seen, in ascending order.
    pub fn statuses(&self) -> impl Iterator<Item = u16> + '_ {
        self.counts.keys().copied()
    }

    /// `"200×16, 500×14"`, statuses ascending; `"no responses"` when empty.
    pub fn summary(&self) -> String {
        if self.counts.is_empty() {
            return "no responses".into();
        }
        self.counts
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromIterator<u16> for StatusTally {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut tally = StatusTally::new();
        for status in iter {
            tally.record(status);
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_needs_thirty() {
        assert_eq!(requests_to_observe(0.5, MAX_FALSE_VERDICT), 30);
    }

    #[test]
    fn bound_is_tight() {
        for p in [0.5, 0.1, 0.25, 0.4, 0.6, 0.9, 0.01, 1.0 / 3.0] {
            let n = requests_to_observe(p, MAX_FALSE_VERDICT);
            assert!(
                probability_all_miss(p, n) < MAX_FALSE_VERDICT,
                "p={p} n={n}: bound not met"
            );
            assert!(
                probability_all_miss(p, n - 1) >= MAX_FALSE_VERDICT,
                "p={p} n={n}: n-1 would already do"
            );
        }
        // (1-0.5)^30 ≈ 9.3e-10 < 1e-9 while (1-0.5)^29 ≈ 1.9e-9 is not
        assert!(0.5f64.powi(30) < 1e-9 && 0.5f64.powi(29) >= 1e-9);
    }

    #[test]
    fn degenerate_probabilities() {
        assert_eq!(requests_to_observe(1.0, MAX_FALSE_VERDICT), 1);
        assert_eq!(requests_to_observe(0.0, MAX_FALSE_VERDICT), u32::MAX);
        assert_eq!(requests_to_observe(f64::NAN, MAX_FALSE_VERDICT), u32::MAX);
        assert_eq!(requests_to_observe(0.5, 0.0), u32::MAX);
        assert_eq!(requests_to_observe(0.5, 0.5), 2);
    }

    #[test]
    fn tally_counts_and_summarises() {
        let mut tally: StatusTally = [500, 200, 200, 500, 200].into_iter().collect();
        tally.record(0);
        assert_eq!(tally.count(200), 3);
        assert_eq!(tally.count(500), 2);
        assert_eq!(tally.count(403), 0);
        assert_eq!(tally.total(), 6);
        assert_eq!(tally.summary(), "0×1, 200×3, 500×2");
        assert_eq!(StatusTally::new().summary(), "no responses");
        assert_eq!(tally.statuses().collect::<Vec<_>>(), vec![0, 200, 500]);
    }
}
