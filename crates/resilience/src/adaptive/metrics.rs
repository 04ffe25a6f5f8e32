//! [`AdaptiveMetrics`]: a snapshot with aioresilience's keys.

/// A point-in-time snapshot of an adaptive limiter (the keys of aioresilience's `get_stats()`).
///
/// `utilization` is a ratio in `0..=1`, and the limit is always an integer.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct AdaptiveMetrics {
    /// The limiter's name.
    pub name: String,
    /// The algorithm moving the limit (`"aimd"`, `"vegas"`, `"gradient2"`, ...).
    pub algorithm: &'static str,
    /// The limit now.
    pub current_limit: u32,
    /// Calls in flight.
    pub active_count: u32,
    /// Calls admitted.
    pub total_requests: u64,
    /// Calls reported successful.
    pub success_count: u64,
    /// Calls reported failed.
    pub failure_count: u64,
    /// Calls ignored, explicitly or by dropping their permit.
    pub ignored_count: u64,
    /// Calls refused at the limit.
    pub rejected_count: u64,
    /// `active_count / current_limit`, at most 1.
    pub utilization: f64,
}
