//! The pure core every algorithm implements: plain state, plain time, no clock, no locks.
//!
//! Time is `u64` nanoseconds since the limiter's own epoch (its construction), so a state is a
//! few plain integers and tests build instants by hand. Each algorithm file (`gcra.rs`,
//! `token_bucket.rs`, `sliding_window.rs`, `sliding_log.rs`) implements [`Core`]; the handles
//! and the keyed store run it under a short lock or, for the single GCRA limiter, inside a
//! compare-exchange loop. The rules every core keeps:
//!
//! * a denial never consumes budget (only expired history may be pruned);
//! * `now` may be slightly behind the state (another thread read the clock earlier and won
//!   the lock later); the core then decides as if it were the state's time, never panics;
//! * [`Core::idle_at`] is when the state stops carrying information: from then on it decides
//!   exactly like a fresh state, so dropping it resets nothing. The keyed store evicts only
//!   such states. The rate may have changed since the state was last checked (a keyed
//!   limiter's rate is set at run time, and its states do not know which rate they follow), so
//!   `idle_at` answers for the state's last rate *and* the current one, whichever is later:
//!   a lower rate stretches the time a spent budget takes to refill.

use std::time::Duration;

use super::Decision;
use crate::Rate;

/// One rate-limiting algorithm as pure functions of its state, the time and the rate.
pub(crate) trait Core {
    /// What one key remembers.
    type State: Send + Clone;

    /// The state of a key never seen before (or forgotten while idle).
    fn fresh(now: u64, rate: &Rate) -> Self::State;

    /// Decides one request at `now`, updating `state` if it is allowed.
    fn check(state: &mut Self::State, now: u64, rate: &Rate) -> Decision;

    /// From when on `state` decides like a fresh one at the rate it was last checked at
    /// and, if given, at `rate` (the limiter's configured rate now, which the state may follow):
    /// never earlier than either.
    fn idle_at(state: &Self::State, rate: Option<&Rate>) -> u64;
}

/// Nanoseconds of a duration, saturating at `u64::MAX` (about 584 years).
pub(crate) fn as_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    //! Properties every core must keep, checked on random arrival sequences: the numbers a
    //! decision reports are exact, not estimates.

    use super::super::gcra::Gcra;
    use super::super::sliding_log::SlidingLog;
    use super::super::sliding_window::SlidingWindow;
    use super::super::token_bucket::TokenBucket;
    use super::*;
    use proptest::prelude::*;

    fn rates() -> impl Strategy<Value = Rate> {
        prop_oneof![
            Just(Rate::per_second(3)),
            Just(Rate::per_second(5).with_burst(2)),
            Just(Rate::per_minute(10).with_burst(25)),
            Just(Rate::per_second(1)),
            Just(Rate::new(7, Duration::from_secs(90)).unwrap()),
        ]
    }

    /// Requests allowed at once from `state` at `now`, on a copy.
    fn available<C: Core>(state: &C::State, now: u64, rate: &Rate) -> u32 {
        let mut copy = state.clone();
        let mut count = 0;
        while C::check(&mut copy, now, rate).is_allowed() {
            count += 1;
            assert!(count <= rate.burst(), "more than the burst at once");
        }
        count
    }

    fn exact<C: Core>(rate: &Rate, steps: &[(u64, u8)]) {
        let mut state = C::fresh(0, rate);
        let mut now = 0;
        for &(advance, requests) in steps {
            now += advance;
            for _ in 0..requests {
                let decision = C::check(&mut state, now, rate);
                assert_eq!(decision.limit(), rate.burst());
                // `remaining` more fit now, and no more.
                assert_eq!(available::<C>(&state, now, rate), decision.remaining());
                // The whole budget is back exactly at `reset_after`.
                let reset = now + as_nanos(decision.reset_after());
                assert_eq!(available::<C>(&state, reset, rate), rate.burst());
                if reset > now {
                    assert!(available::<C>(&state, reset - 1, rate) < rate.burst());
                }
                if let Some(after) = decision.retry_after() {
                    assert!(!decision.is_allowed());
                    let at = now + as_nanos(after);
                    assert!(at > now);
                    assert!(available::<C>(&state, at, rate) > 0, "retry_after too late");
                    assert_eq!(
                        available::<C>(&state, at - 1, rate),
                        0,
                        "retry_after too early"
                    );
                }
                // Idle means it decides like a fresh state.
                let idle = C::idle_at(&state, Some(rate)).max(now);
                let mut fresh = C::fresh(idle, rate);
                assert_eq!(
                    C::check(&mut state.clone(), idle, rate),
                    C::check(&mut fresh, idle, rate)
                );
            }
        }
    }

    fn steps() -> impl Strategy<Value = Vec<(u64, u8)>> {
        let advance = prop_oneof![
            Just(0_u64),
            1_u64..1_000,
            1_000_000_u64..400_000_000,
            Just(333_333_334),
            1_000_000_000_u64..200_000_000_000,
        ];
        prop::collection::vec((advance, 0_u8..6), 1..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn gcra_reports_exact_numbers(rate in rates(), steps in steps()) {
            exact::<Gcra>(&rate, &steps);
        }

        #[test]
        fn token_bucket_reports_exact_numbers(rate in rates(), steps in steps()) {
            exact::<TokenBucket>(&rate, &steps);
        }

        #[test]
        fn sliding_window_reports_exact_numbers(rate in rates(), steps in steps()) {
            exact::<SlidingWindow>(&rate, &steps);
        }

        #[test]
        fn sliding_log_reports_exact_numbers(rate in rates(), steps in steps()) {
            exact::<SlidingLog>(&rate, &steps);
        }
    }
}
