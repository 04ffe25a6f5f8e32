//! The throttle's metrics: its row of the table in [`crate::telemetry`], registered once when
//! the throttle is built.

use std::sync::Arc;

use crate::telemetry::{self, Counter};

#[derive(Debug)]
pub(crate) struct Instruments {
    admitted: Counter,
    throttled: Counter,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        let decision = |decision| {
            Counter::register(
                &telemetry::THROTTLE_DECISIONS,
                name,
                &[("decision", decision)],
            )
        };
        Self {
            admitted: decision("admitted"),
            throttled: decision("throttled"),
        }
    }

    #[inline]
    pub(crate) fn admitted(&self) {
        self.admitted.increment();
    }

    #[inline]
    pub(crate) fn throttled(&self) {
        self.throttled.increment();
    }
}
