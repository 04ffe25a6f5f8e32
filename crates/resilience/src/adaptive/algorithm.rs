//! [`LimitAlgorithm`]: the pure part of adaptive concurrency, and the [`Sample`] it learns from.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::classify::Outcome;

/// One completed call, as the limiter reports it to its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// When the call was admitted.
    pub started: Instant,
    /// How long it took, from admission to its outcome.
    pub latency: Duration,
    /// Calls in flight when it was admitted, itself included (Netflix's `inflight`).
    pub in_flight: u32,
    /// How it went: a failure is a "drop" to the latency algorithms; an ignored outcome (a
    /// cancelled call, say) carries no information and changes no limit.
    pub outcome: Outcome,
}

impl Sample {
    /// A sample; for tests and simulations that drive an algorithm directly.
    pub fn new(started: Instant, latency: Duration, in_flight: u32, outcome: Outcome) -> Self {
        Self {
            started,
            latency,
            in_flight,
            outcome,
        }
    }

    /// When the call finished: `started + latency`.
    pub fn finished(&self) -> Instant {
        self.started + self.latency
    }
}

/// How an adaptive limiter moves its limit: a pure state machine fed with samples.
///
/// No clock, no atomics, no async: the limiter calls it under a short lock with each completed
/// call's [`Sample`], and with the current time from [`poll`](Self::poll) so windows that are
/// due close even when no call completes. Implemented by [`Aimd`](super::Aimd) (aioresilience's),
/// [`Vegas`](super::Vegas) and [`Gradient2`](super::Gradient2); plug in your own with
/// [`AlgorithmConfig::custom`](super::AlgorithmConfig::custom).
pub trait LimitAlgorithm: fmt::Debug + Send + 'static {
    /// The algorithm's name for events and metrics (`"aimd"`, `"vegas"`, ...).
    fn name(&self) -> &'static str;

    /// The current limit, at least 1.
    fn limit(&self) -> u32;

    /// Learns from one completed call and returns the new limit.
    fn update(&mut self, sample: &Sample) -> u32;

    /// Lets time pass: closes a measurement window that is due at `now`. Returns the limit.
    fn poll(&mut self, now: Instant) -> u32 {
        let _ = now;
        self.limit()
    }
}

impl LimitAlgorithm for Box<dyn LimitAlgorithm> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn limit(&self) -> u32 {
        (**self).limit()
    }

    fn update(&mut self, sample: &Sample) -> u32 {
        (**self).update(sample)
    }

    fn poll(&mut self, now: Instant) -> u32 {
        (**self).poll(now)
    }
}

/// Netflix's `Log10RootFunction`: `max(1, floor(log10(limit)))`, the scale of Vegas' steps.
/// (Netflix switches to a square root above 1000; we keep the logarithm throughout, so the
/// steps never jump at 1000.)
pub(crate) fn log10_root(limit: u32) -> u32 {
    limit.checked_ilog10().unwrap_or(0).max(1)
}

/// Clamps a floating estimate to `min..=max` and reads it as an integer limit (truncating,
/// as Netflix's `(int)` cast does).
pub(crate) fn clamp_limit(estimate: f64, min: u32, max: u32) -> f64 {
    estimate.clamp(f64::from(min), f64::from(max))
}

/// The integer limit of a clamped estimate.
pub(crate) fn as_limit(estimate: f64) -> u32 {
    // The estimate is clamped to u32 bounds first, so the cast is exact.
    estimate.max(1.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log10_root_is_at_least_one() {
        let roots: Vec<u32> = [0, 1, 9, 10, 99, 100, 999, 1000, 100_000]
            .into_iter()
            .map(log10_root)
            .collect();
        assert_eq!(roots, [1, 1, 1, 1, 1, 2, 2, 3, 5]);
    }

    #[test]
    fn a_sample_knows_when_it_finished() {
        let start = Instant::now();
        let sample = Sample::new(start, Duration::from_millis(5), 3, Outcome::Success);
        assert_eq!(sample.finished(), start + Duration::from_millis(5));
        assert_eq!(as_limit(clamp_limit(0.2, 0, 10)), 1);
        assert_eq!(as_limit(clamp_limit(57.9, 1, 50)), 50);
    }
}
