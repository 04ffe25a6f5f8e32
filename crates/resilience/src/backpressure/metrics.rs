//! [`BackpressureMetrics`]: a snapshot with aioresilience's field names.

/// A point-in-time snapshot of a [`Backpressure`](super::Backpressure) controller
/// (aioresilience's `get_stats()`).
///
/// The counts add up: every producer is admitted (`total_accepted`), rejected
/// (`total_rejected = rejected_backpressure + rejected_wait_timeout`), gave up by dropping its
/// wait, or is still waiting; `total_accepted - pending_count` items are done.
///
/// `utilization` is a ratio in `0..=1`: `(pending_count + waiting_count) / max_pending`, the
/// share of the budget in use; it is 1.0 exactly when the controller
/// [is overloaded](super::Backpressure::is_overloaded).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BackpressureMetrics {
    /// The controller's name.
    pub name: String,
    /// Items admitted and not yet done.
    pub pending_count: u32,
    /// Producers waiting to be admitted.
    pub waiting_count: u32,
    /// The configured bound on pending plus waiting.
    pub max_pending: u32,
    /// The configured high water mark.
    pub high_water_mark: u32,
    /// The configured low water mark.
    pub low_water_mark: u32,
    /// Whether backpressure is on.
    pub backpressure_active: bool,
    /// Producers ever admitted.
    pub total_accepted: u64,
    /// Producers refused, for any reason.
    pub total_rejected: u64,
    /// Refused at once: overloaded, or unwilling to wait while backpressure was on.
    pub rejected_backpressure: u64,
    /// Refused after waiting for the whole wait timeout.
    pub rejected_wait_timeout: u64,
    /// `(pending_count + waiting_count) / max_pending`, in `0..=1`.
    pub utilization: f64,
}
