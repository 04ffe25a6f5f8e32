//! Retry behaviour through the public API, under tokio's paused clock so every delay is exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::events::EventFilter;
use resilience::retry::{
    Backoff, BudgetConfig, Jitter, Retry, RetryBuilder, RetryConfig, RetryEvent, RetryRules,
};
use resilience::{Error, PatternKind, Rejection, RejectionReason};
use resilience_testkit::{Flaky, FlakyError};
use tokio::time::Instant;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A policy with no jitter, so delays are exact.
fn exact(name: &str) -> RetryBuilder {
    Retry::builder(name).jitter(Jitter::None)
}

/// Runs an always-failing operation and returns the gaps between its attempts.
async fn gaps(retry: &Retry) -> Vec<Duration> {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    let result = retry
        .call(|| {
            log.lock().unwrap().push(Instant::now());
            async { Err::<(), _>("down") }
        })
        .await;
    assert!(result.unwrap_err().is_retry_exhausted());
    let starts = starts.lock().unwrap();
    starts.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

/// Collects the policy's events, in order.
fn record(retry: &Retry) -> Arc<Mutex<Vec<RetryEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    retry.events().on(EventFilter::All, move |event| {
        if let Some(event) = event.payload::<RetryEvent>() {
            log.lock().unwrap().push(event.clone());
        }
    });
    events
}

#[tokio::test(start_paused = true)]
async fn exact_delays_between_attempts_for_every_strategy() {
    let cases = [
        (Backoff::constant(ms(100)), vec![100, 100, 100, 100]),
        (Backoff::linear(ms(100), ms(100)), vec![100, 200, 300, 400]),
        (Backoff::exponential(ms(100), 2.0), vec![100, 200, 400, 800]),
        (Backoff::fibonacci(ms(100)), vec![100, 100, 200, 300]),
        // The cap: 1 s, 2 s, then 2 s for ever (aioresilience `test_max_delay_cap`).
        (
            Backoff::exponential(ms(1000), 10.0),
            vec![1000, 2000, 2000, 2000],
        ),
    ];
    for (backoff, expected) in cases {
        let retry = exact("delays")
            .max_attempts(5)
            .backoff(backoff)
            .max_delay(ms(2000))
            .build()
            .unwrap();
        let expected: Vec<Duration> = expected.into_iter().map(ms).collect();
        assert_eq!(gaps(&retry).await, expected, "{backoff:?}");
        assert_eq!(
            retry.metrics().total_delay,
            expected.iter().sum::<Duration>()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn presets_wait_the_seeds_delays() {
    let no_jitter = |config: RetryConfig| RetryConfig {
        jitter: Jitter::None,
        ..config
    };
    let cases = [
        (RetryConfig::default(), vec![1000, 2000]),
        (RetryConfig::aggressive(), vec![100, 200, 400, 800]),
        (RetryConfig::conservative(), vec![2000, 4000]),
        (RetryConfig::network(), vec![500, 1250, 3125]),
    ];
    for (config, expected) in cases {
        let retry = Retry::from_config("preset", no_jitter(config)).unwrap();
        let expected: Vec<Duration> = expected.into_iter().map(ms).collect();
        assert_eq!(gaps(&retry).await, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_is_reproducible_and_capped() {
    let build = |seed| {
        Retry::builder("jitter")
            .max_attempts(20)
            .backoff(Backoff::exponential(ms(100), 2.0))
            .jitter(Jitter::Proportional(1.0))
            .max_delay(ms(1000))
            .seed(seed)
            .build()
            .unwrap()
    };
    let first = gaps(&build(7)).await;
    assert_eq!(first, gaps(&build(7)).await, "same seed, same waits");
    assert_ne!(first, gaps(&build(8)).await);
    assert!(first.iter().all(|gap| *gap <= ms(1000)), "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn max_attempts_counts_the_first_call() {
    for max_attempts in [1, 3] {
        let retry = exact("attempts")
            .max_attempts(max_attempts)
            .backoff(Backoff::constant(ms(10)))
            .build()
            .unwrap();
        let upstream = Flaky::builder().fail_first(100).build();
        let result = retry.call(|| upstream.call()).await;
        match result {
            Err(Error::RetryExhausted {
                attempts,
                last: Some(last),
            }) => {
                assert_eq!(attempts, max_attempts);
                assert_eq!(
                    (*last).into_inner(),
                    Some(FlakyError::new(max_attempts.into()))
                );
            }
            other => panic!("expected exhaustion, got {other:?}"),
        }
        assert_eq!(upstream.calls(), u64::from(max_attempts));
    }
}

#[tokio::test(start_paused = true)]
async fn success_after_retries_counts_like_the_seed() {
    let retry = exact("flaky")
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let upstream = Flaky::builder().fail_first(2).build();
    assert_eq!(retry.call(|| upstream.call()).await.unwrap(), 3);
    let metrics = retry.metrics();
    assert_eq!(
        (
            metrics.total_attempts,
            metrics.successful_attempts,
            metrics.failed_attempts
        ),
        (3, 1, 2)
    );
    assert_eq!(metrics.retries_exhausted, 0);
    retry.reset_metrics();
    assert_eq!(retry.metrics().total_attempts, 0);
    assert_eq!(retry.metrics().last_error, None);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_result_that_runs_out_is_never_a_success() {
    let retry = exact("result")
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let calls = AtomicUsize::new(0);
    let rules = RetryRules::new().retry_on_result(|value: &Option<u32>| value.is_none());
    let result = retry
        .call_with(&rules, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, String>(None) }
        })
        .await;
    assert!(matches!(
        result,
        Err(Error::RetryExhausted {
            attempts: 3,
            last: None
        })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let metrics = retry.metrics();
    assert_eq!(
        (metrics.successful_attempts, metrics.retries_exhausted),
        (0, 1)
    );

    // Retried until accepted (aioresilience `test_retry_on_result`).
    let count = AtomicUsize::new(0);
    let value = retry
        .call_with(&rules, || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, String>((n == 3).then_some(42)) }
        })
        .await
        .unwrap();
    assert_eq!((value, count.load(Ordering::SeqCst)), (Some(42), 3));
}

#[tokio::test(start_paused = true)]
async fn errors_outside_the_rules_are_returned_as_is() {
    let retry = exact("rules").build().unwrap();
    let calls = AtomicUsize::new(0);
    let rules = RetryRules::new().retry_if(|error: &&str| *error == "transient");
    let result = retry
        .call_with(&rules, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("bad request") }
        })
        .await;
    assert!(matches!(result, Err(Error::Inner("bad request"))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(retry.metrics().failed_attempts, 1);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ApiError {
    Throttled,
    Unavailable,
    Invalid,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[tokio::test(start_paused = true)]
async fn each_override_has_its_own_attempts_and_strategy() {
    let retry = exact("overrides")
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1000)))
        .build()
        .unwrap();
    let rules = RetryRules::<(), ApiError>::new()
        .strategy_if(
            |error| *error == ApiError::Throttled,
            5,
            Backoff::constant(ms(10)),
        )
        .never_retry_if(|error| *error == ApiError::Invalid);

    // aioresilience `test_per_exception_strategies`: {max 5} → 5 calls, base {max 3} → 3.
    for (error, expected) in [(ApiError::Throttled, 5), (ApiError::Unavailable, 3)] {
        let calls = AtomicUsize::new(0);
        let result = retry
            .call_with(&rules, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Err::<(), _>(error) }
            })
            .await;
        assert!(result.unwrap_err().is_retry_exhausted());
        assert_eq!(calls.load(Ordering::SeqCst), expected, "{error:?}");
    }

    // Mixed: 4 throttles (override 4 of 5), 2 outages (base 2 of 3), then a throttle uses up
    // the override's 5th attempt. The seed's shared count would have stopped at attempt 3.
    let script = [
        ApiError::Throttled,
        ApiError::Throttled,
        ApiError::Throttled,
        ApiError::Throttled,
        ApiError::Unavailable,
        ApiError::Unavailable,
        ApiError::Throttled,
    ];
    let calls = AtomicUsize::new(0);
    let started = Instant::now();
    let result = retry
        .call_with(&rules, || {
            let error = script[calls.fetch_add(1, Ordering::SeqCst)];
            async move { Err::<(), _>(error) }
        })
        .await;
    assert!(matches!(
        result,
        Err(Error::RetryExhausted { attempts: 7, last: Some(ref last) })
            if matches!(**last, Error::Inner(ApiError::Throttled))
    ));
    // Four 10 ms waits after throttles, two 1 s waits after outages.
    assert_eq!(started.elapsed(), ms(4 * 10 + 2 * 1000));

    let calls = AtomicUsize::new(0);
    let result = retry
        .call_with(&rules, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(ApiError::Invalid) }
        })
        .await;
    assert!(matches!(result, Err(Error::Inner(ApiError::Invalid))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_stops_retries_for_every_clone() {
    let retry = exact("budget")
        .max_attempts(10)
        .backoff(Backoff::constant(ms(10)))
        .budget(BudgetConfig {
            retry_ratio: 0.5,
            window: Duration::from_secs(10),
            min_retries_per_second: 0,
        })
        .build()
        .unwrap();
    // Four successful calls through a clone deposit 2 retries in the shared budget.
    let clone = retry.clone();
    for _ in 0..4 {
        clone.call(|| async { Ok::<_, String>(()) }).await.unwrap();
    }
    let events = record(&retry);
    let upstream = Flaky::builder().fail_first(100).build();
    let result = retry.call(|| upstream.call()).await;
    // The failing call's own deposit makes 2.5: two retries, then the budget is empty.
    assert!(matches!(
        result,
        Err(Error::RetryExhausted { attempts: 3, .. })
    ));
    assert_eq!(upstream.calls(), 3);
    assert_eq!(retry.budget().unwrap().available(), 0);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(RetryEvent::RetryExhausted { attempts: 3, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_retries_at_the_exact_boundary() {
    // Attempts start at 0, 1, 2 and 3 s; the one at 3 s is allowed with a 3 s limit, not with
    // a limit a nanosecond shorter.
    for (limit, expected) in [
        (Duration::from_secs(3), 4),
        (Duration::from_secs(3) - Duration::from_nanos(1), 3),
    ] {
        let retry = exact("elapsed")
            .max_attempts(100)
            .backoff(Backoff::constant(Duration::from_secs(1)))
            .max_elapsed(limit)
            .build()
            .unwrap();
        let upstream = Flaky::builder().fail_first(1000).build();
        let result = retry.call(|| upstream.call()).await;
        assert!(
            matches!(result, Err(Error::RetryExhausted { attempts, .. }) if attempts == expected)
        );
        assert_eq!(upstream.calls(), u64::from(expected));
    }
}

fn bulkhead_full(retry_after: Duration) -> Error<String> {
    Error::Rejected(Rejection::new(
        PatternKind::Bulkhead,
        Arc::from("pool"),
        RejectionReason::CapacityFull,
        Some(retry_after),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_longer_retry_after_is_honoured() {
    for (retry_after, expected) in [(ms(5000), ms(5000)), (ms(50), ms(100))] {
        let retry = exact("after")
            .backoff(Backoff::constant(ms(100)))
            .build()
            .unwrap();
        let starts = Mutex::new(Vec::new());
        let value = retry
            .execute(|| {
                let mut starts = starts.lock().unwrap();
                starts.push(Instant::now());
                let first = starts.len() == 1;
                async move {
                    if first {
                        Err(bulkhead_full(retry_after))
                    } else {
                        Ok("admitted")
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(value, "admitted");
        let starts = starts.lock().unwrap();
        assert_eq!(starts[1] - starts[0], expected);
    }
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_rejections_are_not_retried_by_default() {
    let breaker = CircuitBreaker::builder("payments").build().unwrap();
    breaker.force_open();
    let retry = exact("outer").build().unwrap();
    let ran = AtomicUsize::new(0);
    let result = retry
        .execute(|| {
            breaker.call(|| {
                ran.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, String>(()) }
            })
        })
        .await;
    match result {
        Err(Error::Rejected(rejection)) => {
            assert_eq!(rejection.pattern(), PatternKind::CircuitBreaker);
        }
        other => panic!("expected the breaker's rejection, got {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(breaker.metrics().rejected_requests, 1);
    assert_eq!(retry.metrics().total_attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn opted_in_breaker_rejections_wait_for_the_half_open_state() {
    let breaker = CircuitBreaker::builder("payments")
        .open_duration(Duration::from_secs(2))
        .build()
        .unwrap();
    breaker.trip();
    let retry = exact("outer")
        .backoff(Backoff::constant(ms(10)))
        .retry_rejections(true)
        .build()
        .unwrap();
    let started = Instant::now();
    let result = retry
        .execute(|| breaker.call(|| async { Ok::<_, String>("probe ok") }))
        .await;
    assert_eq!(result.unwrap(), "probe ok");
    // The rejection's retry_after (2 s) beat the 10 ms backoff.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn inner_timeouts_are_retried_unless_turned_off() {
    for (retry_timeouts, expected_calls) in [(true, 2), (false, 1)] {
        let retry = exact("timeouts")
            .backoff(Backoff::constant(ms(10)))
            .retry_timeouts(retry_timeouts)
            .build()
            .unwrap();
        let calls = AtomicUsize::new(0);
        let result = retry
            .execute(|| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Err(Error::<String>::Timeout {
                            elapsed: ms(500),
                            limit: ms(500),
                        })
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        assert_eq!(result.is_ok(), retry_timeouts);
        assert_eq!(calls.load(Ordering::SeqCst), expected_calls);
    }
}

#[tokio::test(start_paused = true)]
async fn events_come_in_exact_order() {
    let retry = exact("events")
        .backoff(Backoff::exponential(ms(100), 2.0))
        .build()
        .unwrap();
    let events = record(&retry);

    // A first-try success, its value taken as is or judged by a predicate.
    retry.call(|| async { Ok::<_, String>(1) }).await.unwrap();
    let rules = RetryRules::new().retry_on_result(|value: &u32| *value == 0);
    retry
        .call_with(&rules, || async { Ok::<_, String>(1) })
        .await
        .unwrap();
    let upstream = Flaky::builder().fail_first(2).build();
    retry.call(|| upstream.call()).await.unwrap();
    let failing = Flaky::builder().fail_first(10).build();
    retry.call(|| failing.call()).await.unwrap_err();

    let attempt = |attempt, delay, call| RetryEvent::RetryAttempt {
        attempt,
        max_attempts: 3,
        delay: ms(delay),
        error: Arc::from(format!("flaky call {call} failed")),
    };
    assert_eq!(
        *events.lock().unwrap(),
        [
            RetryEvent::RetrySuccess { attempts: 1 },
            RetryEvent::RetrySuccess { attempts: 1 },
            attempt(1, 100, 1),
            attempt(2, 200, 2),
            RetryEvent::RetrySuccess { attempts: 3 },
            attempt(1, 100, 1),
            attempt(2, 200, 2),
            RetryEvent::RetryExhausted {
                attempts: 3,
                error: Arc::from("flaky call 3 failed"),
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_try_success_counts_one_attempt_and_one_success() {
    let retry = exact("first")
        .backoff(Backoff::constant(ms(100)))
        .max_elapsed(Duration::from_secs(1))
        .budget(BudgetConfig::default())
        .build()
        .unwrap();
    retry.call(|| async { Ok::<_, String>(1) }).await.unwrap();
    let upstream = Flaky::builder().fail_first(1).build();
    retry.call(|| upstream.call()).await.unwrap();
    retry.call(|| async { Ok::<_, String>(1) }).await.unwrap();

    let metrics = retry.metrics();
    assert_eq!(metrics.total_attempts, 4);
    assert_eq!(metrics.successful_attempts, 3);
    assert_eq!(metrics.failed_attempts, 1);
    assert_eq!(metrics.total_delay, ms(100));
    assert_eq!(metrics.retries_exhausted, 0);
}

#[tokio::test(start_paused = true)]
async fn metrics_have_the_seeds_keys() {
    let retry = exact("metrics")
        .backoff(Backoff::constant(ms(100)))
        .build()
        .unwrap();
    let upstream = Flaky::builder().fail_first(2).build();
    retry.call(|| upstream.call()).await.unwrap();
    let failing = Flaky::builder().fail_first(10).build();
    retry.call(|| failing.call()).await.unwrap_err();

    let metrics = retry.metrics();
    assert_eq!(metrics.name, "metrics");
    assert_eq!(metrics.total_attempts, 6);
    assert_eq!(metrics.successful_attempts, 1);
    assert_eq!(metrics.failed_attempts, 5);
    assert_eq!(metrics.total_delay, ms(400));
    assert_eq!(metrics.last_error.as_deref(), Some("flaky call 3 failed"));
    assert_eq!(metrics.retries_exhausted, 1);
    assert!((metrics.success_rate - 1.0 / 6.0).abs() < 1e-12);

    #[cfg(feature = "serde")]
    {
        let json = serde_json::to_value(&metrics).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "failed_attempts",
                "last_error",
                "name",
                "retries_exhausted",
                "success_rate",
                "successful_attempts",
                "total_attempts",
                "total_delay",
            ]
        );
        assert_eq!(json["total_delay"], 0.4);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_stops_every_further_attempt() {
    let retry = exact("cancel")
        .max_attempts(100)
        .backoff(Backoff::constant(ms(100)))
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(0xC0FFEE);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        // Attempts run for 50 ms with 100 ms waits between them: a drop point in
        // 0..1000 ms falls inside an attempt or inside a wait.
        let drop_at = ms(rng.u64(1..1000));
        let (retry, s, f) = (retry.clone(), Arc::clone(&started), Arc::clone(&finished));
        let task = tokio::spawn(async move {
            let call = retry.call(|| {
                let (s, f) = (Arc::clone(&s), Arc::clone(&f));
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(ms(50)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>("down")
                }
            });
            assert!(tokio::time::timeout(drop_at, call).await.is_err());
        });
        tasks.push((task, started, finished));
    }
    let mut snapshot = Vec::new();
    for (task, started, finished) in &mut tasks {
        task.await.unwrap();
        snapshot.push((
            started.load(Ordering::SeqCst),
            finished.load(Ordering::SeqCst),
        ));
    }
    let mid_attempt = snapshot.iter().filter(|(s, f)| s != f).count();
    assert!(
        mid_attempt > 0 && mid_attempt < snapshot.len(),
        "{mid_attempt}"
    );

    tokio::time::sleep(Duration::from_secs(60)).await;
    for ((_, started, finished), before) in tasks.iter().zip(&snapshot) {
        let now = (
            started.load(Ordering::SeqCst),
            finished.load(Ordering::SeqCst),
        );
        // Nothing started after the drop, and an attempt dropped mid-way never finished.
        assert_eq!(now, *before);
    }
    let completed: usize = snapshot.iter().map(|(_, f)| f).sum();
    assert_eq!(retry.metrics().total_attempts, completed as u64);
}

#[tokio::test(start_paused = true)]
async fn panicking_hooks_and_predicates_never_reach_the_caller() {
    let reported = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&reported);
    resilience::set_error_handler(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let retry = exact("panics")
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    retry.events().on(EventFilter::All, |_| panic!("listener"));
    let rules = RetryRules::<u32, String>::new()
        .never_retry_if(|_| panic!("never_retry_if"))
        .on_error(|_, _| panic!("on_error"));
    let calls = AtomicUsize::new(0);
    let result = retry
        .call_with(&rules, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err("down".to_owned()) }
        })
        .await;
    assert!(matches!(
        result,
        Err(Error::RetryExhausted { attempts: 3, .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let rules = RetryRules::<u32, String>::new().retry_on_result(|_| panic!("retry_on_result"));
    let result = retry.call_with(&rules, || async { Ok(7) }).await;
    // A panicking predicate counts as a failure, so the value is retried, never returned.
    assert!(matches!(
        result,
        Err(Error::RetryExhausted { last: None, .. })
    ));
    assert!(reported.load(Ordering::SeqCst) >= 3 * 2 + 3);
    resilience::reset_error_handler();
}

#[tokio::test(start_paused = true)]
async fn set_config_changes_limits_and_keeps_metrics_and_listeners() {
    let retry = exact("live")
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let events = record(&retry);
    let upstream = Flaky::builder().fail_first(100).build();
    retry.call(|| upstream.call()).await.unwrap_err();
    retry
        .set_config(RetryConfig {
            max_attempts: 5,
            ..retry.config()
        })
        .unwrap();
    retry.call(|| upstream.call()).await.unwrap_err();
    assert_eq!(upstream.calls(), 3 + 5);
    assert_eq!(retry.metrics().total_attempts, 8);
    assert_eq!(events.lock().unwrap().len(), 8);

    let invalid = RetryConfig {
        max_attempts: 0,
        ..retry.config()
    };
    assert_eq!(
        retry.set_config(invalid).unwrap_err().field(),
        "max_attempts"
    );
    assert_eq!(retry.config().max_attempts, 5);
}

#[test]
fn every_invalid_field_is_named() {
    let field = |builder: RetryBuilder| builder.build().unwrap_err().field();
    let base = || Retry::builder("bad");
    assert_eq!(field(Retry::builder("  ")), "name");
    assert_eq!(field(base().max_attempts(0)), "max_attempts");
    assert_eq!(
        field(base().backoff(Backoff::exponential(ms(100), 0.9))),
        "multiplier"
    );
    assert_eq!(
        field(
            base()
                .backoff(Backoff::exponential(ms(10_000), 2.0))
                .max_delay(ms(1000))
        ),
        "initial_delay"
    );
    assert_eq!(
        field(
            base()
                .backoff(Backoff::constant(ms(10_000)))
                .max_delay(ms(1000))
        ),
        "delay"
    );
    assert_eq!(field(base().jitter(Jitter::Proportional(1.5))), "jitter");
    assert_eq!(field(base().max_elapsed(Duration::ZERO)), "max_elapsed");
    let budget = |retry_ratio, window| BudgetConfig {
        retry_ratio,
        window,
        min_retries_per_second: 10,
    };
    assert_eq!(
        field(base().budget(budget(-1.0, Duration::from_secs(10)))),
        "budget.retry_ratio"
    );
    assert_eq!(
        field(base().budget(budget(0.2, Duration::ZERO))),
        "budget.window"
    );
    let config = RetryConfig {
        max_attempts: 0,
        ..RetryConfig::default()
    };
    assert_eq!(
        Retry::from_config("bad", config).unwrap_err().field(),
        "max_attempts"
    );
}

#[test]
fn registry_never_ignores_a_different_config() {
    use resilience::registry::{Registry, RegistryError};
    let registry = Registry::<Retry>::new();
    let a = registry
        .get_or_create("api", RetryConfig::network())
        .unwrap();
    let b = registry
        .get_or_create("api", RetryConfig::network())
        .unwrap();
    assert_eq!(a.config(), b.config());
    assert!(matches!(
        registry.get_or_create("api", RetryConfig::aggressive()),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    assert_eq!(registry.metrics()["api"].total_attempts, 0);
}

#[cfg(feature = "serde")]
#[test]
fn config_deserializes_with_durations() {
    let config: RetryConfig = serde_json::from_str(
        r#"{
            "max_attempts": 4,
            "backoff": { "type": "exponential", "initial_delay": "500ms", "multiplier": 2.5 },
            "jitter": { "proportional": 0.2 },
            "max_delay": "15s",
            "max_elapsed": "1m",
            "budget": { "retry_ratio": 0.1, "window": "30s" },
            "retry_rejections": true
        }"#,
    )
    .unwrap();
    assert_eq!(
        config,
        RetryConfig {
            max_attempts: 4,
            backoff: Backoff::exponential(ms(500), 2.5),
            jitter: Jitter::Proportional(0.2),
            max_delay: Duration::from_secs(15),
            max_elapsed: Some(Duration::from_secs(60)),
            budget: Some(BudgetConfig {
                retry_ratio: 0.1,
                window: Duration::from_secs(30),
                ..BudgetConfig::default()
            }),
            retry_rejections: true,
            ..RetryConfig::default()
        }
    );
    let minimal: RetryConfig = serde_json::from_str(
        r#"{ "jitter": "full", "backoff": { "type": "fibonacci", "initial_delay": "1s" } }"#,
    )
    .unwrap();
    assert_eq!(minimal.jitter, Jitter::Full);
    assert_eq!(minimal.max_attempts, 3);
    assert!(serde_json::from_str::<RetryConfig>(r#"{ "max_attempt": 4 }"#).is_err());
    // Deserializing is not validating: from_config rejects what the file got wrong.
    let invalid: RetryConfig = serde_json::from_str(r#"{ "max_attempts": 0 }"#).unwrap();
    assert!(Retry::from_config("file", invalid).is_err());
}

#[cfg(feature = "tower")]
mod layer {
    use super::*;
    use resilience::retry::RetryLayer;
    use std::task::Poll;
    use tower::{Layer, ServiceBuilder, ServiceExt};

    fn policy() -> Retry {
        exact("layer")
            .backoff(Backoff::constant(ms(100)))
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_flaky_service_cloning_the_request() {
        let upstream = Flaky::builder().fail_first(2).build();
        let service = ServiceBuilder::new()
            .layer(RetryLayer::new(policy()))
            .service(upstream.clone());
        let started = Instant::now();
        assert_eq!(service.oneshot("ping").await.unwrap(), "ping");
        assert_eq!(started.elapsed(), ms(200));
        assert_eq!(upstream.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn exhaustion_carries_the_last_inner_error() {
        let upstream = Flaky::builder().fail_first(10).build();
        let service = RetryLayer::new(policy()).layer(upstream.clone());
        match service.oneshot("ping").await {
            Err(Error::RetryExhausted {
                attempts: 3,
                last: Some(last),
            }) => assert_eq!((*last).into_inner(), Some(FlakyError::new(3))),
            other => panic!("expected exhaustion, got {other:?}"),
        }
        assert_eq!(upstream.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn rules_apply_to_the_service() {
        let upstream = Flaky::builder().fail_first(10).build();
        let layer = RetryLayer::new(policy())
            .rules(RetryRules::new().never_retry_if(|error: &FlakyError| error.call() == 1));
        let result = layer.layer(upstream.clone()).oneshot("ping").await;
        assert!(matches!(result, Err(Error::Inner(error)) if error == FlakyError::new(1)));
        assert_eq!(upstream.calls(), 1);

        let rules = RetryRules::new().retry_on_result(|response: &&str| *response == "ping");
        let result = RetryLayer::new(policy())
            .rules(rules)
            .layer(Flaky::builder().build())
            .oneshot("ping")
            .await;
        assert!(matches!(
            result,
            Err(Error::RetryExhausted { last: None, .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_readiness_before_each_retry() {
        use tower_test::mock;
        let (mut service, mut handle) =
            mock::spawn_layer::<&'static str, &'static str, _>(RetryLayer::new(policy()));
        handle.allow(1);
        assert!(service.poll_ready().is_ready());
        let response = tokio::spawn(service.call("hello"));

        let (request, reply) = handle.next_request().await.unwrap();
        assert_eq!(request, "hello");
        reply.send_error("boom");

        // Past the 100 ms wait, the retry is held back by the inner service's readiness.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(matches!(handle.poll_request(), Poll::Pending));

        handle.allow(1);
        let (request, reply) = handle.next_request().await.unwrap();
        assert_eq!(request, "hello");
        reply.send_response("world");
        assert_eq!(response.await.unwrap().unwrap(), "world");
    }
}

/// A refusal saying when to come back.
#[derive(Debug)]
struct Throttled(Duration);

impl std::fmt::Display for Throttled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "throttled for {:?}", self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_the_other_side_asks_for_is_honoured_and_one_beyond_max_delay_gives_up() {
    // The error says how long to wait, as an HTTP Retry-After or gRPC pushback would.
    let retry = exact("advised")
        .max_attempts(3)
        .backoff(Backoff::constant(ms(100)))
        .max_delay(Duration::from_secs(10))
        .build()
        .unwrap();
    let rules = RetryRules::<u32, Throttled>::new()
        .retry_after(|result| result.as_ref().err().map(|e| e.0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    let asks = [ms(3_000), ms(20)];
    let answer = retry
        .call_with(&rules, || {
            let mut starts = log.lock().unwrap();
            starts.push(Instant::now());
            let attempt = starts.len();
            async move {
                asks.get(attempt - 1)
                    .map_or(Ok(7), |ask| Err(Throttled(*ask)))
            }
        })
        .await;
    assert_eq!(answer.unwrap(), 7);
    let gaps: Vec<_> = {
        let starts = starts.lock().unwrap();
        starts.windows(2).map(|pair| pair[1] - pair[0]).collect()
    };
    // The longer of the asked wait and the backoff, each time.
    assert_eq!(gaps, [ms(3_000), ms(100)]);

    let calls = AtomicUsize::new(0);
    let started = Instant::now();
    let refused = retry
        .call_with(&rules, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, _>(Throttled(Duration::from_secs(11))) }
        })
        .await
        .unwrap_err();
    assert!(refused.is_retry_exhausted(), "{refused:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no early second attempt");
    assert_eq!(started.elapsed(), Duration::ZERO, "gave up at once");
}

#[test]
fn calls_from_many_threads_are_all_counted_and_all_deposited() {
    let retry = Retry::builder("shared")
        .budget(BudgetConfig {
            retry_ratio: 0.5,
            // Nothing expires while the threads run, however loaded the machine.
            window: Duration::from_secs(3600),
            min_retries_per_second: 0,
        })
        .build()
        .unwrap();
    let (threads, calls) = (4, 2_000);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let retry = retry.clone();
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for _ in 0..calls {
                    let answer =
                        runtime.block_on(retry.call(|| async { Ok::<_, std::io::Error>(1) }));
                    assert_eq!(answer.unwrap(), 1);
                }
            });
        }
    });
    let metrics = retry.metrics();
    assert_eq!(metrics.total_attempts, threads * calls);
    assert_eq!(metrics.successful_attempts, threads * calls);
    assert_eq!(
        retry.budget().unwrap().available(),
        threads * calls / 2,
        "every call deposited half a retry"
    );
}
