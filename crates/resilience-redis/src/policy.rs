//! [`FailurePolicy`]: what a Redis-backed component does while Redis cannot answer.

use std::fmt;

/// What a Redis-backed limiter or breaker does when Redis is unreachable, too slow (past the
/// backend's call timeout) or answers with an error.
///
/// The choice is explicit because each answer is right somewhere (fail-open is a choice, not
/// a given): an API whose limits protect revenue fails closed, one whose limits protect only
/// itself fails open, and one that must keep limiting each instance through an outage falls
/// back to local state. Whichever applies, the component's metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Allow the request (aioresilience's choice, and the default). A limiter's
    /// decision reports one less than its limit as remaining and no reset time (nothing
    /// is known); a breaker lets its local state decide.
    #[default]
    FailOpen,
    /// Deny the request. A limiter denies with [`Denial::RateExceeded`] and no
    /// `retry_after` (none can be known; the core has no "backend unavailable" denial
    /// yet), counted apart in its metrics as `fallbacks_denied`; a breaker rejects every
    /// call until Redis answers again.
    ///
    /// [`Denial::RateExceeded`]: resilience::rate_limit::Denial::RateExceeded
    FailClosed,
    /// Decide with the in-memory algorithm of this process until Redis is back: each
    /// instance then enforces the whole limit on its own (the fleet-wide rate can reach the
    /// limit times the number of instances). Local budgets are not written back to Redis.
    Local,
}

impl FailurePolicy {
    /// The policy in `snake_case`, stable for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::Local => "local",
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
