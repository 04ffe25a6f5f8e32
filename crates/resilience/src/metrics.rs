//! Metric snapshots: what every pattern reports, with aioresilience's field names.
//!
//! Each pattern has its own snapshot struct (for example
//! [`CircuitBreakerMetrics`](crate::circuit_breaker::CircuitBreakerMetrics)), serialisable with
//! the `serde` feature. One meaning per field across patterns: `*_requests` are counts of calls,
//! `*_rate` and `utilization` are ratios in `0..=1`, durations serialize as seconds.

#[cfg(feature = "serde")]
pub(crate) fn seconds<S: serde::Serializer>(
    duration: &Option<std::time::Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

/// Sets each counter back to zero: the body of every pattern's `reset_metrics`.
pub(crate) fn reset_counters<'a>(
    counters: impl IntoIterator<Item = &'a std::sync::atomic::AtomicU64>,
) {
    for counter in counters {
        counter.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A [`Tally`](crate::tally::Tally) that `reset_metrics` can set back to zero: a reset
/// remembers what had been counted rather than writing every thread's pair.
pub(crate) struct ResettableTally {
    tally: crate::tally::Tally,
    /// The tally's yes and no counts at the last reset.
    at_reset: [std::sync::atomic::AtomicU64; 2],
}

impl ResettableTally {
    pub(crate) fn new() -> Self {
        Self {
            tally: crate::tally::Tally::new(),
            at_reset: Default::default(),
        }
    }

    /// Counts one answer, `yes` or no.
    #[inline]
    pub(crate) fn count(&self, yes: bool) {
        self.tally.count(yes);
    }

    /// The counts since the last reset, yes and no. A count racing a reset lands on either
    /// side of it, as it would on one atomic.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let (yes, no) = self.tally.totals();
        let [yes_before, no_before] = self.at_reset.each_ref().map(load);
        (yes.saturating_sub(yes_before), no.saturating_sub(no_before))
    }

    /// Back to zero.
    pub(crate) fn reset(&self) {
        let (yes, no) = self.tally.totals();
        let [yes_before, no_before] = &self.at_reset;
        yes_before.store(yes, std::sync::atomic::Ordering::Relaxed);
        no_before.store(no, std::sync::atomic::Ordering::Relaxed);
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

impl std::fmt::Debug for ResettableTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.totals().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_tally_counts_from_zero() {
        let tally = ResettableTally::new();
        tally.count(true);
        tally.count(true);
        tally.count(false);
        assert_eq!(tally.totals(), (2, 1));
        tally.reset();
        assert_eq!(tally.totals(), (0, 0));
        tally.count(false);
        assert_eq!(tally.totals(), (0, 1));
    }
}
