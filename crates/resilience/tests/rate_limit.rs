//! Rate limiting through the public API: rates, exact budgets per algorithm under paused time,
//! `acquire`, per-call rates, bounded keyed memory, concurrency, events, metrics, config and
//! the tower layer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::events::EventFilter;
use resilience::rate_limit::{
    Algorithm, Decision, Denial, DirectRateLimiter, LocalRateLimiter, RateLimiter,
    RateLimiterConfig, RateLimiterEvent,
};
use resilience::registry::{Registry, RegistryError};
use resilience::{ConfigProblem, PatternKind, Rate, RateProblem, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::time::{advance, Instant};

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Gcra,
    Algorithm::TokenBucket,
    Algorithm::SlidingWindow,
    Algorithm::SlidingLog,
];

fn ns(nanos: u64) -> Duration {
    Duration::from_nanos(nanos)
}

fn local(rate: Rate, algorithm: Algorithm) -> LocalRateLimiter {
    LocalRateLimiter::builder("api")
        .rate(rate)
        .algorithm(algorithm)
        .build()
        .unwrap()
}

fn direct(rate: Rate, algorithm: Algorithm) -> DirectRateLimiter {
    DirectRateLimiter::builder("upstream")
        .rate(rate)
        .algorithm(algorithm)
        .build()
        .unwrap()
}

/// Runs `times` checks of `key` now, returning how many were allowed.
async fn allowed(limiter: &impl RateLimiter, key: &str, times: u32) -> u32 {
    let mut count = 0;
    for _ in 0..times {
        count += u32::from(limiter.check(key).await.is_allowed());
    }
    count
}

fn rate_problem(text: &str) -> RateProblem {
    let error = text.parse::<Rate>().unwrap_err();
    assert_eq!(error.field(), "rate", "{text:?}");
    match error.problem() {
        ConfigProblem::InvalidRate(problem) => problem.clone(),
        other => panic!("{text:?}: {other:?}"),
    }
}

// ===== rates =====

#[test]
fn every_unit_spelling_plural_and_whitespace_parses() {
    let cases = [
        ("10/second", Rate::per_second(10)),
        ("100/minute", Rate::per_minute(100)),
        ("1000/hour", Rate::per_hour(1000)),
        ("10000/day", Rate::per_day(10_000)),
        ("10/s", Rate::per_second(10)),
        ("10/sec", Rate::per_second(10)),
        ("10/secs", Rate::per_second(10)),
        ("10/seconds", Rate::per_second(10)),
        ("10/m", Rate::per_minute(10)),
        ("10/min", Rate::per_minute(10)),
        ("10/mins", Rate::per_minute(10)),
        ("10/minutes", Rate::per_minute(10)),
        ("10/h", Rate::per_hour(10)),
        ("10/hr", Rate::per_hour(10)),
        ("10/hrs", Rate::per_hour(10)),
        ("10/hours", Rate::per_hour(10)),
        ("10/d", Rate::per_day(10)),
        ("10/day", Rate::per_day(10)),
        ("10/days", Rate::per_day(10)),
        ("  10/second  ", Rate::per_second(10)),
        ("\t10 /\tminute\n", Rate::per_minute(10)),
    ];
    for (text, rate) in cases {
        assert_eq!(text.parse::<Rate>().unwrap(), rate, "{text:?}");
    }
    assert_eq!(Rate::per_second(10).to_string(), "10/second");
    assert_eq!(
        Rate::new(100, Duration::from_secs(60)).unwrap(),
        Rate::per_minute(100)
    );
}

#[test]
fn every_bad_rate_is_a_typed_error_never_a_disabled_limit() {
    assert_eq!(rate_problem("0/second"), RateProblem::ZeroCount);
    assert_eq!(rate_problem("-1/minute"), RateProblem::NegativeCount);
    assert_eq!(rate_problem("1.5/hour"), RateProblem::FractionalCount);
    assert_eq!(
        rate_problem("10/fortnight"),
        RateProblem::UnknownUnit("fortnight".to_owned())
    );
    assert_eq!(rate_problem("ten/second"), RateProblem::InvalidCount);
    assert_eq!(rate_problem("10"), RateProblem::Format);
    assert_eq!(rate_problem(""), RateProblem::Empty);
    assert_eq!(
        "10/fortnight".parse::<Rate>().unwrap_err().to_string(),
        "rate has an unknown unit \"fortnight\"; expected second, minute, hour or day \
         (or s, sec, min, m, h, hr, d, and plurals)"
    );
    let zero_burst = Rate::per_second(1).try_with_burst(0).unwrap_err();
    assert_eq!(
        zero_burst.problem(),
        &ConfigProblem::InvalidRate(RateProblem::ZeroBurst)
    );
}

// ===== exact budgets, per algorithm, under paused time =====

/// 3/second, burst 3: three at t0, the fourth denied with this exact `retry_after`.
fn three_per_second_retry(algorithm: Algorithm) -> u64 {
    match algorithm {
        // One emission interval, 1 s / 3 rounded up.
        Algorithm::Gcra | Algorithm::TokenBucket => 333_333_334,
        // The next window, once a third of this one has slid out.
        Algorithm::SlidingWindow => 1_333_333_334,
        // When the first of the three leaves the window.
        _ => 1_000_000_000,
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_three_then_the_next_exactly_at_retry_after_keyed() {
    for algorithm in ALGORITHMS {
        let limiter = local(Rate::per_second(3), algorithm);
        for remaining in [2, 1, 0] {
            let decision = limiter.check("ada").await;
            assert!(decision.is_allowed(), "{algorithm}");
            assert_eq!(decision.remaining(), remaining, "{algorithm}");
            assert_eq!(decision.limit(), 3);
        }
        let retry = three_per_second_retry(algorithm);
        let denied = limiter.check("ada").await;
        assert_eq!(denied.denial(), Some(Denial::RateExceeded), "{algorithm}");
        assert_eq!(denied.retry_after(), Some(ns(retry)), "{algorithm}");
        assert_eq!(denied.remaining(), 0);

        advance(ns(retry - 1)).await;
        assert!(
            !limiter.check("ada").await.is_allowed(),
            "{algorithm}: early"
        );
        advance(ns(1)).await;
        assert!(
            limiter.check("ada").await.is_allowed(),
            "{algorithm}: on time"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_three_then_the_next_exactly_at_retry_after_direct() {
    for algorithm in ALGORITHMS {
        let limiter = direct(Rate::per_second(3), algorithm);
        let remaining: Vec<u32> = (0..3).map(|_| limiter.check_now().remaining()).collect();
        assert_eq!(remaining, [2, 1, 0], "{algorithm}");
        let retry = three_per_second_retry(algorithm);
        let rejection = limiter.try_acquire().unwrap_err();
        assert_eq!(rejection.retry_after(), Some(ns(retry)), "{algorithm}");
        advance(ns(retry - 1)).await;
        assert!(!limiter.check_now().is_allowed(), "{algorithm}: early");
        advance(ns(1)).await;
        assert!(limiter.check_now().is_allowed(), "{algorithm}: on time");
    }
}

#[tokio::test(start_paused = true)]
async fn six_requests_in_one_instant_at_three_per_second_allow_exactly_three() {
    for algorithm in ALGORITHMS {
        let keyed = local(Rate::per_second(3), algorithm);
        assert_eq!(allowed(&keyed, "ada", 6).await, 3, "{algorithm}");
        let single = direct(Rate::per_second(3), algorithm);
        assert_eq!(allowed(&single, "", 6).await, 3, "{algorithm}");
    }
}

#[tokio::test(start_paused = true)]
async fn fifty_per_second_against_five_per_second_for_ten_seconds() {
    // GCRA and the token bucket: the burst of 5, then one every 200 ms (5 + 49 = 54, about
    // 5 a second, not 5 in total as the seed's Redis log gave). The log: exactly 5 in every
    // second. The window counter: 5, then 4 a second (it assumes the previous window's
    // requests were spread out, so it errs on the strict side).
    let expected = [
        (Algorithm::Gcra, [9, 5, 5, 5, 5, 5, 5, 5, 5, 5]),
        (Algorithm::TokenBucket, [9, 5, 5, 5, 5, 5, 5, 5, 5, 5]),
        (Algorithm::SlidingWindow, [5, 4, 4, 4, 4, 4, 4, 4, 4, 4]),
        (Algorithm::SlidingLog, [5; 10]),
    ];
    for (algorithm, seconds) in expected {
        let limiter = local(Rate::per_second(5), algorithm);
        let mut per_second = [0_u32; 10];
        for i in 0..500 {
            if limiter.check("client").await.is_allowed() {
                per_second[i / 50] += 1;
            }
            advance(Duration::from_millis(20)).await;
        }
        assert_eq!(per_second, seconds, "{algorithm}");
    }
}

#[tokio::test(start_paused = true)]
async fn remaining_reset_after_and_retry_after_are_exact() {
    let limiter = local(Rate::per_minute(60), Algorithm::Gcra);
    assert_eq!(
        limiter.check("ada").await,
        Decision::allowed(60, 59, Duration::from_secs(1))
    );
    assert_eq!(allowed(&limiter, "ada", 59).await, 59);
    assert_eq!(
        limiter.check("ada").await,
        Decision::denied(
            Denial::RateExceeded,
            60,
            Duration::from_secs(60),
            Some(Duration::from_secs(1)),
        )
    );
    advance(Duration::from_millis(2_500)).await;
    assert_eq!(
        limiter.check("ada").await,
        Decision::allowed(60, 1, Duration::from_millis(58_500))
    );
}

// ===== acquire =====

#[tokio::test(start_paused = true)]
async fn acquire_waits_exactly_until_allowed() {
    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(5))
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(allowed(&limiter, "ada", 5).await, 5);
    let started = Instant::now();
    let decision = limiter.acquire("ada").await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(decision.remaining(), 0);
    // An emission interval that is not whole milliseconds: tokio's timer fires on the next
    // millisecond, and the check there is allowed.
    let limiter = DirectRateLimiter::builder("upstream")
        .rate(Rate::per_second(3))
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(allowed(&limiter, "", 3).await, 3);
    let started = Instant::now();
    limiter.acquire("").await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= ns(333_333_334) && waited < Duration::from_millis(335));
}

#[tokio::test(start_paused = true)]
async fn acquire_rejects_at_once_when_the_wait_would_exceed_max_wait() {
    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(5))
        .max_wait(Duration::from_millis(199))
        .build()
        .unwrap();
    assert_eq!(allowed(&limiter, "ada", 5).await, 5);
    let started = Instant::now();
    let rejection = limiter.acquire("ada").await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "it never sleeps only to fail"
    );
    assert_eq!(rejection.pattern(), PatternKind::RateLimiter);
    assert_eq!(rejection.reason(), RejectionReason::RateLimited);
    assert_eq!(rejection.name(), "api");
    assert_eq!(rejection.retry_after(), Some(Duration::from_millis(200)));
    assert_eq!(
        rejection.to_string(),
        "rate limiter api rate limit exceeded, retry after 200ms"
    );
    // A wait of exactly `max_wait` is within it.
    limiter
        .set_config(RateLimiterConfig {
            max_wait: Duration::from_millis(200),
            ..limiter.config()
        })
        .unwrap();
    limiter.acquire("ada").await.unwrap();
    // The seed's default: `acquire` does not wait.
    let impatient = local(Rate::per_second(1), Algorithm::Gcra);
    impatient.acquire("bob").await.unwrap();
    assert!(impatient.acquire("bob").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_again_when_another_caller_takes_the_slot() {
    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(1))
        .max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    limiter.check("ada").await;
    // Three waiters for the slot at 1 s: one gets it, one the next at 2 s, and the third
    // would need 3 s, past `max_wait`, so it gives up as soon as it knows.
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = limiter.acquire("ada").await;
                (result.is_ok(), started.elapsed())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for waiter in waiters {
        outcomes.push(waiter.await.unwrap());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            (false, Duration::from_secs(2)),
            (true, Duration::from_secs(1)),
            (true, Duration::from_secs(2)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_counts_once_however_often_it_wakes() {
    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(1))
        .max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(limiter.events());
    limiter.check("ada").await;
    // The three waiters of the test above: between them they wake five times, but they
    // made three requests: two got through, one gave up.
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire("ada").await.is_ok() })
        })
        .collect();
    let mut through = 0;
    for waiter in waiters {
        through += u32::from(waiter.await.unwrap());
    }
    assert_eq!(through, 2);
    let mut names = recorder.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "rate_limit_exceeded",
            "rate_limit_passed",
            "rate_limit_passed",
            "rate_limit_passed"
        ]
    );
    let metrics = limiter.metrics();
    assert_eq!(
        (
            metrics.total_checks,
            metrics.total_allowed,
            metrics.total_rejected
        ),
        (4, 3, 1)
    );

    // The same for per-call rates and for a direct limiter.
    let single = DirectRateLimiter::builder("upstream")
        .rate(Rate::per_second(1))
        .max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(single.events());
    let rate = Rate::per_second(4).with_burst(1);
    single.acquire_rate("", rate).await.unwrap();
    // Two waiters for the slot at 250 ms: the one that loses it wakes again at 500 ms.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let single = single.clone();
            tokio::spawn(async move { single.acquire_rate("", rate).await })
        })
        .collect();
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    single.acquire("").await.unwrap();
    assert_eq!(recorder.names(), ["rate_limit_passed"; 4]);
    assert_eq!(single.metrics().total_checks, 4);
}

#[tokio::test(start_paused = true)]
async fn a_lowered_rate_never_evicts_a_budget_that_is_not_whole_at_it() {
    for algorithm in [
        Algorithm::TokenBucket,
        Algorithm::SlidingWindow,
        Algorithm::SlidingLog,
    ] {
        let limiter = LocalRateLimiter::builder("api")
            .rate(Rate::per_second(1))
            .algorithm(algorithm)
            .max_keys(1)
            .build()
            .unwrap();
        assert!(limiter.check_now("ada").is_allowed());
        limiter.set_rate(Rate::new(1, Duration::from_secs(10)).unwrap());
        // Whole again at the old rate, not at the new one: ada's spent budget stays, and
        // there is no room for bob.
        advance(Duration::from_secs(2)).await;
        assert_eq!(
            limiter.check_now("bob").denial(),
            Some(Denial::KeysExhausted),
            "{algorithm:?}"
        );
        assert_eq!(
            limiter.check_now("ada").denial(),
            Some(Denial::RateExceeded),
            "{algorithm:?}"
        );
        assert_eq!(limiter.metrics().evicted_keys, 0);

        // A per-call rate is a budget's own: the configured rate, however slow, does not
        // keep its whole budgets alive.
        let per_call = Rate::per_second(1);
        assert!(limiter.check_rate_now("carol", per_call).denial().is_some());
        let limiter = LocalRateLimiter::builder("api")
            .rate(Rate::per_hour(100))
            .algorithm(algorithm)
            .max_keys(1)
            .build()
            .unwrap();
        assert!(limiter.check_rate_now("ada", per_call).is_allowed());
        advance(Duration::from_secs(2)).await;
        assert!(
            limiter.check_rate_now("bob", per_call).is_allowed(),
            "{algorithm:?}"
        );
        assert_eq!(limiter.metrics().evicted_keys, 1);
    }
}

// ===== per-call rates =====

#[tokio::test(start_paused = true)]
async fn per_call_rates_keep_separate_budgets() {
    let limiter = local(Rate::per_second(100), Algorithm::Gcra);
    let two = Rate::per_second(2);
    let five = Rate::per_minute(5);
    assert!(limiter.check_rate_limit("ada", two));
    assert!(limiter.check_rate_limit("ada", two));
    assert!(!limiter.check_rate_limit("ada", two));
    let denied = limiter.check_rate("ada", two).await;
    assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
    // Another rate for the same key, the configured rate, and another key: all untouched.
    assert_eq!(limiter.check_rate("ada", five).await.remaining(), 4);
    assert_eq!(limiter.check("ada").await.remaining(), 99);
    assert!(limiter.check_rate_limit("bob", two));
    assert_eq!(limiter.metrics().active_limiters, 4);

    // A direct limiter ignores keys, but each per-call rate still has its own budget.
    let single = direct(Rate::per_second(1), Algorithm::Gcra);
    assert!(single.check("ada").await.is_allowed());
    assert!(
        !single.check("bob").await.is_allowed(),
        "one budget for all"
    );
    assert!(single.check_rate("ada", two).await.is_allowed());
    assert!(single.check_rate("bob", two).await.is_allowed());
    assert!(!single.check_rate("carol", two).await.is_allowed());
    assert_eq!(single.check_rate("dave", five).await.remaining(), 4);
    assert_eq!(single.metrics().active_limiters, 3);
}

#[tokio::test(start_paused = true)]
async fn acquire_rate_waits_on_its_own_budget() {
    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(1))
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let rate = Rate::per_second(4).with_burst(1);
    limiter.acquire_rate("ada", rate).await.unwrap();
    let started = Instant::now();
    limiter.acquire_rate("ada", rate).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

// ===== bounded keyed memory =====

#[tokio::test(start_paused = true)]
async fn a_million_keys_stay_within_max_keys_and_never_reset_a_live_budget() {
    // 10/second: each key goes idle 100 ms after its request. 50 new keys every millisecond
    // keeps about 5,000 live at a time, against the default bound of 10,000.
    let limiter = local(Rate::per_second(10), Algorithm::Gcra);
    let hourly = Rate::per_hour(1);
    assert!(limiter.check_rate("victim", hourly).await.is_allowed());
    for i in 0..1_000_000_u32 {
        let key = format!("client-{i}");
        assert!(limiter.check_now(&key).is_allowed(), "{key}");
        if i % 50 == 49 {
            advance(Duration::from_millis(1)).await;
        }
        if i % 100_000 == 0 {
            let metrics = limiter.metrics();
            assert!(metrics.active_limiters <= 10_000, "{metrics:?}");
            let victim = limiter.check_rate("victim", hourly).await;
            assert_eq!(victim.denial(), Some(Denial::RateExceeded), "at {i}");
        }
    }
    let victim = limiter.check_rate("victim", hourly).await;
    assert_eq!(victim.denial(), Some(Denial::RateExceeded));
    // 20 s of the hour have passed: the victim's budget is exactly where it was left.
    assert_eq!(victim.retry_after(), Some(Duration::from_secs(3_600 - 20)));
    let metrics = limiter.metrics();
    assert!(metrics.active_limiters <= 10_000);
    assert_eq!(metrics.total_allowed, 1_000_001);
    assert_eq!(metrics.rejected_new_keys, 0);
    assert!(metrics.evicted_keys >= 990_000, "{metrics:?}");
}

#[tokio::test(start_paused = true)]
async fn a_table_full_of_live_keys_refuses_new_keys_instead_of_evicting_one() {
    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(1))
        .max_keys(3)
        .build()
        .unwrap();
    for key in ["a", "b", "c"] {
        assert!(limiter.check(key).await.is_allowed());
    }
    advance(Duration::from_millis(250)).await;
    let refused = limiter.check("d").await;
    assert_eq!(refused.denial(), Some(Denial::KeysExhausted));
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(750)));
    let rejection = limiter.acquire("d").await.unwrap_err();
    assert_eq!(rejection.retry_after(), Some(Duration::from_millis(750)));
    // The live keys keep their budgets.
    assert_eq!(
        limiter.check("a").await.denial(),
        Some(Denial::RateExceeded)
    );
    advance(Duration::from_millis(750)).await;
    // Now a, b and c are idle (their buckets are full again): dropping one resets nothing.
    // A new key evicts one idle key, the least recently added.
    assert!(limiter.check("d").await.is_allowed());
    let metrics = limiter.metrics();
    assert_eq!(metrics.active_limiters, 3);
    assert_eq!(metrics.evicted_keys, 1);
    assert_eq!(metrics.rejected_new_keys, 2);
    assert!(
        limiter.check("a").await.is_allowed(),
        "a's budget is whole again"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_means_honestly_idle_for_every_algorithm() {
    for algorithm in ALGORITHMS {
        let limiter = LocalRateLimiter::builder("api")
            .rate(Rate::per_second(2))
            .algorithm(algorithm)
            .max_keys(1)
            .build()
            .unwrap();
        assert!(limiter.check("a").await.is_allowed());
        let refused = limiter.check("b").await;
        assert_eq!(refused.denial(), Some(Denial::KeysExhausted), "{algorithm}");
        let wait = refused.retry_after().unwrap();
        advance(wait - ns(1)).await;
        assert!(
            !limiter.check("b").await.is_allowed(),
            "{algorithm}: a is live"
        );
        advance(ns(1)).await;
        assert!(
            limiter.check("b").await.is_allowed(),
            "{algorithm}: a is idle"
        );
    }
}

// ===== concurrency =====

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_key_spend_exactly_the_budget() {
    // 100 per hour: no token comes back while the test runs, so any lost update would show.
    let rate = Rate::per_hour(100);
    for algorithm in ALGORITHMS {
        let keyed = local(rate, algorithm);
        let single = direct(rate, algorithm);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (keyed, single) = (keyed.clone(), single.clone());
                tokio::spawn(async move {
                    let (mut a, mut b) = (0, 0);
                    for _ in 0..200 {
                        a += u32::from(keyed.check("shared").await.is_allowed());
                        b += u32::from(single.check_now().is_allowed());
                        tokio::task::yield_now().await;
                    }
                    (a, b)
                })
            })
            .collect();
        let (mut keyed_total, mut single_total) = (0, 0);
        for task in tasks {
            let (a, b) = task.await.unwrap();
            keyed_total += a;
            single_total += b;
        }
        assert_eq!(keyed_total, 100, "{algorithm} keyed");
        assert_eq!(single_total, 100, "{algorithm} direct");
        assert_eq!(single.metrics().total_checks, 1_600);
        assert_eq!(keyed.metrics().total_rejected, 1_500);
    }
}

#[test]
fn threads_on_one_gcra_word_lose_no_update() {
    let limiter = direct(Rate::per_hour(10_000), Algorithm::Gcra);
    let allowed = Arc::new(AtomicU32::new(0));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..5_000 {
                    if limiter.check_now().is_allowed() {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 10_000);
    // The threads have exited: every decision they made is still counted, once.
    let metrics = limiter.metrics();
    assert_eq!(
        (metrics.total_allowed, metrics.total_rejected),
        (10_000, 10_000)
    );
}

// ===== events and metrics =====

#[tokio::test(start_paused = true)]
async fn events_come_in_order_with_key_rate_and_reason() {
    let limiter = local(Rate::per_second(3), Algorithm::Gcra);
    let recorder = EventRecorder::attach(limiter.events());
    allowed(&limiter, "ada", 4).await;
    assert_eq!(
        recorder.names(),
        [
            "rate_limit_passed",
            "rate_limit_passed",
            "rate_limit_passed",
            "rate_limit_exceeded"
        ]
    );
    let events = recorder.events();
    assert!(events
        .iter()
        .all(|e| e.pattern() == PatternKind::RateLimiter));
    assert_eq!(events[0].name(), "api");
    let first: BTreeMap<_, _> = events[0].metadata();
    assert_eq!(first["key"], "ada");
    assert_eq!(first["rate"], "3/second");
    assert_eq!(first["remaining"], "2");
    let last = events[3].metadata();
    assert_eq!(last["reason"], "rate_exceeded");
    assert_eq!(last["retry_after"], "0.333333334");
    match events[3].payload::<RateLimiterEvent>() {
        Some(RateLimiterEvent::RateLimitExceeded {
            key,
            rate,
            reason,
            retry_after,
        }) => {
            assert_eq!(key.as_deref(), Some("ada"));
            assert_eq!(*rate, Rate::per_second(3));
            assert_eq!(*reason, Denial::RateExceeded);
            assert_eq!(*retry_after, Some(ns(333_333_334)));
        }
        other => panic!("unexpected payload {other:?}"),
    }
    assert_eq!(
        "rate_limit_exceeded".parse(),
        Ok(EventFilter::Kind(RateLimiterEvent::RATE_LIMIT_EXCEEDED))
    );

    // A direct limiter has no key to report.
    let single = direct(Rate::per_second(1), Algorithm::Gcra);
    let recorder =
        EventRecorder::attach_filtered(single.events(), RateLimiterEvent::RATE_LIMIT_PASSED);
    single.check_now();
    single.check_now();
    assert_eq!(recorder.names(), ["rate_limit_passed"]);
    assert!(!recorder.events()[0].metadata().contains_key("key"));
}

#[tokio::test(start_paused = true)]
async fn metrics_count_checks_and_keys() {
    let limiter = local(Rate::per_second(3), Algorithm::SlidingLog);
    allowed(&limiter, "ada", 5).await;
    allowed(&limiter, "bob", 1).await;
    let metrics = limiter.metrics();
    assert_eq!(metrics.name, "api");
    assert_eq!(metrics.kind, "local");
    assert_eq!(metrics.algorithm, Algorithm::SlidingLog);
    assert_eq!(metrics.rate, Rate::per_second(3));
    assert_eq!(metrics.active_limiters, 2);
    assert_eq!(metrics.max_keys, 10_000);
    assert_eq!(metrics.total_checks, 6);
    assert_eq!(metrics.total_allowed, 4);
    assert_eq!(metrics.total_rejected, 2);
    assert_eq!(metrics.rejected_new_keys, 0);
    assert_eq!(metrics.evicted_keys, 0);

    let single = direct(Rate::per_second(1), Algorithm::Gcra);
    single.check_now();
    single.check_now();
    let metrics = single.metrics();
    assert_eq!((metrics.kind, metrics.active_limiters), ("direct", 1));
    assert_eq!((metrics.total_allowed, metrics.total_rejected), (1, 1));

    #[cfg(feature = "serde")]
    {
        let json = serde_json::to_value(limiter.metrics()).unwrap();
        assert_eq!(json["type"], "local");
        assert_eq!(json["rate"], "3/second");
        assert_eq!(json["algorithm"], "sliding_log");
        assert_eq!(json["active_limiters"], 2);
        assert_eq!(json["total_rejected"], 2);
    }
}

// ===== configuration =====

#[test]
fn builders_validate_naming_the_field() {
    let missing = LocalRateLimiter::builder("api").build().unwrap_err();
    assert_eq!(missing.field(), "rate");
    assert_eq!(
        missing.problem(),
        &ConfigProblem::InvalidRate(RateProblem::Missing)
    );
    let burst = DirectRateLimiter::builder("api")
        .rate(Rate::per_second(1))
        .burst(0)
        .build()
        .unwrap_err();
    assert_eq!(burst.field(), "burst");
    let keys = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(1))
        .max_keys(0)
        .build()
        .unwrap_err();
    assert_eq!(keys.to_string(), "max_keys must be at least 1");
    let name = LocalRateLimiter::builder(" ")
        .rate(Rate::per_second(1))
        .build()
        .unwrap_err();
    assert_eq!(name.field(), "name");

    let limiter = LocalRateLimiter::builder("api")
        .rate(Rate::per_second(10))
        .burst(25)
        .build()
        .unwrap();
    assert_eq!(limiter.rate(), Rate::per_second(10).with_burst(25));
    let config = RateLimiterConfig::new(Rate::per_minute(5));
    let limiter = LocalRateLimiter::from_config("api", config).unwrap();
    assert_eq!(limiter.config(), config);
}

#[tokio::test(start_paused = true)]
async fn rates_change_at_run_time_keeping_budgets() {
    let limiter = local(Rate::per_second(2), Algorithm::Gcra);
    assert_eq!(allowed(&limiter, "ada", 5).await, 2);
    limiter.set_rate(Rate::per_second(4));
    // The debt of two half-second intervals is still there, now measured in quarter seconds:
    // the TAT is 1 s ahead, the new burst width is 1 s, so nothing fits yet.
    assert!(!limiter.check("ada").await.is_allowed());
    advance(Duration::from_millis(250)).await;
    assert_eq!(allowed(&limiter, "ada", 5).await, 1);

    let error = limiter
        .set_config(RateLimiterConfig {
            algorithm: Algorithm::SlidingLog,
            ..limiter.config()
        })
        .unwrap_err();
    assert_eq!(error.field(), "algorithm");
    let single = direct(Rate::per_second(1), Algorithm::Gcra);
    single.check_now();
    single.set_rate(Rate::per_second(1).with_burst(3));
    assert_eq!(allowed(&single, "", 5).await, 2);
    assert_eq!(single.config().rate.burst(), 3);
}

#[cfg(feature = "serde")]
#[test]
fn configs_deserialize_and_validate() {
    let config: RateLimiterConfig = serde_json::from_str(
        r#"{"rate": "100/minute", "burst": 20, "algorithm": "sliding_window",
            "max_limiters": 500, "max_wait": "250ms"}"#,
    )
    .unwrap();
    assert_eq!(config.rate, Rate::per_minute(100).with_burst(20));
    assert_eq!(config.algorithm, Algorithm::SlidingWindow);
    assert_eq!(config.max_keys, 500);
    assert_eq!(config.max_wait, Duration::from_millis(250));
    let minimal: RateLimiterConfig = serde_json::from_str(r#"{"rate": "10/s"}"#).unwrap();
    assert_eq!(minimal, RateLimiterConfig::new(Rate::per_second(10)));

    let error = |json: &str| serde_json::from_str::<RateLimiterConfig>(json).unwrap_err();
    assert!(error(r#"{"rate": "10/fortnight"}"#)
        .to_string()
        .contains("unknown unit \"fortnight\""));
    assert!(error(r#"{"rate": "0/second"}"#)
        .to_string()
        .contains("rate must allow at least 1 request per period"));
    assert!(error(r#"{"rate": "10/s", "burst": 0}"#)
        .to_string()
        .contains("burst must allow a burst of at least 1"));
    assert!(error(r#"{"rate": "10/s", "max_keys": 0}"#)
        .to_string()
        .contains("max_keys must be at least 1"));
    assert!(error(r#"{"max_keys": 10}"#).to_string().contains("rate"));
    assert!(error(r#"{"rate": "10/s", "limit": 3}"#)
        .to_string()
        .contains("unknown field"));

    let rate: Rate = serde_json::from_str(r#""  1000/hour ""#).unwrap();
    assert_eq!(rate, Rate::per_hour(1000));
    assert_eq!(
        serde_json::to_string(&Rate::per_day(7)).unwrap(),
        r#""7/day""#
    );
}

#[test]
fn registries_share_limiters_by_name() {
    let registry = Registry::<LocalRateLimiter>::new();
    let config = RateLimiterConfig::new(Rate::per_second(1));
    let a = registry.get_or_create("login", config).unwrap();
    let b = registry.get_or_create("login", config).unwrap();
    assert!(a.check_now("ada").is_allowed());
    assert!(!b.check_now("ada").is_allowed(), "same name, same budgets");
    let other = RateLimiterConfig::new(Rate::per_second(2));
    assert!(matches!(
        registry.get_or_create("login", other),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    assert_eq!(registry.metrics()["login"].total_checks, 2);
    let directs = Registry::<DirectRateLimiter>::new();
    directs.get_or_create("partner", config).unwrap();
    assert_eq!(directs.names(), ["partner"]);
}

// ===== pipeline and tower =====

#[tokio::test(start_paused = true)]
async fn a_direct_limiter_admits_pipeline_calls() {
    use resilience::pipeline::Pipeline;

    let limiter = DirectRateLimiter::builder("partner")
        .rate(Rate::per_second(2))
        .max_wait(Duration::from_millis(500))
        .build()
        .unwrap();
    let pipeline = Pipeline::<u32, std::io::Error>::builder("partner")
        .rate_limiter(limiter.clone())
        .build()
        .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(pipeline.call(|| async { Ok(7) }).await.unwrap(), 7);
    }
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    // Without a wait, the next call is refused with the time the wait would have taken.
    limiter
        .set_config(RateLimiterConfig {
            max_wait: Duration::ZERO,
            ..limiter.config()
        })
        .unwrap();
    let error = pipeline.call(|| async { Ok(7) }).await.unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.pattern(), PatternKind::RateLimiter);
    assert_eq!(rejection.retry_after(), Some(Duration::from_millis(500)));
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_tower_layer_rejects_over_the_rate_without_calling_the_service() {
    use resilience::rate_limit::RateLimitLayer;
    use resilience::Error;
    use tower::{service_fn, Layer, ServiceExt};

    let limiter = direct(Rate::per_second(2), Algorithm::Gcra);
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let service = RateLimitLayer::new(limiter.clone()).layer(service_fn(move |n: u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(n + 1) }
    }));
    // Clones share the one budget.
    assert_eq!(service.clone().oneshot(1).await.unwrap(), 2);
    assert_eq!(service.clone().oneshot(2).await.unwrap(), 3);
    match service.clone().oneshot(3).await {
        Err(Error::Rejected(rejection)) => {
            assert_eq!(rejection.reason(), RejectionReason::RateLimited);
            assert_eq!(rejection.retry_after(), Some(Duration::from_millis(500)));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    advance(Duration::from_millis(500)).await;
    assert_eq!(service.oneshot(4).await.unwrap(), 5);
    assert_eq!(limiter.metrics().total_checks, 4);
}
