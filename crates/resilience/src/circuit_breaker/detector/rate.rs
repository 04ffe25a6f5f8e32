//! Opens when the rate of failures, or of slow calls, in a sliding window reaches a threshold.

use std::time::Duration;

use tokio::time::Instant;

use super::{CallRecord, CallWindow, DetectorState, FailureDetector, RestoreError};
use crate::circuit_breaker::Window;

/// What a [`RateDetector`] measures the rate of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Counted {
    /// Failed calls (c-breaker's sliding-window detector).
    Failures,
    /// Calls that ran for at least this long, failed or not (resilience4j's slow-call rate).
    SlowCalls(Duration),
}

/// Trips when, over a window holding at least `min_calls` calls, the counted calls make up at
/// least `threshold` of them (`>=`, as c-breaker).
#[derive(Debug)]
pub(crate) struct RateDetector {
    counted: Counted,
    threshold: f64,
    min_calls: u64,
    window: CallWindow,
}

impl RateDetector {
    pub(crate) fn new(counted: Counted, window: Window, threshold: f64, min_calls: u32) -> Self {
        Self {
            counted,
            threshold,
            min_calls: min_calls.into(),
            window: CallWindow::new(window),
        }
    }

    fn kind(&self) -> &'static str {
        match self.counted {
            Counted::Failures => "failure_rate",
            Counted::SlowCalls(_) => "slow_call_rate",
        }
    }
}

impl FailureDetector for RateDetector {
    fn record(&mut self, call: CallRecord, now: Instant) {
        let slow = match self.counted {
            Counted::SlowCalls(limit) => call.duration.is_some_and(|duration| duration >= limit),
            Counted::Failures => false,
        };
        self.window.record(call.failed, slow, now);
    }

    fn should_trip(&mut self, now: Instant) -> bool {
        let tally = self.window.tally(now);
        if tally.calls == 0 || tally.calls < self.min_calls {
            return false;
        }
        let counted = match self.counted {
            Counted::Failures => tally.failures,
            Counted::SlowCalls(_) => tally.slow,
        };
        counted as f64 / tally.calls as f64 >= self.threshold
    }

    fn reset(&mut self) {
        self.window.clear();
    }

    fn needs_duration(&self) -> bool {
        matches!(self.counted, Counted::SlowCalls(_))
    }

    fn snapshot(&self, now: Instant) -> DetectorState {
        DetectorState::new(self.kind()).with_calls(self.window.snapshot(now))
    }

    fn restore(&mut self, state: &DetectorState, now: Instant) -> Result<(), RestoreError> {
        state.expect_kind(self.kind())?;
        self.window.restore(&state.calls, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(failed: bool, millis: u64) -> CallRecord {
        CallRecord {
            failed,
            duration: Some(Duration::from_millis(millis)),
        }
    }

    #[test]
    fn failure_rate_needs_min_calls_and_trips_at_threshold() {
        // c-breaker: 4 failures below min_calls 5 do not trip; 50 % of 10 trips (>=).
        let now = Instant::now();
        let mut detector = RateDetector::new(Counted::Failures, Window::Calls(10), 0.5, 5);
        for _ in 0..4 {
            detector.record(call(true, 0), now);
        }
        assert!(!detector.should_trip(now));
        detector.reset();
        for i in 0..10 {
            detector.record(call(i % 2 == 0, 0), now);
        }
        assert!(detector.should_trip(now));
    }

    #[test]
    fn failure_rate_below_threshold_does_not_trip_and_window_slides() {
        let now = Instant::now();
        let mut detector = RateDetector::new(Counted::Failures, Window::Calls(10), 0.5, 5);
        for i in 0..10 {
            detector.record(call(i < 2, 0), now);
        }
        assert!(!detector.should_trip(now), "20 % is below 50 %");
        detector.reset();
        for i in 0..10 {
            detector.record(call(i < 5, 0), now);
        }
        for _ in 0..5 {
            detector.record(call(false, 0), now);
        }
        assert!(!detector.should_trip(now), "the five failures slid out");
    }

    #[test]
    fn slow_calls_count_by_duration() {
        let now = Instant::now();
        let limit = Duration::from_millis(100);
        let mut detector = RateDetector::new(Counted::SlowCalls(limit), Window::Calls(4), 0.5, 4);
        assert!(detector.needs_duration());
        detector.record(call(true, 99), now);
        detector.record(call(false, 150), now);
        detector.record(call(false, 100), now);
        detector.record(call(false, 10), now);
        detector.record(call(false, 10), now);
        assert!(
            detector.should_trip(now),
            "2 of the last 4 calls took >= 100 ms"
        );
    }
}
