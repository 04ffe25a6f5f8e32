//! Backpressure's metrics: its rows of the table in [`crate::telemetry`], registered once when
//! the controller is built.

use std::sync::Arc;

use crate::telemetry::{self, Counter, Gauge};

#[derive(Debug)]
pub(crate) struct Instruments {
    pub(super) accepted: Counter,
    pub(super) rejected: Counter,
    /// 1 while backpressure is on.
    pub(super) active: Gauge,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        let decision = |decision| {
            Counter::register(
                &telemetry::BACKPRESSURE_DECISIONS,
                name,
                &[("decision", decision)],
            )
        };
        Self {
            accepted: decision("accepted"),
            rejected: decision("rejected"),
            active: Gauge::register(&telemetry::BACKPRESSURE_ACTIVE, name, &[]),
        }
    }
}
