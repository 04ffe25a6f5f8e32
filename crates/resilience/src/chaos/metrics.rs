//! [`ChaosMetrics`]: a snapshot of what a chaos instance injected.

use std::time::Duration;

/// A point-in-time snapshot of a [`Chaos`](super::Chaos).
///
/// `total_calls` counts the calls made while it was enabled (a disabled instance counts
/// nothing, so that it costs nothing); one call may get several injections (a delay, then a
/// fault). Durations serialize as seconds.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ChaosMetrics {
    /// The instance's name.
    pub name: String,
    /// Whether it injects now.
    pub enabled: bool,
    /// Calls made while enabled.
    pub total_calls: u64,
    /// Calls replaced by a fault.
    pub faults_injected: u64,
    /// Calls replaced by an outcome.
    pub outcomes_injected: u64,
    /// Calls delayed.
    pub latencies_injected: u64,
    /// Calls preceded by the behaviour hook.
    pub behaviors_injected: u64,
    /// The sum of the injected delays.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub total_injected_latency: Duration,
}

#[cfg(feature = "serde")]
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    crate::metrics::seconds(&Some(*duration), serializer)
}
