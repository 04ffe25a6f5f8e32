//! [`ThrottleMetrics`]: a snapshot of what a throttle has seen.

use std::time::Duration;

/// A point-in-time snapshot of an [`AdaptiveThrottle`](super::AdaptiveThrottle).
///
/// The `window_*` fields and `rejection_probability` describe the sliding window now; the
/// `total_*` fields count since the throttle was built (or its metrics reset).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ThrottleMetrics {
    /// The instance's name.
    pub name: String,
    /// The window's length.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub window: Duration,
    /// Requests attempted in the window, the throttled ones included.
    pub window_requests: u64,
    /// Requests in the window the backend did not refuse: accepted, or still waiting for
    /// their answer.
    pub window_accepts: u64,
    /// The share of requests throttled now, 0 to `max_rejection_probability`.
    pub rejection_probability: f64,
    /// Requests attempted.
    pub total_requests: u64,
    /// Requests throttled (never sent).
    pub total_throttled: u64,
    /// Requests sent whose outcome was a failure (refused by the backend).
    pub total_failures: u64,
}

#[cfg(feature = "serde")]
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    crate::metrics::seconds(&Some(*duration), serializer)
}
