//! Metric snapshots: what every pattern reports, with aioresilience's field names.
//!
//! Each pattern has its own snapshot struct (for example
//! [`CircuitBreakerMetrics`](crate::circuit_breaker::CircuitBreakerMetrics)), serialisable with
//! the `serde` feature. One meaning per field across patterns: `*_requests` are counts of calls,
//! `*_rate` and `utilization` are ratios in `0..=1`, durations serialize as seconds.

#[cfg(feature = "serde")]
pub(crate) fn seconds<S: serde::Serializer>(
    duration: &Option<std::time::Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

/// Sets each counter back to zero: the body of every pattern's `reset_metrics`.
pub(crate) fn reset_counters<'a>(
    counters: impl IntoIterator<Item = &'a std::sync::atomic::AtomicU64>,
) {
    for counter in counters {
        counter.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}
