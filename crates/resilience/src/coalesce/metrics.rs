//! [`CoalesceMetrics`]: a snapshot of a coalescer's counters.

/// A point-in-time snapshot of a [`Coalescer`](super::Coalescer).
///
/// Every call is counted once in `executions` (it ran its operation as leader, first or by
/// taking over), `coalesced_calls` (it joined and never ran its own), or `rejected_calls`. A
/// follower that took over counts in both `coalesced_calls` and `takeovers`, and its execution
/// in `executions`. `in_flight_keys` is a gauge; the rest only grow until
/// [`reset_metrics`](super::Coalescer::reset_metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CoalesceMetrics {
    /// The coalescer's name.
    pub name: String,
    /// Its configured bound on keys in flight.
    pub max_keys: usize,
    /// Keys in flight now.
    pub in_flight_keys: usize,
    /// Operations started (one per execution, takeovers included).
    pub executions: u64,
    /// Calls that joined an execution already in flight.
    pub coalesced_calls: u64,
    /// Followers that took over from a dropped leader.
    pub takeovers: u64,
    /// Executions whose operation panicked.
    pub panics: u64,
    /// Calls refused because `max_keys` keys were in flight.
    pub rejected_calls: u64,
    /// Keys dropped from the map by [`forget`](super::Coalescer::forget).
    pub forgotten_keys: u64,
}
