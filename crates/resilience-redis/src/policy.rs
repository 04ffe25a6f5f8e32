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
    /// decision is [unmetered](resilience::rate_limit::Decision::allowed_unmetered): it
    /// claims no remaining budget, so HTTP integrations send no `RateLimit-*` headers; a
    /// breaker lets its local state decide.
    #[default]
    FailOpen,
    /// Deny the request. A limiter denies with [`Denial::BackendUnavailable`] and no
    /// `retry_after` (none can be known), counted apart in its metrics as
    /// `fallbacks_denied`; its rejection's reason is
    /// [`RejectionReason::BackendUnavailable`](resilience::RejectionReason::BackendUnavailable),
    /// which HTTP integrations answer with 503 and `Retry-After` (not a 429: the client is
    /// not over its rate). A breaker rejects every call until Redis answers again.
    ///
    /// [`Denial::BackendUnavailable`]: resilience::rate_limit::Denial::BackendUnavailable
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
