//! [`LoadShedderMetrics`]: a snapshot with aioresilience's keys.

use super::LoadLevel;

/// A point-in-time snapshot of a load shedder (the keys of aioresilience's `get_stats()`).
///
/// `utilization` is a ratio in `0..=1` and `queue_depth` is the real number of waiting
/// requests.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LoadShedderMetrics {
    /// The shedder's name.
    pub name: String,
    /// Requests holding a slot.
    pub active_requests: u32,
    /// Requests waiting in the queue.
    pub queue_depth: u32,
    /// Requests shed, for any reason (including wait timeouts).
    pub total_shed: u64,
    /// Requests admitted, at once or after queueing.
    pub total_accepted: u64,
    /// The load level: from utilisation, or from CPU and memory if those are higher.
    pub load_level: LoadLevel,
    /// The hard cap.
    pub max_requests: u32,
    /// The queue's capacity.
    pub max_queue_depth: u32,
    /// `active_requests / max_requests`, at most 1.
    pub utilization: f64,
    /// The latest CPU reading as a ratio; `None` without system shedding.
    pub cpu_usage: Option<f64>,
    /// The latest memory reading as a ratio; `None` without system shedding.
    pub memory_usage: Option<f64>,
}
