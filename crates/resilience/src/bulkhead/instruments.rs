//! The bulkhead's metrics: its rows of the table in [`crate::telemetry`], registered once
//! when the bulkhead is built.

use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::{self, Counter, Gauge, Histogram};

#[derive(Debug)]
pub(crate) struct Instruments {
    /// Accepted, then rejections by `reason_index`: capacity full, queue full, wait timeout.
    decisions: [Counter; 4],
    pub(super) active: Gauge,
    pub(super) queued: Gauge,
    wait: Histogram,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        Self {
            decisions: ["accepted", "capacity_full", "queue_full", "wait_timeout"].map(
                |decision| {
                    Counter::register(
                        &telemetry::BULKHEAD_DECISIONS,
                        name,
                        &[("decision", decision)],
                    )
                },
            ),
            active: Gauge::register(&telemetry::BULKHEAD_ACTIVE, name, &[]),
            queued: Gauge::register(&telemetry::BULKHEAD_QUEUED, name, &[]),
            wait: Histogram::register(&telemetry::BULKHEAD_WAIT_DURATION, name, &[]),
        }
    }

    /// A call took a slot after waiting `waited` (zero on the free-slot path).
    #[inline]
    pub(crate) fn entered(&self, waited: Duration) {
        self.decisions[0].increment();
        self.active.increment();
        if !waited.is_zero() {
            self.wait.record(waited);
        }
    }

    /// A call was rejected; `reason` is the slot of `reason_index`.
    #[inline]
    pub(crate) fn rejected(&self, reason: usize) {
        self.decisions[1 + reason].increment();
    }
}
