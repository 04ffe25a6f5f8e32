//! GCRA, the generic cell rate algorithm: one word of state per key.
//!
//! GCRA remembers a single instant, the *theoretical arrival time* (TAT): when the key's
//! budget would be whole again if it stopped sending now. Each allowed request pushes it one
//! emission interval `T = period / count` further. A request at `now` fits if, after adding
//! its `T`, the TAT is at most `burst * T` ahead of `now`; otherwise it is denied, the TAT
//! stays where it was, and the request would fit once `now` has moved up by the excess.
//!
//! That one number answers everything a caller asks: `remaining` is how many more `T` fit in
//! the gap, `reset_after` is `TAT - now`, `retry_after` is exact to the nanosecond. And a TAT
//! at or before `now` means a whole budget, exactly like a key never seen: such a key carries
//! no information and may be forgotten at no cost, which is how the keyed limiter bounds its
//! memory without resetting anyone (governor's `gcra.rs` is the model; it is a token bucket
//! in different clothes, continuously refilled).

use super::state::Core;
use super::store::Pace;
use super::{Decision, Denial};
use crate::Rate;

/// The GCRA core; its state is the TAT in nanoseconds since the limiter's epoch.
#[derive(Debug)]
pub(crate) struct Gcra;

/// Decides one request: the decision, and the TAT after it (the one given, if denied).
///
/// Pure, so a handle can run it in a compare-exchange loop on an `AtomicU64`.
#[inline]
pub(crate) fn decide(tat: u64, now: u64, rate: &Rate) -> (Decision, u64) {
    decide_at_pace(tat, now, &Pace::of(rate))
}

/// [`decide`] with the rate's GCRA numbers only, as a single limiter reads them.
#[inline]
pub(crate) fn decide_at_pace(tat: u64, now: u64, pace: &Pace) -> (Decision, u64) {
    match next_at_pace(tat, now, pace) {
        Ok(next) => (allowed_at_pace(next, now, pace), next),
        Err(denied) => (denied, tat),
    }
}

/// The TAT after one more request at `now`, if it fits; the denial otherwise. Only the
/// denial is built here: the caller of a compare-exchange builds the allowed decision once
/// the new TAT is published, with [`allowed_at_pace`].
#[inline]
pub(crate) fn next_at_pace(tat: u64, now: u64, pace: &Pace) -> Result<u64, Decision> {
    let start = tat.max(now);
    let next = start.saturating_add(pace.interval);
    let ahead = next - now;
    if ahead <= pace.width {
        Ok(next)
    } else {
        let retry_after = ahead - pace.width;
        Err(Decision::deny(
            Denial::RateExceeded,
            pace.burst,
            start - now,
            retry_after,
        ))
    }
}

/// The decision of a request allowed at `now` that moved the TAT to `next`.
#[inline]
pub(crate) fn allowed_at_pace(next: u64, now: u64, pace: &Pace) -> Decision {
    let Pace {
        interval,
        width,
        burst: limit,
    } = *pace;
    let ahead = next - now;
    // `remaining` is the spare time in whole intervals, divided out only if someone asks.
    // At most `burst - 1` of them; the `min` only matters when `width` saturated.
    let spare = (width - ahead).min(interval.saturating_mul(u64::from(limit - 1)));
    Decision::allow_spare(limit, spare, interval, ahead)
}

impl Core for Gcra {
    type State = u64;

    fn fresh(_now: u64, _rate: &Rate) -> u64 {
        0
    }

    fn check(tat: &mut u64, now: u64, rate: &Rate) -> Decision {
        let decision;
        (decision, *tat) = decide(*tat, now, rate);
        decision
    }

    /// The TAT whatever the rate: a TAT in the past is a whole budget at any rate.
    fn idle_at(tat: &u64, _rate: Option<&Rate>) -> u64 {
        *tat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    /// Runs `times` requests at `now`, returning how many were allowed.
    fn burst(tat: &mut u64, now: u64, rate: &Rate, times: u32) -> u32 {
        (0..times)
            .filter(|_| Gcra::check(tat, now, rate).is_allowed())
            .count() as u32
    }

    #[test]
    fn a_burst_of_three_at_three_per_second() {
        let rate = Rate::per_second(3);
        let t0 = 5 * SECOND;
        let mut tat = Gcra::fresh(t0, &rate);

        let first = Gcra::check(&mut tat, t0, &rate);
        assert_eq!(
            first,
            Decision::allowed(3, 2, Duration::from_nanos(333_333_334))
        );
        assert_eq!(Gcra::check(&mut tat, t0, &rate).remaining(), 1);
        let third = Gcra::check(&mut tat, t0, &rate);
        assert_eq!(
            third,
            Decision::allowed(3, 0, Duration::from_nanos(1_000_000_002))
        );

        let fourth = Gcra::check(&mut tat, t0, &rate);
        assert_eq!(
            fourth,
            Decision::denied(
                Denial::RateExceeded,
                3,
                Duration::from_nanos(1_000_000_002),
                Some(Duration::from_nanos(333_333_334)),
            )
        );
        // Denials change nothing: one nanosecond early is still denied, by exactly 1 ns.
        let early = Gcra::check(&mut tat, t0 + 333_333_333, &rate);
        assert_eq!(early.retry_after(), Some(Duration::from_nanos(1)));
        let on_time = Gcra::check(&mut tat, t0 + 333_333_334, &rate);
        assert!(on_time.is_allowed());
        assert_eq!(on_time.remaining(), 0);
    }

    #[test]
    fn six_in_one_instant_allow_exactly_three() {
        let rate = Rate::per_second(3);
        let mut tat = 0;
        assert_eq!(burst(&mut tat, 0, &rate, 6), 3);
    }

    #[test]
    fn fifty_per_second_against_five_per_second_for_ten_seconds() {
        // Requests every 20 ms for 10 s: the burst of 5 at t0, then one every 200 ms
        // (at 200, 400, ..., 9800 ms): 5 + 49.
        let rate = Rate::per_second(5);
        let mut tat = 0;
        let allowed = (0..500)
            .filter(|i| Gcra::check(&mut tat, i * 20 * MS, &rate).is_allowed())
            .count();
        assert_eq!(allowed, 54);
    }

    #[test]
    fn burst_one_spaces_requests_evenly() {
        let rate = Rate::per_second(10).with_burst(1);
        let mut tat = 0;
        assert_eq!(burst(&mut tat, 0, &rate, 5), 1);
        let denied = Gcra::check(&mut tat, 0, &rate);
        assert_eq!(denied.retry_after(), Some(Duration::from_millis(100)));
        assert_eq!(denied.limit(), 1);
        assert_eq!(burst(&mut tat, 100 * MS, &rate, 5), 1);
    }

    #[test]
    fn a_burst_above_the_count_keeps_the_sustained_rate() {
        let rate = Rate::per_second(10).with_burst(25);
        let mut tat = 0;
        assert_eq!(burst(&mut tat, 0, &rate, 40), 25);
        // Then 10 per second: one per 100 ms.
        assert_eq!(burst(&mut tat, SECOND, &rate, 40), 10);
    }

    #[test]
    fn remaining_and_reset_follow_the_refill() {
        let rate = Rate::per_minute(60);
        let mut tat = 0;
        assert_eq!(burst(&mut tat, 0, &rate, 60), 60);
        // 2.5 s later: 2 requests' worth is back, so this one leaves 1.
        let decision = Gcra::check(&mut tat, 2_500 * MS, &rate);
        assert!(decision.is_allowed());
        assert_eq!(decision.remaining(), 1);
        assert_eq!(decision.reset_after(), Duration::from_millis(58_500));
    }

    #[test]
    fn a_refilled_key_is_idle_and_decides_like_a_fresh_one() {
        let rate = Rate::per_second(2);
        let mut tat = 0;
        burst(&mut tat, 0, &rate, 2);
        assert_eq!(Gcra::idle_at(&tat, Some(&rate)), SECOND);
        let mut fresh = Gcra::fresh(SECOND, &rate);
        assert_eq!(
            Gcra::check(&mut tat, SECOND, &rate),
            Gcra::check(&mut fresh, SECOND, &rate)
        );
    }

    #[test]
    fn a_clock_read_behind_the_state_is_harmless() {
        let rate = Rate::per_second(1);
        let mut tat = 0;
        Gcra::check(&mut tat, 10 * SECOND, &rate);
        let late = Gcra::check(&mut tat, 9 * SECOND, &rate);
        assert_eq!(late.retry_after(), Some(Duration::from_secs(2)));
    }
}
