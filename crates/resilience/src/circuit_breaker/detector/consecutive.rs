//! Opens after `threshold` failures in a row (the aioresilience default).

use tokio::time::Instant;

use super::{CallRecord, DetectorState, FailureDetector, RestoreError};

const KIND: &str = "consecutive_failures";

/// Counts failures in a row; any success starts the count again.
#[derive(Debug)]
pub(crate) struct ConsecutiveFailures {
    threshold: u32,
    count: u32,
}

impl ConsecutiveFailures {
    pub(crate) fn new(threshold: u32) -> Self {
        Self {
            threshold,
            count: 0,
        }
    }
}

impl FailureDetector for ConsecutiveFailures {
    fn record(&mut self, call: CallRecord, _now: Instant) {
        self.count = if call.failed {
            self.count.saturating_add(1)
        } else {
            0
        };
    }

    fn should_trip(&mut self, _now: Instant) -> bool {
        self.count >= self.threshold
    }

    fn reset(&mut self) {
        self.count = 0;
    }

    fn success_is_noop(&self) -> bool {
        self.count == 0
    }

    fn snapshot(&self, _now: Instant) -> DetectorState {
        DetectorState::new(KIND).with_counters(vec![self.count.into()])
    }

    fn restore(&mut self, state: &DetectorState, _now: Instant) -> Result<(), RestoreError> {
        state.expect_kind(KIND)?;
        let count = *state
            .counters
            .first()
            .ok_or(RestoreError::Malformed("counters"))?;
        self.count = u32::try_from(count).map_err(|_| RestoreError::Malformed("counters"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(failed: bool) -> CallRecord {
        CallRecord {
            failed,
            duration: None,
        }
    }

    #[test]
    fn trips_at_threshold_and_success_restarts_the_count() {
        let now = Instant::now();
        let mut detector = ConsecutiveFailures::new(3);
        detector.record(call(true), now);
        detector.record(call(true), now);
        detector.record(call(false), now);
        assert!(detector.success_is_noop());
        detector.record(call(true), now);
        detector.record(call(true), now);
        assert!(!detector.should_trip(now));
        detector.record(call(true), now);
        assert!(detector.should_trip(now));
    }

    #[test]
    fn snapshot_round_trips() {
        let now = Instant::now();
        let mut detector = ConsecutiveFailures::new(3);
        detector.record(call(true), now);
        let state = detector.snapshot(now);
        let mut other = ConsecutiveFailures::new(3);
        other.restore(&state, now).unwrap();
        assert_eq!(other.count, 1);
        assert!(other
            .restore(&DetectorState::new("failure_rate"), now)
            .is_err());
    }
}
