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
pub(crate) enum Budget<T> {
    /// It may run until `until`.
    Run {
        /// When it is cancelled: the earlier of its own deadline and the enclosing one.
        until: T,
        /// Whether the enclosing deadline, not the own limit, set `until`.
        bound_by_deadline: bool,
    },
    /// The enclosing deadline has already passed: do not start.
    Expired,
}

/// The budget of an operation that starts at `now` with its own deadline `own` (its limit
/// from now) inside an `enclosing` deadline, if any. Points are instants, or nanoseconds on
/// one clock.
pub(crate) fn budget<T: Ord + Copy>(own: T, enclosing: Option<T>, now: T) -> Budget<T> {
    match enclosing {
        Some(deadline) if is_expired(deadline, now) => Budget::Expired,
        Some(deadline) if deadline < own => Budget::Run {
            until: deadline,
            bound_by_deadline: true,
        },
        _ => Budget::Run {
            until: own,
            bound_by_deadline: false,
        },
    }
}

/// Whether `deadline` has passed at `now`; a deadline is already expired *at* its instant.
pub(crate) fn is_expired<T: Ord + Copy>(deadline: T, now: T) -> bool {
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
pub(crate) fn enclosing_wins<T: Ord + Copy>(deadline: T, enclosing: T) -> bool {
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

    /// The budget of an operation with its own `limit` starting at `now`, as the handle asks.
    fn of(limit: Duration, enclosing: Option<Instant>, now: Instant) -> Budget<Instant> {
        budget(after(now, limit), enclosing, now)
    }

    #[test]
    fn own_limit_alone() {
        let t0 = epoch();
        assert_eq!(
            of(100 * MS, None, t0),
            Budget::Run {
                until: t0 + 100 * MS,
                bound_by_deadline: false
            }
        );
    }

    #[test]
    fn the_enclosing_deadline_shortens_a_longer_limit() {
        let t0 = epoch();
        let deadline = t0 + 100 * MS;
        assert_eq!(
            of(5000 * MS, Some(deadline), t0 + 30 * MS),
            Budget::Run {
                until: deadline,
                bound_by_deadline: true
            }
        );
    }

    #[test]
    fn a_shorter_own_limit_wins_over_the_deadline() {
        let t0 = epoch();
        assert_eq!(
            of(10 * MS, Some(t0 + 100 * MS), t0),
            Budget::Run {
                until: t0 + 10 * MS,
                bound_by_deadline: false
            }
        );
    }

    #[test]
    fn equal_limit_and_deadline_count_as_the_own_limit() {
        let t0 = epoch();
        let Budget::Run {
            bound_by_deadline, ..
        } = of(10 * MS, Some(t0 + 10 * MS), t0)
        else {
            panic!("expected a budget");
        };
        assert!(!bound_by_deadline);
    }

    #[test]
    fn points_may_be_nanoseconds_on_one_clock() {
        assert_eq!(
            budget(5_000, Some(100), 99),
            Budget::Run {
                until: 100,
                bound_by_deadline: true
            }
        );
        assert_eq!(budget(5_000_u64, Some(100), 100), Budget::Expired);
    }

    #[test]
    fn expired_exactly_at_the_deadline_not_one_nanosecond_before() {
        let t0 = epoch();
        let deadline = t0 + 100 * MS;
        let just_before = deadline - Duration::from_nanos(1);
        assert!(!is_expired(deadline, just_before));
        assert_eq!(remaining(deadline, just_before), Duration::from_nanos(1));
        assert!(matches!(
            of(MS, Some(deadline), just_before),
            Budget::Run { until, .. } if until == deadline
        ));

        assert!(is_expired(deadline, deadline));
        assert_eq!(remaining(deadline, deadline), Duration::ZERO);
        assert_eq!(of(MS, Some(deadline), deadline), Budget::Expired);
        assert_eq!(of(MS, Some(deadline), deadline + MS), Budget::Expired);
        assert_eq!(remaining(deadline, deadline + MS), Duration::ZERO);
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        let t0 = epoch();
        let Budget::Run { until, .. } = of(Duration::MAX, None, t0) else {
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
            match of(limit, deadline, now) {
                Budget::Expired => {
                    proptest::prop_assert!(deadline.is_some_and(|d| is_expired(d, now)));
                }
                Budget::Run { until, bound_by_deadline } => {
                    let given = remaining(until, now);
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
