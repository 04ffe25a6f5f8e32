//! [`HedgeMetrics`]: a snapshot of a hedge's counters.

use std::time::Duration;

/// A point-in-time snapshot of a [`Hedge`](super::Hedge).
///
/// Durations serialize as seconds (`f64`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HedgeMetrics {
    /// The hedge's name.
    pub name: String,
    /// Calls started.
    pub total_requests: u64,
    /// Extra attempts started (not counting the primaries).
    pub hedged_attempts: u64,
    /// Calls whose accepted result came from an extra attempt.
    pub hedge_wins: u64,
    /// Extra attempts the budget refused.
    pub skipped_by_budget: u64,
    /// Calls whose every attempt failed.
    pub failed_requests: u64,
    /// `hedged_attempts / total_requests`: the extra load hedging adds, 0.0 with no calls.
    pub hedge_rate: f64,
    /// The delay a new call would use now: the fixed delay, zero in parallel mode, the
    /// measured percentile once there are enough samples, `None` otherwise.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::metrics::seconds"))]
    pub current_delay: Option<Duration>,
}
