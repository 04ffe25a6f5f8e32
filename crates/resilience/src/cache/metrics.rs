//! [`CacheMetrics`]: a snapshot of a cache's counters.

/// A point-in-time snapshot of a [`Cache`](super::Cache).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheMetrics {
    /// The cache's name.
    pub name: String,
    /// Calls answered by a fresh entry.
    pub hits: u64,
    /// Calls that ran the operation.
    pub misses: u64,
    /// Failed calls answered by a stale entry (counted among the misses too).
    pub stale_hits: u64,
    /// `hits / (hits + misses)`, 0.0 with no calls.
    pub hit_rate: f64,
    /// Entries held now, expired ones not yet evicted included.
    pub entries: u64,
    /// Their total weight (their number, without a weigher).
    pub weight: u64,
    /// The most weight (or entries) the cache holds.
    pub capacity: u64,
}
