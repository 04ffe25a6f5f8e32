//! Peeking at a rate limiter's budget: for every algorithm, direct and keyed, at the
//! configured rate and at per-call rates, a peek returns exactly the decision the next check
//! returns at the same instant, and any number of peeks changes nothing (not the budget, not
//! the counters).

use std::time::Duration;

use resilience::rate_limit::{Algorithm, Decision, DirectRateLimiter, LocalRateLimiter};
use resilience::Rate;

const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Gcra,
    Algorithm::TokenBucket,
    Algorithm::SlidingWindow,
    Algorithm::SlidingLog,
    Algorithm::SketchedWindow,
];

/// xorshift64: a fixed sequence of steps, the same on every run.
struct Steps(u64);

impl Steps {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Runs `rounds` of: advance a random time, peek a random number of times (all alike),
/// check once and compare with the peek. Returns the checks made.
async fn peeks_predict_checks(
    seed: u64,
    rounds: u32,
    mut peek: impl FnMut() -> Decision,
    mut check: impl FnMut() -> Decision,
) -> u64 {
    let mut steps = Steps(seed);
    let mut checks = 0;
    for round in 0..rounds {
        let advance = match steps.next(4) {
            0 => Duration::ZERO,
            1 => Duration::from_millis(steps.next(50)),
            2 => Duration::from_millis(steps.next(700)),
            _ => Duration::from_nanos(steps.next(1_000)),
        };
        tokio::time::advance(advance).await;
        let peeked = peek();
        for _ in 0..steps.next(4) {
            assert_eq!(peek(), peeked, "round {round}: a peek changed the budget");
        }
        // Several checks at one instant, each predicted by the peek before it.
        let mut expected = peeked;
        for _ in 0..=steps.next(3) {
            let decision = check();
            checks += 1;
            assert_eq!(decision, expected, "round {round}: the check disagrees");
            expected = peek();
        }
    }
    checks
}

#[tokio::test(start_paused = true)]
async fn a_direct_limiter_peeks_exactly_what_it_will_decide() {
    for algorithm in ALGORITHMS {
        let limiter = DirectRateLimiter::builder("direct")
            .rate(Rate::per_second(5).with_burst(3))
            .algorithm(algorithm)
            .build()
            .unwrap();
        let checks = peeks_predict_checks(7, 300, || limiter.peek(), || limiter.check_now()).await;
        assert_eq!(
            limiter.metrics().total_checks,
            checks,
            "{algorithm}: peeks are not counted"
        );

        let per_call = Rate::per_minute(20);
        // A per-call rate never used yet peeks a whole budget.
        assert_eq!(limiter.peek_rate(per_call).remaining(), 19);
        peeks_predict_checks(
            11,
            100,
            || limiter.peek_rate(per_call),
            || limiter.check_rate_now(per_call),
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_keyed_limiter_peeks_exactly_what_it_will_decide() {
    for algorithm in ALGORITHMS {
        let limiter = LocalRateLimiter::builder("keyed")
            .rate(Rate::per_second(4))
            .algorithm(algorithm)
            .build()
            .unwrap();
        // An unknown key peeks a whole budget and is not stored.
        assert_eq!(limiter.peek("nobody").remaining(), 3);
        assert_eq!(limiter.metrics().active_limiters, 0);
        let checks =
            peeks_predict_checks(3, 300, || limiter.peek("ada"), || limiter.check_now("ada")).await;
        let metrics = limiter.metrics();
        assert_eq!(
            metrics.total_checks, checks,
            "{algorithm}: peeks are not counted"
        );
        // The sketch stores no key at all.
        let stored = usize::from(algorithm != Algorithm::SketchedWindow);
        assert_eq!(
            metrics.active_limiters, stored,
            "{algorithm}: peeks store nothing"
        );

        let per_call = Rate::per_second(2);
        peeks_predict_checks(
            5,
            100,
            || limiter.peek_rate("ada", per_call),
            || limiter.check_rate_now("ada", per_call),
        )
        .await;
    }
}
