//! [`FallbackMetrics`]: a snapshot with aioresilience's field names.

/// A point-in-time snapshot of a [`Fallback`](super::Fallback) (aioresilience's `get_metrics()`).
///
/// Every call that ran to an end is in exactly one of `successful_executions`,
/// `fallback_executions`, `failed_executions` and `passed_through_executions`, and
/// `total_executions` is their sum.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FallbackMetrics {
    /// The fallback's name.
    pub name: String,
    /// Calls that ran to an end.
    pub total_executions: u64,
    /// Calls whose operation succeeded; no fallback was used.
    pub successful_executions: u64,
    /// Calls answered by a fallback.
    pub fallback_executions: u64,
    /// Calls whose every fallback failed ([`Error::FallbackFailed`](crate::Error::FallbackFailed)).
    pub failed_executions: u64,
    /// Calls whose error was not selected for fallback and was returned untouched.
    pub passed_through_executions: u64,
    /// `fallback_executions / total_executions`, 0.0 when there were none.
    pub fallback_rate: f64,
    /// `failed_executions / total_executions`, 0.0 when there were none.
    pub failure_rate: f64,
}

impl FallbackMetrics {
    /// Fills the derived fields.
    pub(super) fn finish(mut self) -> Self {
        self.total_executions = self.successful_executions
            + self.fallback_executions
            + self.failed_executions
            + self.passed_through_executions;
        let rate = |part: u64| {
            if self.total_executions == 0 {
                0.0
            } else {
                part as f64 / self.total_executions as f64
            }
        };
        self.fallback_rate = rate(self.fallback_executions);
        self.failure_rate = rate(self.failed_executions);
        self
    }
}
