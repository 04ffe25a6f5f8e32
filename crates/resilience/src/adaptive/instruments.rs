//! The adaptive limiter's metrics: its rows of the table in [`crate::telemetry`], registered
//! once when the limiter is built.

use std::sync::Arc;

use crate::telemetry::{self, Counter, Gauge, Histogram};

#[derive(Debug)]
pub(crate) struct Instruments {
    pub(super) limit: Gauge,
    pub(super) accepted: Counter,
    pub(super) rejected: Counter,
    pub(super) latency: Histogram,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>, limit: u32) -> Self {
        let decision = |decision| {
            Counter::register(
                &telemetry::ADAPTIVE_DECISIONS,
                name,
                &[("decision", decision)],
            )
        };
        let instruments = Self {
            limit: Gauge::register(&telemetry::ADAPTIVE_LIMIT, name, &[]),
            accepted: decision("accepted"),
            rejected: decision("rejected"),
            latency: Histogram::register(&telemetry::ADAPTIVE_LATENCY, name, &[]),
        };
        instruments.limit.set(f64::from(limit));
        instruments
    }
}
