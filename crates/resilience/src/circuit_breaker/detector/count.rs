//! Opens after `threshold` failures within a time window (c-breaker's time-based detector).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::{CallGroup, CallRecord, DetectorState, FailureDetector, RestoreError};

const KIND: &str = "failure_count";

/// Counts failures younger than `window`; successes do not lower the count.
///
/// Only the newest `threshold` failure times are kept: the circuit opens exactly when the
/// oldest of them is still inside the window, so memory is bounded by the threshold, not by
/// the call rate.
#[derive(Debug)]
pub(crate) struct FailureCount {
    threshold: usize,
    window: Duration,
    failures: VecDeque<Instant>,
}

/// The most entries a detector reserves up front; more grow as calls arrive.
pub(super) const PREALLOCATED: usize = 1024;

impl FailureCount {
    pub(crate) fn new(threshold: u32, window: Duration) -> Self {
        let threshold = threshold as usize;
        Self {
            threshold,
            window,
            // Grown as failures arrive: a configured threshold is a bound, not a size to
            // reserve (`u32::MAX` would ask for tens of gigabytes at construction).
            failures: VecDeque::with_capacity(threshold.min(PREALLOCATED)),
        }
    }

    /// A failure counts while it is younger than the window (c-breaker keeps `ts > now - window`).
    fn in_window(&self, at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(at) < self.window
    }
}

impl FailureDetector for FailureCount {
    fn record(&mut self, call: CallRecord, now: Instant) {
        if call.failed {
            if self.failures.len() == self.threshold {
                self.failures.pop_front();
            }
            self.failures.push_back(now);
        }
    }

    fn should_trip(&mut self, now: Instant) -> bool {
        self.failures.len() >= self.threshold
            && self
                .failures
                .front()
                .is_some_and(|&oldest| self.in_window(oldest, now))
    }

    fn reset(&mut self) {
        self.failures.clear();
    }

    fn success_is_noop(&self) -> bool {
        true
    }

    fn snapshot(&self, now: Instant) -> DetectorState {
        let calls = self
            .failures
            .iter()
            .filter(|&&at| self.in_window(at, now))
            .map(|&at| CallGroup {
                age: now.saturating_duration_since(at),
                calls: 1,
                failures: 1,
                slow: 0,
            })
            .collect();
        DetectorState::new(KIND).with_calls(calls)
    }

    fn restore(&mut self, state: &DetectorState, now: Instant) -> Result<(), RestoreError> {
        state.expect_kind(KIND)?;
        if state.calls.iter().any(|group| group.failures > group.calls) {
            return Err(RestoreError::Malformed("calls"));
        }
        self.failures.clear();
        // Only the newest `threshold` failures are kept, so only they are materialised,
        // whatever counts the snapshot (which may come from anywhere) claims.
        let mut groups: Vec<(Instant, u64)> = state
            .calls
            .iter()
            .filter_map(|group| Some((now.checked_sub(group.age)?, group.failures)))
            .collect();
        groups.sort_unstable_by_key(|&(at, _)| std::cmp::Reverse(at));
        let mut newest_first = Vec::new();
        for (at, failures) in groups {
            let room = self.threshold - newest_first.len();
            if room == 0 {
                break;
            }
            let take = usize::try_from(failures).unwrap_or(usize::MAX).min(room);
            newest_first.extend(std::iter::repeat_n(at, take));
        }
        self.failures.extend(newest_first.into_iter().rev());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restoring_huge_counts_keeps_only_the_newest_threshold_failures() {
        let now = Instant::now();
        let mut detector = FailureCount::new(3, Duration::from_secs(60));
        let state = DetectorState::new(KIND).with_calls(vec![
            CallGroup {
                age: Duration::from_secs(50),
                calls: u64::MAX,
                failures: u64::MAX,
                slow: 0,
            },
            CallGroup {
                age: Duration::from_secs(10),
                calls: 1,
                failures: 1,
                slow: 0,
            },
        ]);
        detector.restore(&state, now).unwrap();
        assert_eq!(detector.failures.len(), 3);
        // Oldest first: two from 50 s ago, then the one from 10 s ago.
        assert_eq!(detector.failures[0], now - Duration::from_secs(50));
        assert_eq!(detector.failures[2], now - Duration::from_secs(10));
        assert!(detector.should_trip(now));
        // The 50 s old failures leave the window at 60 s: fewer than 3 remain.
        assert!(!detector.should_trip(now + Duration::from_secs(10)));

        let bad = DetectorState::new(KIND).with_calls(vec![CallGroup {
            age: Duration::ZERO,
            calls: 0,
            failures: 1,
            slow: 0,
        }]);
        assert_eq!(
            detector.restore(&bad, now),
            Err(RestoreError::Malformed("calls"))
        );
    }

    const FAIL: CallRecord = CallRecord::FAILED;
    const OK: CallRecord = CallRecord::SUCCEEDED;

    #[test]
    fn successes_do_not_reduce_the_count() {
        // c-breaker: 3 failures among 300 successes still trip at threshold 3.
        let t0 = Instant::now();
        let mut detector = FailureCount::new(3, Duration::from_secs(60));
        for i in 0..300 {
            detector.record(if i % 100 == 0 { FAIL } else { OK }, t0);
        }
        assert!(detector.should_trip(t0));
    }

    #[test]
    fn failures_age_out_exactly_at_the_window() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let mut detector = FailureCount::new(2, window);
        detector.record(FAIL, t0);
        // Second failure one nanosecond before the first leaves the window: trips.
        let almost = t0 + window - Duration::from_nanos(1);
        detector.record(FAIL, almost);
        assert!(detector.should_trip(almost));
        detector.reset();
        detector.record(FAIL, t0);
        // At exactly the window the first failure no longer counts.
        detector.record(FAIL, t0 + window);
        assert!(!detector.should_trip(t0 + window));
    }

    #[test]
    fn snapshot_round_trips_ages() {
        let t0 = Instant::now();
        let mut detector = FailureCount::new(3, Duration::from_secs(60));
        detector.record(FAIL, t0);
        detector.record(FAIL, t0 + Duration::from_secs(10));
        let now = t0 + Duration::from_secs(20);
        let state = detector.snapshot(now);
        assert_eq!(state.calls[0].age, Duration::from_secs(20));
        let mut other = FailureCount::new(3, Duration::from_secs(60));
        other.restore(&state, now).unwrap();
        other.record(FAIL, now);
        assert!(other.should_trip(now));
    }
}
