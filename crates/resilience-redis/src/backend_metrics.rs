//! The backend-health series every Redis-backed instance records (feature `metrics`; free
//! without it): `resilience_backend_up` and `resilience_backend_errors_total{policy}`, under
//! the instance's name, so a dashboard shows which instance lost Redis and what it did then.

use std::sync::Arc;

use resilience::telemetry;

use crate::FailurePolicy;

/// Kept handles, registered once when the instance is built.
pub(crate) struct BackendMetrics {
    errors: telemetry::Counter,
    up: telemetry::Gauge,
}

impl BackendMetrics {
    /// Registers the series of instance `name`, up until a call fails.
    pub(crate) fn new(name: &Arc<str>, policy: FailurePolicy) -> Self {
        let up = telemetry::Gauge::register(&telemetry::BACKEND_UP, name, &[]);
        up.set(1.0);
        Self {
            errors: telemetry::Counter::register(
                &telemetry::BACKEND_ERRORS,
                name,
                &[("policy", policy.as_str())],
            ),
            up,
        }
    }

    /// Redis answered a call.
    pub(crate) fn answered(&self) {
        self.up.set(1.0);
    }

    /// A call to Redis failed.
    pub(crate) fn failed(&self) {
        self.up.set(0.0);
        self.errors.increment();
    }

    /// No call was made: the backend is known to be down.
    pub(crate) fn down(&self) {
        self.up.set(0.0);
    }
}
