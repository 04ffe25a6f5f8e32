//! [`CircuitBreakerMetrics`]: a snapshot with aioresilience's and c-breaker's field names.

use std::time::Duration;

use super::{CircuitState, DetectorState};

/// A point-in-time snapshot of a circuit breaker (aioresilience's `get_metrics()` and c-breaker's
/// `get_stats()` in one).
///
/// Durations serialize as seconds (`f64`), as aioresilience reports them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CircuitBreakerMetrics {
    /// The breaker's name.
    pub name: String,
    /// Its state when the snapshot was taken (never stale).
    pub state: CircuitState,
    /// Calls with a counted outcome: `successful_requests + failed_requests`.
    pub total_requests: u64,
    /// Calls that succeeded.
    pub successful_requests: u64,
    /// Calls that failed.
    pub failed_requests: u64,
    /// Calls whose outcome was ignored (by the classifier, or abandoned by cancellation).
    pub ignored_requests: u64,
    /// Calls rejected without running.
    pub rejected_requests: u64,
    /// `failed_requests / total_requests`, 0.0 when there were none.
    pub failure_rate: f64,
    /// Failures in a row.
    pub consecutive_failures: u64,
    /// Successes in a row.
    pub consecutive_successes: u64,
    /// Time since the last counted failure.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::metrics::seconds"))]
    pub time_since_last_failure: Option<Duration>,
    /// Time until an open circuit half-opens (c-breaker's `remaining_timeout`).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::metrics::seconds"))]
    pub remaining_open_time: Option<Duration>,
    /// Probes running while half-open.
    pub half_open_calls: u32,
    /// Consecutive trips without closing in between.
    pub trips: u32,
    /// The failure detector's state (c-breaker's `detector_state`).
    pub detector: DetectorState,
}

impl CircuitBreakerMetrics {
    /// Fills the derived fields.
    pub(super) fn finish(mut self) -> Self {
        self.total_requests = self.successful_requests + self.failed_requests;
        self.failure_rate = if self.total_requests == 0 {
            0.0
        } else {
            self.failed_requests as f64 / self.total_requests as f64
        };
        self
    }
}
