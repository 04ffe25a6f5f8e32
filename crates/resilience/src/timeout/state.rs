//! The pure core of timeouts and deadlines: deadline arithmetic on plain instants.
//!
//! No clock is read here: every function takes `now`, so the rules are tested with synthetic
//! instants and no runtime. The handle, the tower layer and [`Deadline`](super::Deadline) all
//! decide through these functions, so they cannot disagree about a boundary.
//!
//! The boundary rules, in one place:
//!
//! * a deadline has **expired** when `now >= deadline`: an operation that would start exactly
//!   at the deadline has no time at all and is rejected without running;
//! * an operation that **finishes at** its limit (or deadline) succeeds: the operation is polled
//!   before the timer, as `tokio::time::timeout` does, so only one still pending once the limit
//!   has passed is cancelled.

use std::time::Duration;

use tokio::time::Instant;

/// How long an operation that starts now may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// It may run until `until`, which is `limit` from now.
    Run {
        /// When it is cancelled.
        until: Instant,
        /// How long it has: the shorter of its own limit and what the enclosing deadline leaves.
        limit: Duration,
        /// Whether the enclosing deadline, not the own limit, set `until`.
        bound_by_deadline: bool,
    },
    /// The enclosing deadline has already passed: do not start.
    Expired,
}

/// The budget of an operation with its own `limit` (none for a bare deadline, which is the
/// same as an unbounded limit) that starts at `now` inside an `enclosing` deadline, if any.
pub(crate) fn budget(limit: Option<Duration>, enclosing: Option<Instant>, now: Instant) -> Budget {
    if let Some(deadline) = enclosing {
        if is_expired(deadline, now) {
            return Budget::Expired;
        }
    }
    let own = limit.map(|limit| after(now, limit));
    let (until, bound_by_deadline) = match (own, enclosing) {
        (Some(own), Some(deadline)) if deadline < own => (deadline, true),
        (Some(own), _) => (own, false),
        (None, Some(deadline)) => (deadline, true),
        // Neither a limit nor a deadline: not a case any caller builds, but the honest answer
        // is "as long as it likes".
        (None, None) => (far_future(now), false),
    };
    Budget::Run {
        until,
        limit: remaining(until, now),
        bound_by_deadline,
    }
}

/// Whether `deadline` has passed at `now`; a deadline is already expired *at* its instant.
pub(crate) fn is_expired(deadline: Instant, now: Instant) -> bool {
    now >= deadline
}

/// The time left before `deadline`, zero once it has passed.
pub(crate) fn remaining(deadline: Instant, now: Instant) -> Duration {
    deadline.saturating_duration_since(now)
}

/// `now + duration`, saturating at a far future instead of overflowing the clock.
pub(crate) fn after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or_else(|| far_future(now))
}

/// Whether an `enclosing` deadline stays in force over a nested `deadline`: nested scopes
/// never extend an enclosing one, so the earlier wins (the enclosing one on a tie).
pub(crate) fn enclosing_wins(deadline: Instant, enclosing: Instant) -> bool {
    enclosing <= deadline
}

/// About 30 years from now, as tokio's own far-future instant; no timer ever waits longer.
fn far_future(now: Instant) -> Instant {
    const THIRTY_YEARS: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(THIRTY_YEARS).unwrap_or(now)
}

/// `total / count`, zero when `count` is zero.
pub(crate) fn average(total: Duration, count: u64) -> Duration {
    match u32::try_from(count) {
        Ok(0) => Duration::ZERO,
        Ok(count) => total / count,
        Err(_) => Duration::from_secs_f64(total.as_secs_f64() / count as f64),
    }
}

/// `part / total` as a ratio in `0..=1`, zero when `total` is zero.
pub(crate) fn ratio(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn epoch() -> Instant {
        Instant::now()
    }

    #[test]
    fn own_limit_alone() {
        let t0 = epoch();
        assert_eq!(
            budget(Some(100 * MS), None, t0),
            Budget::Run {
                until: t0 + 100 * MS,
                limit: 100 * MS,
                bound_by_deadline: false
            }
        );
    }

    #[test]
    fn the_enclosing_deadline_shortens_a_longer_limit() {
        let t0 = epoch();
        let deadline = t0 + 100 * MS;
        assert_eq!(
            budget(Some(5000 * MS), Some(deadline), t0 + 30 * MS),
            Budget::Run {
                until: deadline,
                limit: 70 * MS,
                bound_by_deadline: true
            }
        );
    }

    #[test]
    fn a_shorter_own_limit_wins_over_the_deadline() {
        let t0 = epoch();
        assert_eq!(
            budget(Some(10 * MS), Some(t0 + 100 * MS), t0),
            Budget::Run {
                until: t0 + 10 * MS,
                limit: 10 * MS,
                bound_by_deadline: false
            }
        );
    }

    #[test]
    fn equal_limit_and_deadline_count_as_the_own_limit() {
        let t0 = epoch();
        let Budget::Run {
            bound_by_deadline, ..
        } = budget(Some(10 * MS), Some(t0 + 10 * MS), t0)
        else {
            panic!("expected a budget");
        };
        assert!(!bound_by_deadline);
    }

    #[test]
    fn a_bare_deadline_gives_what_is_left() {
        let t0 = epoch();
        assert_eq!(
            budget(None, Some(t0 + 100 * MS), t0 + 99 * MS),
            Budget::Run {
                until: t0 + 100 * MS,
                limit: MS,
                bound_by_deadline: true
            }
        );
    }

    #[test]
    fn expired_exactly_at_the_deadline_not_one_nanosecond_before() {
        let t0 = epoch();
        let deadline = t0 + 100 * MS;
        let just_before = deadline - Duration::from_nanos(1);
        assert!(!is_expired(deadline, just_before));
        assert_eq!(remaining(deadline, just_before), Duration::from_nanos(1));
        assert!(matches!(
            budget(Some(MS), Some(deadline), just_before),
            Budget::Run { limit, .. } if limit == Duration::from_nanos(1)
        ));

        assert!(is_expired(deadline, deadline));
        assert_eq!(remaining(deadline, deadline), Duration::ZERO);
        assert_eq!(budget(Some(MS), Some(deadline), deadline), Budget::Expired);
        assert_eq!(budget(None, Some(deadline), deadline + MS), Budget::Expired);
        assert_eq!(remaining(deadline, deadline + MS), Duration::ZERO);
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        let t0 = epoch();
        let Budget::Run { until, .. } = budget(Some(Duration::MAX), None, t0) else {
            panic!("expected a budget");
        };
        assert!(until > t0 + Duration::from_secs(86_400 * 365));
        assert!(after(t0, Duration::MAX) > t0);
    }

    #[test]
    fn nested_deadlines_take_the_earlier() {
        let t0 = epoch();
        assert!(enclosing_wins(t0 + 5 * MS, t0 + 3 * MS));
        assert!(enclosing_wins(t0 + 5 * MS, t0 + 5 * MS));
        assert!(!enclosing_wins(t0 + 5 * MS, t0 + 9 * MS));
    }

    #[test]
    fn averages_and_ratios_of_nothing_are_zero() {
        assert_eq!(average(Duration::from_secs(3), 0), Duration::ZERO);
        assert_eq!(average(150 * MS, 3), 50 * MS);
        assert_eq!(ratio(0, 0), 0.0);
        assert_eq!(ratio(1, 4), 0.25);
    }

    proptest::proptest! {
        /// Whatever the limit, deadline and start, a budget never exceeds the own limit nor
        /// what the deadline leaves, and is empty only when the deadline has passed.
        #[test]
        fn a_budget_respects_both_bounds(
            limit_ms in 1u64..10_000,
            deadline_ms in proptest::option::of(0u64..10_000),
            now_ms in 0u64..10_000,
        ) {
            let t0 = epoch();
            let now = t0 + Duration::from_millis(now_ms);
            let deadline = deadline_ms.map(|ms| t0 + Duration::from_millis(ms));
            let limit = Duration::from_millis(limit_ms);
            match budget(Some(limit), deadline, now) {
                Budget::Expired => {
                    proptest::prop_assert!(deadline.is_some_and(|d| is_expired(d, now)));
                }
                Budget::Run { until, limit: given, bound_by_deadline } => {
                    proptest::prop_assert!(given <= limit);
                    proptest::prop_assert!(given > Duration::ZERO);
                    proptest::prop_assert_eq!(until, now + given);
                    if let Some(deadline) = deadline {
                        proptest::prop_assert!(until <= deadline);
                        proptest::prop_assert_eq!(bound_by_deadline, deadline < now + limit);
                    }
                }
            }
        }
    }
}
