//! The pure core of the retry policy: which errors of inner patterns may be retried, how
//! attempts are counted, and the decision to wait or give up.
//!
//! No clock, no randomness, no events: the per-call driver (`run.rs`) reads the time and draws
//! the random number, then asks these functions.
//!
//! The rules, in one place:
//! * The operation's own errors and values are judged by the caller's
//!   [`RetryRules`](super::RetryRules). Errors of inner patterns are judged here: a rejection
//!   by a circuit breaker, a rate limiter or an adaptive throttle is returned as is unless `retry_rejections` is set
//!   (retrying an open circuit only adds load where the breaker sheds it); other rejections
//!   are retried after at least their `retry_after`; inner timeouts are retried unless
//!   `retry_timeouts` is off; an exhausted inner retry or a failed fallback is returned as is,
//!   since retrying a retry multiplies attempts.
//! * Each kind of failure (the policy's own, or one override) counts its own attempts; a kind
//!   that has failed `max_attempts` times gives up.
//! * The wait is the backoff's delay, or the rejection's `retry_after` when that is longer.
//! * With `max_elapsed`, no retry is scheduled to start after `start + max_elapsed`; one
//!   starting exactly at that instant is allowed.

use std::time::Duration;

use super::rules::Kind;
use super::RetryConfig;
use crate::{Error, PatternKind, RejectionReason};

/// Whether an error of an inner pattern may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retryable {
    /// Yes, waiting at least `retry_after`.
    Yes { retry_after: Option<Duration> },
    /// No: return it as is.
    No,
}

/// Judges an error that is not the operation's own (anything but [`Error::Inner`]).
pub(crate) fn retryable<E>(error: &Error<E>, config: &RetryConfig) -> Retryable {
    match error {
        // A passed deadline never comes back: asking again only burns the attempts.
        Error::Rejected(rejection) if rejection.reason() == RejectionReason::DeadlineExpired => {
            Retryable::No
        }
        Error::Rejected(rejection) => {
            let breaker_or_limiter = matches!(
                rejection.pattern(),
                PatternKind::CircuitBreaker | PatternKind::RateLimiter | PatternKind::Throttle
            );
            if breaker_or_limiter && !config.retry_rejections {
                Retryable::No
            } else {
                Retryable::Yes {
                    retry_after: rejection.retry_after(),
                }
            }
        }
        Error::Timeout { .. } if config.retry_timeouts => Retryable::Yes { retry_after: None },
        _ => Retryable::No,
    }
}

/// Attempts made in one call, in all and per kind of failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attempts {
    total: u32,
    base_failures: u32,
    /// Failures per override, sized on the first override failure (no allocation otherwise).
    override_failures: Vec<u32>,
}

impl Attempts {
    /// Counts an attempt that has just completed; returns its 1-based number.
    pub(crate) fn attempted(&mut self) -> u32 {
        self.total = self.total.saturating_add(1);
        self.total
    }

    /// Attempts made so far.
    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    /// Counts a retryable failure of `kind`; returns how many failures of that kind there have
    /// been, this one included. `overrides` is how many overrides the rules have.
    pub(crate) fn failed(&mut self, kind: Kind, overrides: usize) -> u32 {
        let count = match kind {
            Kind::Base => &mut self.base_failures,
            Kind::Override(index) => {
                if self.override_failures.len() < overrides {
                    self.override_failures.resize(overrides, 0);
                }
                match self.override_failures.get_mut(index) {
                    Some(count) => count,
                    None => &mut self.base_failures,
                }
            }
        };
        *count = count.saturating_add(1);
        *count
    }
}

/// Why a retry policy gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// This kind of failure used up its attempts.
    Attempts,
    /// The next attempt would start after `max_elapsed`.
    Elapsed,
    /// The retry budget is empty.
    Budget,
    /// The other side asked for a longer wait than `max_delay`.
    RetryAfter,
}

impl Stop {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Attempts => "max_attempts",
            Self::Elapsed => "max_elapsed",
            Self::Budget => "budget",
            Self::RetryAfter => "retry_after",
        }
    }
}

/// Retry after a wait, or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Retry(Duration),
    Stop(Stop),
}

/// What the limits allow after a retryable failure.
///
/// `failures` of this kind so far (this one included) against its `max_attempts`; `delay` from
/// the backoff; `retry_after` from a rejection or the rules' hook, never waited out beyond
/// `max_delay`; `elapsed` since the first attempt started.
pub(crate) fn decide(
    failures: u32,
    max_attempts: u32,
    delay: Duration,
    retry_after: Option<Duration>,
    elapsed: Duration,
    max_elapsed: Option<Duration>,
    max_delay: Duration,
) -> Decision {
    if failures >= max_attempts {
        return Decision::Stop(Stop::Attempts);
    }
    if retry_after.is_some_and(|after| after > max_delay) {
        return Decision::Stop(Stop::RetryAfter);
    }
    let wait = retry_after.map_or(delay, |after| after.max(delay));
    match max_elapsed {
        Some(limit) if elapsed.saturating_add(wait) > limit => Decision::Stop(Stop::Elapsed),
        _ => Decision::Retry(wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rejection, RejectionReason};
    use std::sync::Arc;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const MAX_DELAY: Duration = Duration::from_secs(60);

    #[test]
    fn a_wait_asked_beyond_max_delay_stops_instead_of_coming_back_early() {
        let d = secs(1);
        assert_eq!(
            decide(1, 3, d, Some(MAX_DELAY), secs(0), None, MAX_DELAY),
            Decision::Retry(MAX_DELAY)
        );
        assert_eq!(
            decide(
                1,
                3,
                d,
                Some(MAX_DELAY + Duration::from_nanos(1)),
                secs(0),
                None,
                MAX_DELAY
            ),
            Decision::Stop(Stop::RetryAfter)
        );
    }

    fn rejected(pattern: PatternKind, after: Option<Duration>) -> Error<()> {
        Error::Rejected(Rejection::new(
            pattern,
            Arc::from("x"),
            RejectionReason::CapacityFull,
            after,
        ))
    }

    #[test]
    fn an_expired_deadline_is_never_retried() {
        let expired = Error::<()>::Rejected(Rejection::new(
            PatternKind::Deadline,
            Arc::from("request"),
            RejectionReason::DeadlineExpired,
            None,
        ));
        let config = RetryConfig {
            retry_rejections: true,
            ..RetryConfig::default()
        };
        assert_eq!(retryable(&expired, &config), Retryable::No);
    }

    #[test]
    fn breaker_and_limiter_rejections_are_not_retried_by_default() {
        let config = RetryConfig::default();
        for pattern in [
            PatternKind::CircuitBreaker,
            PatternKind::RateLimiter,
            PatternKind::Throttle,
        ] {
            assert_eq!(
                retryable(&rejected(pattern, Some(secs(1))), &config),
                Retryable::No
            );
        }
        let opted_in = RetryConfig {
            retry_rejections: true,
            ..RetryConfig::default()
        };
        assert_eq!(
            retryable(
                &rejected(PatternKind::CircuitBreaker, Some(secs(1))),
                &opted_in
            ),
            Retryable::Yes {
                retry_after: Some(secs(1))
            }
        );
        assert_eq!(
            retryable(&rejected(PatternKind::Bulkhead, None), &config),
            Retryable::Yes { retry_after: None }
        );
    }

    #[test]
    fn timeouts_are_retried_unless_turned_off() {
        let timeout: Error<()> = Error::Timeout {
            elapsed: secs(1),
            limit: secs(1),
        };
        let config = RetryConfig::default();
        assert_eq!(
            retryable(&timeout, &config),
            Retryable::Yes { retry_after: None }
        );
        let off = RetryConfig {
            retry_timeouts: false,
            ..config
        };
        assert_eq!(retryable(&timeout, &off), Retryable::No);
        let nested: Error<()> = Error::RetryExhausted {
            attempts: 3,
            last: None,
        };
        assert_eq!(retryable(&nested, &RetryConfig::default()), Retryable::No);
    }

    #[test]
    fn each_kind_counts_its_own_failures() {
        let mut attempts = Attempts::default();
        assert_eq!(attempts.failed(Kind::Base, 2), 1);
        assert_eq!(attempts.failed(Kind::Override(1), 2), 1);
        assert_eq!(attempts.failed(Kind::Override(1), 2), 2);
        assert_eq!(attempts.failed(Kind::Base, 2), 2);
        assert_eq!(attempts.failed(Kind::Override(0), 2), 1);
        assert_eq!(attempts.attempted(), 1);
        assert_eq!(attempts.total(), 1);
    }

    #[test]
    fn decide_honours_attempts_retry_after_and_elapsed_limit() {
        let d = Duration::from_millis(100);
        assert_eq!(
            decide(1, 3, d, None, secs(0), None, MAX_DELAY),
            Decision::Retry(d)
        );
        assert_eq!(
            decide(3, 3, d, None, secs(0), None, MAX_DELAY),
            Decision::Stop(Stop::Attempts)
        );
        // A longer retry_after wins; a shorter one does not shorten the backoff.
        assert_eq!(
            decide(1, 3, d, Some(secs(2)), secs(0), None, MAX_DELAY),
            Decision::Retry(secs(2))
        );
        assert_eq!(
            decide(1, 3, secs(1), Some(d), secs(0), None, MAX_DELAY),
            Decision::Retry(secs(1))
        );
        // Starting exactly at the limit is allowed; a nanosecond later is not.
        assert_eq!(
            decide(1, 3, d, None, secs(10) - d, Some(secs(10)), MAX_DELAY),
            Decision::Retry(d)
        );
        assert_eq!(
            decide(
                1,
                3,
                d,
                None,
                secs(10) - d + Duration::from_nanos(1),
                Some(secs(10)),
                MAX_DELAY
            ),
            Decision::Stop(Stop::Elapsed)
        );
        assert_eq!(Stop::Budget.as_str(), "budget");
    }
}
