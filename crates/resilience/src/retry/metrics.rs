//! [`RetryMetrics`]: a snapshot with aioresilience's field names.

use std::time::Duration;

/// A point-in-time snapshot of a retry policy (aioresilience's `get_metrics()`).
///
/// Durations serialize as seconds (`f64`), as aioresilience reports them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RetryMetrics {
    /// The policy's name.
    pub name: String,
    /// Attempts made, first calls and retries alike.
    pub total_attempts: u64,
    /// Attempts that succeeded.
    pub successful_attempts: u64,
    /// Attempts that failed, retried or not (a rejected result counts as failed).
    pub failed_attempts: u64,
    /// Time spent waiting between attempts (completed waits only).
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub total_delay: Duration,
    /// The last failure, rendered for display.
    pub last_error: Option<String>,
    /// Calls that gave up: out of attempts, time or budget.
    pub retries_exhausted: u64,
    /// `successful_attempts / total_attempts`, 0.0 when there were none.
    pub success_rate: f64,
}

#[cfg(feature = "serde")]
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    crate::metrics::seconds(&Some(*duration), serializer)
}
