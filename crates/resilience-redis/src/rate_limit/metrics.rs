//! [`RedisRateLimiterMetrics`]: decisions, backend errors and fallbacks, as a snapshot.

use resilience::rate_limit::Algorithm;
use resilience::Rate;

use crate::FailurePolicy;

/// A point-in-time snapshot of a [`RedisRateLimiter`](super::RedisRateLimiter).
///
/// Every check is counted once in `total_checks`, as allowed or rejected, whoever decided
/// it. The decisions Redis did not make are also counted by the policy that made them
/// (`fallbacks_*`), and the reason Redis could not (`backend_errors`, `timeouts`, or neither
/// when the backend was already known to be down and was not asked).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RedisRateLimiterMetrics {
    /// The limiter's name.
    pub name: String,
    /// Always `"redis"` (aioresilience's `type`).
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: &'static str,
    /// The algorithm the Redis script runs.
    pub algorithm: Algorithm,
    /// The rate `check` applies.
    pub rate: Rate,
    /// What happens while Redis cannot decide.
    pub failure_policy: FailurePolicy,
    /// Whether the backend is answering now (aioresilience's `connected`).
    pub backend_healthy: bool,
    /// Requests checked.
    pub total_checks: u64,
    /// Requests allowed, by Redis or by the failure policy.
    pub total_allowed: u64,
    /// Requests denied, by Redis or by the failure policy.
    pub total_rejected: u64,
    /// Calls to Redis that failed with an error (connection or reply), timeouts excepted.
    pub backend_errors: u64,
    /// Calls to Redis abandoned at the backend's call timeout.
    pub timeouts: u64,
    /// Requests allowed by [`FailurePolicy::FailOpen`] because Redis could not decide.
    pub fallbacks_allowed: u64,
    /// Requests denied by [`FailurePolicy::FailClosed`] because Redis could not decide.
    pub fallbacks_denied: u64,
    /// Requests decided by the in-memory limiter of [`FailurePolicy::Local`].
    pub fallbacks_local: u64,
}
