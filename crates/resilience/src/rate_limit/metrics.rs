//! [`RateLimiterMetrics`]: a snapshot with aioresilience's field names.

use super::Algorithm;
use crate::Rate;

/// A point-in-time snapshot of a rate limiter (aioresilience's `get_stats()` and more).
///
/// `total_checks = total_allowed + total_rejected`; `total_rejected` includes the
/// `rejected_new_keys`. An [`acquire`](super::RateLimiter::acquire) that waits makes one check
/// per attempt, so a request that waited once counts as one rejected and one allowed check.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RateLimiterMetrics {
    /// The limiter's name.
    pub name: String,
    /// `"local"` for a keyed in-memory limiter, `"direct"` for a single one
    /// (aioresilience's `type`).
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: &'static str,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The rate `check` applies.
    pub rate: Rate,
    /// Budgets held in memory: keys and `(key, rate)` pairs (aioresilience's `active_limiters`).
    /// A direct limiter counts its one budget plus those of per-call rates. Idle budgets are
    /// dropped only when room is needed, so this can include some.
    pub active_limiters: usize,
    /// The bound on `active_limiters`.
    pub max_keys: usize,
    /// Requests checked.
    pub total_checks: u64,
    /// Requests allowed.
    pub total_allowed: u64,
    /// Requests denied, for any reason.
    pub total_rejected: u64,
    /// Requests of new keys denied because every tracked key was still live.
    pub rejected_new_keys: u64,
    /// Idle budgets dropped to make room (no budget was reset by it).
    pub evicted_keys: u64,
}
