//! [`Decision`]: what a rate limiter answered, with the numbers behind it.

use std::fmt;
use std::time::Duration;

use super::state::as_nanos;

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
/// [`denied`](Self::denied). Two decisions are equal when all of the above are.
#[derive(Clone, Copy)]
pub struct Decision {
    limit: u32,
    denial: Option<Denial>,
    /// `remaining` is `slack / unit`, worked out only when asked: GCRA hands over the spare
    /// time in nanoseconds and its emission interval, which saves a division per check; an
    /// explicit count has `unit` 1.
    slack: u64,
    unit: u64,
    /// Nanoseconds.
    reset_after: u64,
    /// Nanoseconds; [`NO_RETRY`] when unknown or allowed.
    retry_after: u64,
}

/// `retry_after` is unknown (or the request was allowed).
const NO_RETRY: u64 = u64::MAX;
/// `unit` of a decision made without reading the budget: `remaining` is 0.
const UNKNOWN: u64 = 0;

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
    /// A distributed limiter could not reach the store of its budgets (Redis) and its failure
    /// policy refuses requests meanwhile. Not the client's doing: nothing is known of its
    /// budget ([`Decision::budget_known`] is false), and an HTTP integration answers 503, not
    /// 429. `retry_after` is `None` unless the limiter knows when its backend is back.
    BackendUnavailable,
}

impl Denial {
    /// The reason in `snake_case`, stable for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateExceeded => "rate_exceeded",
            Self::KeysExhausted => "keys_exhausted",
            Self::BackendUnavailable => "backend_unavailable",
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
    pub fn allowed(limit: u32, remaining: u32, reset_after: Duration) -> Self {
        Self::allow(limit, remaining, as_nanos(reset_after))
    }

    /// A denied request: nothing remains; a request fits again after `retry_after` (`None`
    /// when that cannot be known).
    pub fn denied(
        denial: Denial,
        limit: u32,
        reset_after: Duration,
        retry_after: Option<Duration>,
    ) -> Self {
        let retry = retry_after.map_or(NO_RETRY, |after| as_nanos(after).min(NO_RETRY - 1));
        Self::deny(denial, limit, as_nanos(reset_after), retry)
    }

    /// An allowed request whose budget could not be read: a distributed limiter let it
    /// through by its failure policy while its backend was unreachable. Nothing is invented:
    /// [`budget_known`](Self::budget_known) is false, [`remaining`](Self::remaining) and
    /// [`reset_after`](Self::reset_after) are zero, and an HTTP integration sends no
    /// `RateLimit-*` headers for it.
    pub const fn allowed_unmetered(limit: u32) -> Self {
        Self {
            limit,
            denial: None,
            slack: 0,
            unit: UNKNOWN,
            reset_after: 0,
            retry_after: NO_RETRY,
        }
    }

    /// Whether `remaining` and `reset_after` describe a real budget. False for
    /// [`allowed_unmetered`](Self::allowed_unmetered) decisions and for
    /// [`Denial::BackendUnavailable`] denials: the limiter decided without its budgets.
    pub const fn budget_known(&self) -> bool {
        self.unit != UNKNOWN && !matches!(self.denial, Some(Denial::BackendUnavailable))
    }

    /// [`allowed`](Self::allowed), times in nanoseconds.
    pub(crate) const fn allow(limit: u32, remaining: u32, reset_after: u64) -> Self {
        Self::allow_spare(limit, remaining as u64, 1, reset_after)
    }

    /// An allowed request with `spare / unit` (rounded down) more allowed now.
    pub(crate) const fn allow_spare(limit: u32, spare: u64, unit: u64, reset_after: u64) -> Self {
        Self {
            limit,
            denial: None,
            slack: spare,
            unit,
            reset_after,
            retry_after: NO_RETRY,
        }
    }

    /// [`denied`](Self::denied), times in nanoseconds, `retry_after` known.
    pub(crate) const fn deny(
        denial: Denial,
        limit: u32,
        reset_after: u64,
        retry_after: u64,
    ) -> Self {
        Self {
            limit,
            denial: Some(denial),
            slack: 0,
            unit: 1,
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
        if self.unit == UNKNOWN {
            return 0;
        }
        let remaining = self.slack / self.unit;
        if remaining > u32::MAX as u64 {
            u32::MAX
        } else {
            remaining as u32
        }
    }

    /// Time until the whole budget (`limit` requests) is available again.
    pub const fn reset_after(&self) -> Duration {
        Duration::from_nanos(self.reset_after)
    }

    /// For a denied request, the time until a request would be allowed.
    pub const fn retry_after(&self) -> Option<Duration> {
        if self.retry_after == NO_RETRY {
            None
        } else {
            Some(Duration::from_nanos(self.retry_after))
        }
    }
}

impl PartialEq for Decision {
    fn eq(&self, other: &Self) -> bool {
        let fields = |d: &Self| {
            (
                d.denial,
                d.limit,
                d.remaining(),
                d.reset_after,
                d.retry_after,
                d.unit == UNKNOWN,
            )
        };
        fields(self) == fields(other)
    }
}

impl Eq for Decision {}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("denial", &self.denial)
            .field("limit", &self.limit)
            .field("remaining", &self.remaining())
            .field("reset_after", &self.reset_after())
            .field("retry_after", &self.retry_after())
            .field("budget_known", &self.budget_known())
            .finish()
    }
}
