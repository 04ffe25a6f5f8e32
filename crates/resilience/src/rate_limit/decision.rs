//! [`Decision`]: what a rate limiter answered, with the numbers behind it.

use std::fmt;
use std::time::Duration;

/// A rate limiter's answer to one request: allowed or not, and the state of the budget.
///
/// Every field is computed from the limiter's state at the moment of the decision, so an HTTP
/// integration can send honest `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
/// and `Retry-After` headers:
///
/// * [`limit`](Self::limit): the most requests the key may make at once (the rate's
///   [burst](crate::Rate::burst), which is its count unless set);
/// * [`remaining`](Self::remaining): requests still allowed right now, after this one;
/// * [`reset_after`](Self::reset_after): time until the budget is whole again, so that
///   `limit` requests would be allowed;
/// * [`retry_after`](Self::retry_after): for a denied request, the time until a request would
///   be allowed (`None` for allowed ones, and for denials with no honest estimate).
///
/// Limiters in other crates (Redis) build decisions with [`allowed`](Self::allowed) and
/// [`denied`](Self::denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    denial: Option<Denial>,
    limit: u32,
    remaining: u32,
    reset_after: Duration,
    retry_after: Option<Duration>,
}

/// Why a rate limiter denied a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Denial {
    /// The key has spent its budget; `retry_after` says when the next request fits.
    RateExceeded,
    /// The key is new and the keyed limiter already tracks `max_keys` keys that are all still
    /// live (none has a budget to forget), so it cannot take one more without resetting
    /// someone's budget. `retry_after` says when the first tracked key goes idle.
    KeysExhausted,
}

impl Denial {
    /// The reason in `snake_case`, stable for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateExceeded => "rate_exceeded",
            Self::KeysExhausted => "keys_exhausted",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Decision {
    /// An allowed request, with `remaining` more allowed now and the budget whole again after
    /// `reset_after`.
    pub const fn allowed(limit: u32, remaining: u32, reset_after: Duration) -> Self {
        Self {
            denial: None,
            limit,
            remaining,
            reset_after,
            retry_after: None,
        }
    }

    /// A denied request: nothing remains; a request fits again after `retry_after` (`None`
    /// when that cannot be known).
    pub const fn denied(
        denial: Denial,
        limit: u32,
        reset_after: Duration,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            denial: Some(denial),
            limit,
            remaining: 0,
            reset_after,
            retry_after,
        }
    }

    /// Whether the request may go ahead.
    pub const fn is_allowed(&self) -> bool {
        self.denial.is_none()
    }

    /// Why it was denied, if it was.
    pub const fn denial(&self) -> Option<Denial> {
        self.denial
    }

    /// The most requests allowed at once (the rate's burst).
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// Requests still allowed right now, after this one.
    pub const fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Time until the whole budget (`limit` requests) is available again.
    pub const fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// For a denied request, the time until a request would be allowed.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}
