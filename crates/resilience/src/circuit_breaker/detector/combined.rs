//! Combines detectors: open when any of them (or all of them) would.

use tokio::time::Instant;

use super::{CallRecord, DetectorState, FailureDetector, RestoreError};
use crate::circuit_breaker::Combine;

const KIND: &str = "combined";

/// Feeds every call to each child and trips on any (or all) of them (c-breaker's combined
/// detector, generalised to any number of children).
#[derive(Debug)]
pub(crate) struct Combined {
    mode: Combine,
    children: Vec<Box<dyn FailureDetector>>,
}

impl Combined {
    pub(crate) fn new(mode: Combine, children: Vec<Box<dyn FailureDetector>>) -> Self {
        Self { mode, children }
    }
}

impl FailureDetector for Combined {
    fn record(&mut self, call: CallRecord, now: Instant) {
        for child in &mut self.children {
            child.record(call, now);
        }
    }

    fn should_trip(&mut self, now: Instant) -> bool {
        // Every child is asked (no short-circuit) so each can prune its window.
        let (mut any, mut all) = (false, !self.children.is_empty());
        for child in &mut self.children {
            let vote = child.should_trip(now);
            any |= vote;
            all &= vote;
        }
        match self.mode {
            Combine::Any => any,
            Combine::All => all,
        }
    }

    fn reset(&mut self) {
        for child in &mut self.children {
            child.reset();
        }
    }

    fn success_is_noop(&self) -> bool {
        self.children.iter().all(|child| child.success_is_noop())
    }

    fn needs_duration(&self) -> bool {
        self.children.iter().any(|child| child.needs_duration())
    }

    fn snapshot(&self, now: Instant) -> DetectorState {
        let children = self
            .children
            .iter()
            .map(|child| child.snapshot(now))
            .collect();
        DetectorState::new(KIND).with_children(children)
    }

    fn restore(&mut self, state: &DetectorState, now: Instant) -> Result<(), RestoreError> {
        state.expect_kind(KIND)?;
        if state.children.len() != self.children.len() {
            return Err(RestoreError::Malformed("children"));
        }
        for (child, child_state) in self.children.iter_mut().zip(&state.children) {
            child.restore(child_state, now)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConsecutiveFailures, Counted, RateDetector};
    use super::*;
    use crate::circuit_breaker::Window;

    fn detector(mode: Combine) -> Combined {
        Combined::new(
            mode,
            vec![
                Box::new(ConsecutiveFailures::new(3)),
                Box::new(RateDetector::new(
                    Counted::Failures,
                    Window::Calls(10),
                    0.5,
                    4,
                )),
            ],
        )
    }

    const FAIL: CallRecord = CallRecord::FAILED;
    const OK: CallRecord = CallRecord::SUCCEEDED;

    #[test]
    fn any_trips_on_either_side() {
        let now = Instant::now();
        // Rate side alone: alternating, never three in a row, 50 % of 4.
        let mut any = detector(Combine::Any);
        for call in [FAIL, OK, FAIL, OK] {
            any.record(call, now);
        }
        assert!(any.should_trip(now));
        // Consecutive side alone: three failures but below min_calls of the rate side.
        let mut any = detector(Combine::Any);
        for call in [FAIL, FAIL, FAIL] {
            any.record(call, now);
        }
        assert!(any.should_trip(now));
    }

    #[test]
    fn all_waits_for_both() {
        let now = Instant::now();
        let mut all = detector(Combine::All);
        for call in [FAIL, FAIL, FAIL] {
            all.record(call, now);
        }
        assert!(!all.should_trip(now), "rate side has only 3 < 4 calls");
        all.record(FAIL, now);
        assert!(all.should_trip(now));
    }
}
