//! Fallback's metrics: its row of the table in [`crate::telemetry`], registered once when the
//! fallback is built.

use std::sync::Arc;

use crate::telemetry::{self, Counter};

#[derive(Debug)]
pub(crate) struct Instruments {
    pub(super) triggered: Counter,
    pub(super) failed: Counter,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        let result = |result| Counter::register(&telemetry::FALLBACKS, name, &[("result", result)]);
        Self {
            triggered: result("triggered"),
            failed: result("failed"),
        }
    }
}
