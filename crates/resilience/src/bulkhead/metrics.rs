//! [`BulkheadMetrics`]: a snapshot with aioresilience's field names.

use std::time::Duration;

/// A point-in-time snapshot of a [`Bulkhead`](super::Bulkhead) (aioresilience's `get_metrics()`).
///
/// The counts add up, each call (a timed-out wait included) counted once, when it is
/// decided:
/// `total_requests = accepted_requests + rejected_requests`,
/// `accepted_requests = successful_requests + failed_requests + ignored_requests +
/// current_active`, and `rejected_requests` is the sum of the three reasons. Calls still
/// waiting are in none of them yet. A snapshot taken while calls finish may be one call
/// ahead in one field; at rest it is exact.
///
/// `utilization` is a ratio in `0..=1` (`current_active / max_concurrent`). Durations serialize as
/// seconds (`f64`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// The bulkhead's name.
    pub name: String,
    /// The configured number of slots.
    pub max_concurrent: u32,
    /// The configured queue length.
    pub max_waiting: u32,
    /// Calls decided: accepted or rejected.
    pub total_requests: u64,
    /// Calls that got a slot, at once or after waiting.
    pub accepted_requests: u64,
    /// Accepted calls that succeeded.
    pub successful_requests: u64,
    /// Accepted calls that failed.
    pub failed_requests: u64,
    /// Accepted calls that ended without an outcome: cancelled, panicked, a permit dropped
    /// without one, or an inner rejection passed through [`execute`](super::Bulkhead::execute).
    pub ignored_requests: u64,
    /// Calls refused a slot, for any reason.
    pub rejected_requests: u64,
    /// Rejected because every slot was taken and there is no queue.
    pub rejected_capacity_full: u64,
    /// Rejected because the queue was full too.
    pub rejected_queue_full: u64,
    /// Rejected because they waited longer than the wait timeout.
    pub rejected_wait_timeout: u64,
    /// Calls running now.
    pub current_active: u32,
    /// Calls waiting for a slot now.
    pub current_waiting: u32,
    /// Free slots now.
    pub available_slots: u32,
    /// The most calls that ran at once.
    pub peak_active: u32,
    /// Time accepted calls spent waiting for their slot.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub total_wait_time: Duration,
    /// `total_wait_time / accepted_requests` (calls that did not wait count as zero), zero
    /// when there were none.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub average_wait_time: Duration,
    /// The longest an accepted call waited.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub peak_wait_time: Duration,
    /// `rejected_requests / total_requests`, 0.0 when there were none.
    pub rejection_rate: f64,
    /// `current_active / max_concurrent`, in `0..=1`.
    pub utilization: f64,
}

#[cfg(feature = "serde")]
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    crate::metrics::seconds(&Some(*duration), serializer)
}
