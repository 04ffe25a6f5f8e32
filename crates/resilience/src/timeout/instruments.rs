//! Timeout's metrics: its rows of the table in [`crate::telemetry`], registered once when the
//! timeout is built.

use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::{self, Counter, Histogram};

#[derive(Debug)]
pub(crate) struct Instruments {
    timeouts: Counter,
    duration: Histogram,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        Self {
            timeouts: Counter::register(&telemetry::TIMEOUTS, name, &[]),
            duration: Histogram::register(&telemetry::TIMEOUT_CALL_DURATION, name, &[]),
        }
    }

    /// A call ended within its limit after `elapsed`.
    #[inline]
    pub(crate) fn finished(&self, elapsed: Duration) {
        self.duration.record(elapsed);
    }

    /// A call was cancelled at its limit.
    #[inline]
    pub(crate) fn timed_out(&self) {
        self.timeouts.increment();
    }
}
