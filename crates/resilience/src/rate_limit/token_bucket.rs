//! Token bucket: a bucket of `burst` tokens, refilled one token per emission interval.
//!
//! A request takes a token or is denied. Tokens are counted whole; the time already spent
//! towards the next token is kept (`refilled_at` advances by whole intervals only), so no
//! fraction is lost or invented and the arithmetic is exact. It admits exactly what GCRA
//! admits; it is here for those who think in tokens, and its state (three words) reads as a
//! token count in a debugger. A full bucket carries no information and may be forgotten.

use super::state::Core;
use super::{Decision, Denial};
use crate::Rate;

/// The token-bucket core.
#[derive(Debug)]
pub(crate) struct TokenBucket;

/// One key's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    tokens: u32,
    /// The instant up to which refills are counted.
    refilled_at: u64,
    /// When the bucket will be full if nothing is taken.
    full_at: u64,
}

impl Bucket {
    fn refill(&mut self, now: u64, interval: u64, capacity: u32) {
        if now > self.refilled_at {
            let earned = (now - self.refilled_at) / interval;
            if u64::from(self.tokens) + earned >= u64::from(capacity) {
                self.tokens = capacity;
                self.refilled_at = now;
            } else {
                // `earned < capacity`, so both fit.
                self.tokens += earned as u32;
                self.refilled_at += earned * interval;
            }
        }
        // A rate lowered at run time may leave more tokens than the new capacity.
        self.tokens = self.tokens.min(capacity);
        let missing = u64::from(capacity - self.tokens);
        self.full_at = self
            .refilled_at
            .saturating_add(missing.saturating_mul(interval));
    }
}

impl Core for TokenBucket {
    type State = Bucket;

    fn fresh(now: u64, rate: &Rate) -> Bucket {
        Bucket {
            tokens: rate.burst(),
            refilled_at: now,
            full_at: now,
        }
    }

    fn check(bucket: &mut Bucket, now: u64, rate: &Rate) -> Decision {
        let (interval, capacity) = (rate.interval_nanos(), rate.burst());
        bucket.refill(now, interval, capacity);
        let now = now.max(bucket.refilled_at);
        if bucket.tokens > 0 {
            bucket.tokens -= 1;
            bucket.full_at = bucket.full_at.saturating_add(interval);
            Decision::allow(capacity, bucket.tokens, bucket.full_at - now)
        } else {
            let next_token = bucket.refilled_at.saturating_add(interval);
            Decision::deny(
                Denial::RateExceeded,
                capacity,
                bucket.full_at - now,
                next_token - now,
            )
        }
    }

    /// `full_at` was computed at the rate of the last check; at `rate` the missing tokens
    /// refill one per *its* interval, which after a rate was lowered is later.
    fn idle_at(bucket: &Bucket, rate: Option<&Rate>) -> u64 {
        let full_now = rate.map_or(0, |rate| {
            let missing = u64::from(rate.burst().saturating_sub(bucket.tokens));
            bucket
                .refilled_at
                .saturating_add(missing.saturating_mul(rate.interval_nanos()))
        });
        bucket.full_at.max(full_now)
    }
}

#[cfg(test)]
mod tests {
    use super::super::gcra::Gcra;
    use super::*;
    use std::time::Duration;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_of_three_at_three_per_second() {
        let rate = Rate::per_second(3);
        let mut bucket = TokenBucket::fresh(0, &rate);
        let remaining: Vec<_> = (0..3)
            .map(|_| TokenBucket::check(&mut bucket, 0, &rate).remaining())
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let denied = TokenBucket::check(&mut bucket, 0, &rate);
        assert_eq!(
            denied,
            Decision::denied(
                Denial::RateExceeded,
                3,
                Duration::from_nanos(1_000_000_002),
                Some(Duration::from_nanos(333_333_334)),
            )
        );
        assert!(!TokenBucket::check(&mut bucket, 333_333_333, &rate).is_allowed());
        let on_time = TokenBucket::check(&mut bucket, 333_333_334, &rate);
        assert_eq!(
            on_time,
            Decision::allowed(3, 0, Duration::from_nanos(1_000_000_002))
        );
    }

    #[test]
    fn six_in_one_instant_allow_exactly_three() {
        let rate = Rate::per_second(3);
        let mut bucket = TokenBucket::fresh(7, &rate);
        let allowed = (0..6)
            .filter(|_| TokenBucket::check(&mut bucket, 7, &rate).is_allowed())
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn admits_exactly_what_gcra_admits() {
        for rate in [
            Rate::per_second(5),
            Rate::per_second(3).with_burst(7),
            Rate::per_minute(100).with_burst(1),
        ] {
            let mut bucket = TokenBucket::fresh(0, &rate);
            let mut tat = Gcra::fresh(0, &rate);
            let mut time = 0;
            for step in 0..2_000_u64 {
                // An irregular but deterministic arrival pattern.
                time += (step * 7_919 % 13) * 9 * MS;
                let ours = TokenBucket::check(&mut bucket, time, &rate);
                let gcra = Gcra::check(&mut tat, time, &rate);
                assert_eq!(ours, gcra, "{rate} at {time}");
            }
        }
    }

    #[test]
    fn fifty_per_second_against_five_per_second_for_ten_seconds() {
        let rate = Rate::per_second(5);
        let mut bucket = TokenBucket::fresh(0, &rate);
        let allowed = (0..500)
            .filter(|i| TokenBucket::check(&mut bucket, i * 20 * MS, &rate).is_allowed())
            .count();
        assert_eq!(allowed, 54);
    }

    #[test]
    fn a_full_bucket_is_idle() {
        let rate = Rate::per_second(2);
        let mut bucket = TokenBucket::fresh(0, &rate);
        assert_eq!(TokenBucket::idle_at(&bucket, Some(&rate)), 0);
        TokenBucket::check(&mut bucket, 0, &rate);
        TokenBucket::check(&mut bucket, 0, &rate);
        assert_eq!(TokenBucket::idle_at(&bucket, Some(&rate)), SECOND);
        let mut fresh = TokenBucket::fresh(SECOND, &rate);
        assert_eq!(
            TokenBucket::check(&mut bucket, SECOND, &rate),
            TokenBucket::check(&mut fresh, SECOND, &rate)
        );
    }
}
