//! The rate limiter's metrics: its row of the table in [`crate::telemetry`], registered once
//! when the limiter is built. Public so that limiters of other crates (the Redis ones) record
//! the same series.

use std::sync::Arc;

use super::Decision;
use crate::telemetry::{self, Counter};

/// `resilience_rate_limit_decisions_total{name, decision}` for one limiter: the kept handles.
///
/// A limiter builds one with its name when it is built and calls [`record`](Self::record) with
/// every decision it reports. Zero-sized and free without feature `metrics`.
#[derive(Debug, Clone)]
pub struct RateLimiterInstruments {
    allowed: Counter,
    rejected: Counter,
}

impl RateLimiterInstruments {
    /// Registers the limiter `name`'s handles with the installed recorder.
    pub fn new(name: &Arc<str>) -> Self {
        let decision = |value| {
            Counter::register(
                &telemetry::RATE_LIMIT_DECISIONS,
                name,
                &[("decision", value)],
            )
        };
        Self {
            allowed: decision("allowed"),
            rejected: decision("rejected"),
        }
    }

    /// Counts one decision.
    #[inline]
    pub fn record(&self, decision: &Decision) {
        if decision.is_allowed() {
            self.allowed.increment();
        } else {
            self.rejected.increment();
        }
    }
}
