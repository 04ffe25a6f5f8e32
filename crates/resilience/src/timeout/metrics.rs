//! [`TimeoutMetrics`]: a snapshot with aioresilience's field names.

use std::time::Duration;

/// A point-in-time snapshot of a [`Timeout`](super::Timeout) (aioresilience's `get_metrics()`).
///
/// `total_executions` counts the calls that ran to an end:
/// `successful_executions + failed_executions + timed_out_executions`. A call cancelled by
/// its caller before it ended is in none of them; one rejected by an expired deadline is in
/// `rejected_executions` only. Durations serialize as seconds (`f64`), as aioresilience
/// reports them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TimeoutMetrics {
    /// The timeout's name.
    pub name: String,
    /// Its configured limit.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub limit: Duration,
    /// Calls that ran to an end.
    pub total_executions: u64,
    /// Calls that succeeded in time.
    pub successful_executions: u64,
    /// Calls that returned their own error in time (never counted as
    /// timeouts).
    pub failed_executions: u64,
    /// Calls cancelled at their limit.
    pub timed_out_executions: u64,
    /// Calls rejected without running because the enclosing deadline had passed.
    pub rejected_executions: u64,
    /// Time spent in the calls that ran to an end.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub total_execution_time: Duration,
    /// `total_execution_time / total_executions`, zero when there were none.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub average_execution_time: Duration,
    /// `timed_out_executions / total_executions`, 0.0 when there were none.
    pub timeout_rate: f64,
}

#[cfg(feature = "serde")]
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    crate::metrics::seconds(&Some(*duration), serializer)
}
