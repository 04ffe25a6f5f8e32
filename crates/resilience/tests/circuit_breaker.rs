//! Circuit breaker behaviour through the public API, under paused time: exact transition
//! timing for every detector, manual control, permits, the seed bugs of section 16.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{
    CallRecord, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerEvent, CircuitState, Combine,
    DetectorConfig, DetectorState, FailureDetector, RestoreError, Window,
};
use resilience::classify::Classifier;
use resilience::{Error, PatternKind, Rejection, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::time::{advance, Instant};

const NS: Duration = Duration::from_nanos(1);

async fn fail(breaker: &CircuitBreaker) {
    let result = breaker.call(|| async { Err::<(), _>("boom") }).await;
    assert!(
        matches!(result, Err(Error::Inner("boom"))),
        "expected the call to run and fail, got {result:?}"
    );
}

async fn succeed(breaker: &CircuitBreaker) {
    breaker
        .call(|| async { Ok::<_, &str>(()) })
        .await
        .expect("expected the call to run and succeed");
}

async fn is_rejected(breaker: &CircuitBreaker) -> Option<RejectionReason> {
    let ran = AtomicU32::new(0);
    let result = breaker
        .call(|| async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, &str>(())
        })
        .await;
    match result {
        Err(Error::Rejected(rejection)) => {
            assert_eq!(
                ran.load(Ordering::SeqCst),
                0,
                "a rejected call must not run"
            );
            assert_eq!(rejection.pattern(), PatternKind::CircuitBreaker);
            Some(rejection.reason())
        }
        _ => None,
    }
}

fn breaker(detector: DetectorConfig) -> CircuitBreaker {
    CircuitBreaker::builder("dependency")
        .detector(detector)
        .open_duration(Duration::from_secs(10))
        .success_threshold(1)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_on_the_threshold_and_half_open_exactly_on_time() {
    let breaker = CircuitBreaker::builder("db").build().unwrap();
    for _ in 0..4 {
        fail(&breaker).await;
    }
    succeed(&breaker).await; // a success starts the count again
    for _ in 0..4 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);

    // Default open duration: 60 s, counted from the moment it opened.
    advance(Duration::from_secs(60) - NS).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    let result = breaker.call(|| async { Ok::<_, ()>(()) }).await;
    assert_eq!(result.unwrap_err().retry_after(), Some(NS));
    advance(NS).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen, "never stale (B4)");

    // Default success threshold: 2 sequential probes.
    succeed(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    succeed(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn rejection_carries_the_remaining_open_time() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    fail(&breaker).await;
    advance(Duration::from_millis(2500)).await;
    let error = breaker
        .call(|| async { Ok::<_, ()>(()) })
        .await
        .unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
    assert_eq!(rejection.retry_after(), Some(Duration::from_millis(7500)));
    assert_eq!(rejection.name(), "dependency");
}

#[test]
fn rejections_carry_short_and_long_names_whole() {
    for name in ["db", "a-dependency-with-a-name-longer-than-most"] {
        let breaker = CircuitBreaker::builder(name).build().unwrap();
        breaker.trip();
        let rejection = breaker.try_acquire().unwrap_err();
        assert_eq!(rejection.name(), name);
        let error = breaker.call_blocking(|| Ok::<_, ()>(())).unwrap_err();
        assert_eq!(error.rejection().map(Rejection::name), Some(name));
        assert_eq!(rejection.clone().name(), name);
    }
}

#[tokio::test(start_paused = true)]
async fn failure_count_counts_failures_within_the_window_only() {
    let breaker = breaker(DetectorConfig::FailureCount {
        threshold: 3,
        window: Duration::from_secs(10),
    });
    fail(&breaker).await; // t = 0
    advance(Duration::from_secs(5)).await;
    fail(&breaker).await; // t = 5
    succeed(&breaker).await; // successes do not lower the count
    advance(Duration::from_secs(5)).await;
    fail(&breaker).await; // t = 10: the first failure just left the window
    assert_eq!(breaker.state(), CircuitState::Closed);
    advance(Duration::from_secs(5) - NS).await;
    fail(&breaker).await; // t = 15 - 1ns: failures at 5, 10, 15-: three within 10 s
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_the_last_calls_needs_min_calls() {
    let breaker = breaker(DetectorConfig::FailureRate {
        window: Window::Calls(10),
        threshold: 0.5,
        min_calls: 6,
    });
    for _ in 0..5 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), CircuitState::Closed, "5 calls < min_calls");
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);

    // Below the threshold it stays closed however many calls there are.
    let breaker = breaker_with_rate(0.5);
    for i in 0..40 {
        if i % 3 == 0 {
            fail(&breaker).await;
        } else {
            succeed(&breaker).await;
        }
    }
    assert_eq!(breaker.state(), CircuitState::Closed, "33 % < 50 %");
}

fn breaker_with_rate(threshold: f64) -> CircuitBreaker {
    breaker(DetectorConfig::FailureRate {
        window: Window::Calls(10),
        threshold,
        min_calls: 5,
    })
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_time_forgets_old_calls_at_the_bucket_edge() {
    let breaker = breaker(DetectorConfig::FailureRate {
        window: Window::Time(Duration::from_secs(10)),
        threshold: 0.5,
        min_calls: 4,
    });
    for _ in 0..3 {
        succeed(&breaker).await;
    }
    fail(&breaker).await; // 1 of 4 at t = 0
                          // 1 s buckets: the calls at t = 0 leave the window exactly at t = 10 s.
    advance(Duration::from_secs(10)).await;
    fail(&breaker).await;
    fail(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Closed, "3 calls < min_calls");
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_call_rate_opens_on_slow_successes() {
    let breaker = breaker(DetectorConfig::SlowCallRate {
        window: Window::Calls(4),
        slow_call_duration: Duration::from_millis(100),
        threshold: 0.5,
        min_calls: 4,
    });
    let call = |millis: u64| {
        breaker.call(move || async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok::<_, ()>(())
        })
    };
    call(99).await.unwrap();
    call(10).await.unwrap();
    call(100).await.unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
    call(150).await.unwrap();
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "2 of 4 calls >= 100 ms"
    );
}

/// Permits time their calls as `call` does: a borrowed, an owned and a dropped permit each
/// report how long their call held them, to the nanosecond, and a slow one counts as slow.
#[tokio::test(start_paused = true)]
async fn permits_time_their_calls_exactly() {
    let breaker = breaker(DetectorConfig::SlowCallRate {
        window: Window::Calls(3),
        slow_call_duration: Duration::from_millis(100),
        threshold: 0.5,
        min_calls: 3,
    });
    let recorder = EventRecorder::attach(breaker.events());

    let permit = breaker.try_acquire().unwrap();
    advance(Duration::from_millis(100) - NS).await;
    permit.success();
    let permit = breaker.try_acquire_owned().unwrap();
    advance(Duration::from_millis(100)).await;
    permit.success();
    assert_eq!(breaker.state(), CircuitState::Closed, "2 calls < min_calls");
    let permit = breaker.try_acquire_owned().unwrap();
    advance(Duration::from_millis(7)).await;
    drop(permit);
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "a dropped call is not counted"
    );
    let permit = breaker.try_acquire().unwrap();
    advance(Duration::from_millis(250)).await;
    permit.success();

    let durations: Vec<_> = recorder
        .events()
        .iter()
        .filter_map(|event| match event.payload::<CircuitBreakerEvent>() {
            Some(CircuitBreakerEvent::CallSuccess { duration, .. }) => Some(*duration),
            _ => None,
        })
        .collect();
    assert_eq!(
        durations,
        [
            Some(Duration::from_millis(100) - NS),
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(250)),
        ]
    );
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "2 of 3 counted calls >= 100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn combined_detectors_join_votes() {
    let children = || {
        vec![
            DetectorConfig::ConsecutiveFailures { threshold: 3 },
            DetectorConfig::FailureRate {
                window: Window::Calls(10),
                threshold: 0.5,
                min_calls: 6,
            },
        ]
    };
    let any = breaker(DetectorConfig::Combined {
        mode: Combine::Any,
        detectors: children(),
    });
    let all = breaker(DetectorConfig::Combined {
        mode: Combine::All,
        detectors: children(),
    });
    for breaker in [&any, &all] {
        for _ in 0..3 {
            fail(breaker).await;
        }
    }
    assert_eq!(any.state(), CircuitState::Open);
    assert_eq!(
        all.state(),
        CircuitState::Closed,
        "rate side has 3 < 6 calls"
    );
    for _ in 0..3 {
        fail(&all).await;
    }
    assert_eq!(all.state(), CircuitState::Open);
}

/// c-breaker's README detector: successes pay back failures.
#[derive(Debug, Default)]
struct Balance {
    score: u64,
}

impl FailureDetector for Balance {
    fn record(&mut self, call: CallRecord, _now: Instant) {
        self.score = if call.failed {
            self.score + 1
        } else {
            self.score.saturating_sub(1)
        };
    }
    fn should_trip(&mut self, _now: Instant) -> bool {
        self.score >= 3
    }
    fn reset(&mut self) {
        self.score = 0;
    }
    fn snapshot(&self, _now: Instant) -> DetectorState {
        DetectorState::new("balance").with_counters(vec![self.score])
    }
    fn restore(&mut self, state: &DetectorState, _now: Instant) -> Result<(), RestoreError> {
        state.expect_kind("balance")?;
        self.score = state.counters[0];
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn custom_detectors_plug_in_and_snapshot() {
    let breaker = CircuitBreaker::builder("custom")
        .custom_detector(Balance::default)
        .build()
        .unwrap();
    fail(&breaker).await;
    fail(&breaker).await;
    succeed(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Closed, "score 2");
    assert_eq!(breaker.detector_state().counters, [2]);

    let other = CircuitBreaker::builder("custom")
        .custom_detector(Balance::default)
        .build()
        .unwrap();
    other.restore_detector(&breaker.detector_state()).unwrap();
    fail(&other).await;
    assert_eq!(other.state(), CircuitState::Open, "restored score 2 + 1");
    assert!(other
        .restore_detector(&DetectorState::new("failure_rate"))
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn open_duration_grows_on_repeated_trips_up_to_the_cap() {
    let breaker = CircuitBreaker::builder("flappy")
        .failure_threshold(1)
        .success_threshold(1)
        .open_duration(Duration::from_secs(10))
        .open_duration_backoff(2.0, Duration::from_secs(30))
        .build()
        .unwrap();
    fail(&breaker).await;
    for expected in [10, 20, 30, 30] {
        let open_for = Duration::from_secs(expected);
        advance(open_for - NS).await;
        assert_eq!(breaker.state(), CircuitState::Open, "open for {expected} s");
        advance(NS).await;
        fail(&breaker).await; // the probe fails: open again, longer
    }
    advance(Duration::from_secs(30)).await;
    succeed(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Closed);
    fail(&breaker).await;
    advance(Duration::from_secs(10)).await;
    assert_eq!(
        breaker.state(),
        CircuitState::HalfOpen,
        "closing resets the growth"
    );
}

#[tokio::test(start_paused = true)]
async fn open_time_runs_from_opening_not_from_a_late_failure() {
    // B4: aioresilience timed from the last failure, so a slow call that failed after the
    // circuit opened kept it open longer.
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    // join! polls the slow call first: it is admitted while closed, then the fast failure
    // opens the circuit at t = 0, and the slow call fails at t = 5 s.
    let slow = breaker.call(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Err::<(), _>("late")
    });
    let (late, ()) = tokio::join!(slow, fail(&breaker));
    assert!(late.is_err());
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        breaker.state(),
        CircuitState::HalfOpen,
        "10 s after opening"
    );
}

#[tokio::test(start_paused = true)]
async fn any_failed_probe_reopens_and_the_timer_restarts() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    fail(&breaker).await;
    advance(Duration::from_secs(10)).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    advance(Duration::from_secs(10) - NS).await;
    assert_eq!(
        is_rejected(&breaker).await,
        Some(RejectionReason::CircuitOpen)
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_at_most_max_calls_and_releases_slots() {
    // c-breaker never released probe slots (3 admitted, then rejected for ever).
    let breaker = CircuitBreaker::builder("probes")
        .failure_threshold(1)
        .half_open_max_calls(3)
        .success_threshold(5)
        .build()
        .unwrap();
    breaker.trip();
    advance(Duration::from_secs(60)).await;
    let permits: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    let rejection = breaker.try_acquire().unwrap_err();
    assert_eq!(rejection.reason(), RejectionReason::HalfOpenFull);
    assert_eq!(breaker.metrics().half_open_calls, 3);
    let mut permits = permits.into_iter();
    permits.next().unwrap().success();
    let again = breaker
        .try_acquire()
        .expect("a finished probe frees its slot");
    assert_eq!(again.admitted_in(), CircuitState::HalfOpen);
    drop(permits);
    drop(again);
    assert_eq!(breaker.metrics().half_open_calls, 0);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn an_ignored_error_never_leaves_the_breaker_stuck_half_open() {
    #[derive(Debug, PartialEq)]
    enum Failure {
        NotFound,
        Down,
    }
    let classifier = Classifier::<(), Failure>::new().ignore_if(|e| *e == Failure::NotFound);
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    breaker.trip();
    advance(Duration::from_secs(10)).await;
    for _ in 0..3 {
        let result = breaker
            .call_with(&classifier, || async { Err(Failure::NotFound) })
            .await;
        assert!(matches!(result, Err(Error::Inner(Failure::NotFound))));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
    }
    breaker
        .call_with(&classifier, || async { Ok(()) })
        .await
        .unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
    let result = breaker
        .call_with(&classifier, || async { Err(Failure::Down) })
        .await;
    assert!(matches!(result, Err(Error::Inner(Failure::Down))));
    assert_eq!(breaker.state(), CircuitState::Open);
    let metrics = breaker.metrics();
    assert_eq!(metrics.ignored_requests, 3);
    assert_eq!(metrics.total_requests, 2);
}

#[tokio::test(start_paused = true)]
async fn failure_predicate_counts_only_matching_errors() {
    let classifier = Classifier::<(), u16>::new().failure_if(|status| *status >= 500);
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 2 });
    for status in [404, 404, 503, 409, 503] {
        let _ = breaker
            .call_with(&classifier, || async move { Err(status) })
            .await;
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    let result_based = Classifier::<u16, ()>::new().failure_on_result(|status| *status >= 500);
    let breaker = breaker_with_rate(1.0);
    for _ in 0..5 {
        let _ = breaker.call_with(&result_based, || async { Ok(502) }).await;
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "5xx results are failures"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_cancels_and_counts_as_failure() {
    let dropped = Arc::new(AtomicU32::new(0));
    struct Flag(Arc<AtomicU32>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let breaker = CircuitBreaker::builder("slow")
        .failure_threshold(1)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let flag = Flag(Arc::clone(&dropped));
    let started = Instant::now();
    let result = breaker
        .call(|| async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, ()>(())
        })
        .await;
    assert!(
        matches!(result, Err(Error::Timeout { limit, .. }) if limit == Duration::from_millis(100))
    );
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the work was cancelled");
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn manual_controls() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    let recorder = EventRecorder::attach(breaker.events());

    breaker.force_open();
    assert_eq!(
        is_rejected(&breaker).await,
        Some(RejectionReason::CircuitForcedOpen)
    );
    advance(Duration::from_secs(3600)).await;
    assert_eq!(
        breaker.state(),
        CircuitState::ForcedOpen,
        "only reset closes it"
    );

    breaker.disable();
    for _ in 0..10 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), CircuitState::Disabled);
    assert_eq!(breaker.metrics().failed_requests, 10, "metrics still kept");

    breaker.reset();
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, CircuitState::Closed);
    assert_eq!(metrics.failed_requests, 0);

    breaker.trip();
    assert_eq!(
        is_rejected(&breaker).await,
        Some(RejectionReason::CircuitOpen)
    );
    assert_eq!(
        recorder.names(),
        [
            "state_change",
            "call_rejected",
            "state_change",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "call_failure",
            "state_change",
            "circuit_closed",
            "circuit_reset",
            "state_change",
            "circuit_opened",
            "call_rejected",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn permits_report_outcomes_and_release_on_drop() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 2 });
    breaker.try_acquire().unwrap().failure();
    drop(breaker.try_acquire().unwrap()); // abandoned: ignored
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    let metrics = breaker.metrics();
    assert_eq!((metrics.failed_requests, metrics.ignored_requests), (2, 1));
}

/// Owned probe permits moved into tasks that are aborted (and one that outlives every
/// handle): each probe slot comes back exactly once, counted as ignored.
#[tokio::test(start_paused = true)]
async fn owned_probe_permits_in_aborted_tasks_give_their_slots_back() {
    let breaker = CircuitBreaker::builder("owned")
        .failure_threshold(1)
        .half_open_max_calls(3)
        .success_threshold(5)
        .build()
        .unwrap();
    breaker.trip();
    advance(Duration::from_secs(60)).await;
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let permit = breaker.try_acquire_owned().unwrap();
            assert_eq!(permit.admitted_in(), CircuitState::HalfOpen);
            tokio::spawn(async move {
                std::future::pending::<()>().await;
                permit.success();
            })
        })
        .collect();
    assert_eq!(
        breaker.try_acquire().unwrap_err().reason(),
        RejectionReason::HalfOpenFull
    );
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(breaker.metrics().half_open_calls, 0);
    let outlives = breaker.clone().try_acquire_owned().unwrap();
    let metrics = breaker.metrics();
    drop(breaker);
    drop(outlives);
    assert_eq!((metrics.ignored_requests, metrics.half_open_calls), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn blocking_calls_and_fallbacks() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    assert_eq!(breaker.call_blocking(|| Ok::<_, ()>(7)).unwrap(), 7);
    assert!(breaker.call_blocking(|| Err::<(), _>(())).is_err());
    assert!(breaker
        .call_blocking(|| Ok::<_, ()>(()))
        .unwrap_err()
        .is_rejected());

    let answer = breaker
        .call_or_fallback(
            || async { Ok::<_, &str>("live") },
            |rejection| async move {
                assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
                Ok("cached")
            },
        )
        .await;
    assert_eq!(answer.unwrap(), "cached");

    let failed = breaker
        .call_or_fallback(
            || async { Ok::<_, &str>("live") },
            |_| async { Err("cache down") },
        )
        .await
        .unwrap_err();
    match failed {
        Error::FallbackFailed { primary, fallback } => {
            assert!(primary.is_rejected());
            assert_eq!(fallback, "cache down");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_use_the_seed_names_and_add_up() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 3 });
    succeed(&breaker).await;
    succeed(&breaker).await;
    fail(&breaker).await;
    let metrics = breaker.metrics();
    assert_eq!(metrics.name, "dependency");
    assert_eq!(metrics.total_requests, 3);
    assert_eq!(metrics.successful_requests, 2);
    assert_eq!(metrics.failed_requests, 1);
    assert!((metrics.failure_rate - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(metrics.consecutive_failures, 1);
    assert_eq!(metrics.consecutive_successes, 0);
    advance(Duration::from_secs(2)).await;
    assert_eq!(
        breaker.metrics().time_since_last_failure,
        Some(Duration::from_secs(2))
    );
}

#[tokio::test(start_paused = true)]
async fn reconfiguration_keeps_state_and_listeners() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 5 });
    let recorder = EventRecorder::attach(breaker.events());
    fail(&breaker).await;
    let mut config = breaker.config();
    config.success_threshold = 3;
    breaker.set_config(config.clone()).unwrap();
    assert_eq!(breaker.config(), config);
    assert_eq!(breaker.metrics().failed_requests, 1);
    let invalid = CircuitBreakerConfig {
        half_open_max_calls: 0,
        ..config
    };
    assert_eq!(
        breaker.set_config(invalid).unwrap_err().field(),
        "half_open_max_calls"
    );
    fail(&breaker).await;
    assert_eq!(recorder.names(), ["call_failure", "call_failure"]);
}

#[test]
fn builder_rejects_invalid_settings_naming_the_field() {
    let field = |builder: resilience::circuit_breaker::CircuitBreakerBuilder| {
        builder.build().unwrap_err().field()
    };
    assert_eq!(field(CircuitBreaker::builder("  ")), "name");
    assert_eq!(
        field(CircuitBreaker::builder("x").failure_threshold(0)),
        "failure_threshold"
    );
    assert_eq!(
        field(CircuitBreaker::builder("x").open_duration(Duration::ZERO)),
        "open_duration"
    );
    assert_eq!(
        field(CircuitBreaker::builder("x").success_threshold(0)),
        "success_threshold"
    );
    assert_eq!(
        field(CircuitBreaker::builder("x").half_open_max_calls(0)),
        "half_open_max_calls"
    );
    assert_eq!(
        field(CircuitBreaker::builder("x").timeout(Duration::ZERO)),
        "timeout"
    );
    assert_eq!(
        field(CircuitBreaker::builder("x").open_duration_backoff(0.5, Duration::from_secs(600))),
        "open_duration_multiplier"
    );
    let name = CircuitBreaker::builder("  padded  ").build().unwrap();
    assert_eq!(name.name(), "padded", "names are trimmed as in the seed");
}

#[cfg(feature = "serde")]
#[test]
fn configs_deserialize_with_human_durations() {
    let config: CircuitBreakerConfig = serde_json::from_str(
        r#"{
            "open_duration": "30s",
            "timeout": "250ms",
            "success_threshold": 3,
            "detector": {"type": "failure_rate", "window": {"time": "1m"}, "threshold": 0.25, "min_calls": 20}
        }"#,
    )
    .unwrap();
    assert_eq!(config.open_duration, Duration::from_secs(30));
    assert_eq!(config.timeout, Some(Duration::from_millis(250)));
    assert_eq!(config.half_open_max_calls, 1, "unset fields keep defaults");
    assert_eq!(
        config.detector,
        DetectorConfig::FailureRate {
            window: Window::Time(Duration::from_secs(60)),
            threshold: 0.25,
            min_calls: 20
        }
    );
    let typo = serde_json::from_str::<CircuitBreakerConfig>(r#"{"open_duraton": "30s"}"#);
    assert!(typo.is_err(), "unknown fields are rejected, not ignored");
    let invalid: CircuitBreakerConfig =
        serde_json::from_str(r#"{"success_threshold": 0}"#).unwrap();
    assert!(CircuitBreaker::from_config("x", invalid).is_err());
}

#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn metrics_serialize_with_the_seed_keys() {
    let breaker = breaker(DetectorConfig::ConsecutiveFailures { threshold: 1 });
    fail(&breaker).await;
    let json = serde_json::to_value(breaker.metrics()).unwrap();
    for key in [
        "name",
        "state",
        "total_requests",
        "successful_requests",
        "failed_requests",
        "failure_rate",
        "consecutive_failures",
        "consecutive_successes",
        "time_since_last_failure",
        "remaining_open_time",
        "half_open_calls",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["state"], "open");
    assert_eq!(json["remaining_open_time"], 10.0);
}
