//! Timeout and deadline behaviour through the public API, under paused time.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::registry::{Registry, RegistryError};
use resilience::timeout::{Deadline, Timeout, TimeoutConfig, TimeoutEvent};
use resilience::{Error, PatternKind, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::time::{sleep, Instant};

const MS: Duration = Duration::from_millis(1);
const NS: Duration = Duration::from_nanos(1);

fn timeout(limit: Duration) -> Timeout {
    Timeout::builder("test").limit(limit).build().unwrap()
}

/// An operation that sleeps `duration`, then succeeds with it.
async fn sleeper(duration: Duration) -> Result<Duration, io::Error> {
    sleep(duration).await;
    Ok(duration)
}

/// Sets its flag when dropped: proves that a future was dropped, i.e. cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An operation that never finishes and sets `dropped` when its future is dropped.
fn endless(dropped: &Arc<AtomicBool>) -> impl std::future::Future<Output = Result<(), io::Error>> {
    let guard = DropFlag(Arc::clone(dropped));
    async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn finishing_at_the_limit_succeeds_and_one_nanosecond_later_times_out() {
    let timeout = timeout(100 * MS);

    // Exactly at the limit: the operation is polled before the timer, so it wins.
    assert_eq!(timeout.call(|| sleeper(100 * MS)).await.unwrap(), 100 * MS);
    assert_eq!(
        timeout.call(|| sleeper(100 * MS - NS)).await.unwrap(),
        100 * MS - NS
    );

    // One nanosecond past the limit: cancelled at the limit, not later.
    let started = Instant::now();
    match timeout.call(|| sleeper(100 * MS + NS)).await {
        Err(Error::Timeout { elapsed, limit }) => {
            assert_eq!(limit, 100 * MS);
            assert_eq!(elapsed, 100 * MS);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(started.elapsed(), 100 * MS);

    let metrics = timeout.metrics();
    assert_eq!(metrics.successful_executions, 2);
    assert_eq!(metrics.timed_out_executions, 1);
}

#[tokio::test(start_paused = true)]
async fn the_operations_own_timeout_error_is_a_failure_not_a_timeout() {
    let timeout = timeout(MS * 100);
    let result = timeout
        .call(|| async {
            sleep(10 * MS).await;
            Err::<(), _>(io::Error::new(
                io::ErrorKind::TimedOut,
                "upstream timed out",
            ))
        })
        .await;
    match result {
        Err(Error::Inner(error)) => assert_eq!(error.kind(), io::ErrorKind::TimedOut),
        other => panic!("expected the operation's own error, got {other:?}"),
    }
    let metrics = timeout.metrics();
    assert_eq!(metrics.failed_executions, 1);
    assert_eq!(metrics.timed_out_executions, 0);
    assert_eq!(metrics.total_executions, 1);
    assert_eq!(metrics.timeout_rate, 0.0);
}

#[tokio::test(start_paused = true)]
async fn an_inner_patterns_timeout_passes_through_execute_untouched() {
    let outer = Timeout::builder("outer").limit(5000 * MS).build().unwrap();
    let inner = Timeout::builder("inner").limit(10 * MS).build().unwrap();
    let result = outer.execute(|| inner.call(|| sleeper(1000 * MS))).await;
    assert!(matches!(result, Err(Error::Timeout { limit, .. }) if limit == 10 * MS));
    assert_eq!(inner.metrics().timed_out_executions, 1);
    let outer = outer.metrics();
    assert_eq!(
        (outer.failed_executions, outer.timed_out_executions),
        (1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_have_the_seeds_keys_and_meanings() {
    let timeout = timeout(100 * MS);
    for _ in 0..3 {
        timeout.call(|| sleeper(50 * MS)).await.unwrap();
    }
    let metrics = timeout.metrics();
    assert_eq!(metrics.total_executions, 3);
    assert_eq!(metrics.average_execution_time, 50 * MS);

    let _ = timeout
        .call(|| async { Err::<(), _>(io::Error::other("no")) })
        .await;
    let _ = timeout.call(|| sleeper(1000 * MS)).await;
    let metrics = timeout.metrics();
    assert_eq!(metrics.name, "test");
    assert_eq!(metrics.limit, 100 * MS);
    assert_eq!(metrics.total_executions, 5);
    assert_eq!(metrics.successful_executions, 3);
    assert_eq!(metrics.failed_executions, 1);
    assert_eq!(metrics.timed_out_executions, 1);
    assert_eq!(metrics.rejected_executions, 0);
    assert_eq!(metrics.total_execution_time, 250 * MS);
    assert_eq!(metrics.average_execution_time, 50 * MS);
    assert_eq!(metrics.timeout_rate, 0.2);

    timeout.reset_metrics();
    let reset = timeout.metrics();
    assert_eq!((reset.total_executions, reset.timeout_rate), (0, 0.0));
    assert_eq!(reset.average_execution_time, Duration::ZERO);
}

#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn metrics_serialize_with_the_seeds_keys_and_seconds() {
    let timeout = timeout(100 * MS);
    timeout.call(|| sleeper(50 * MS)).await.unwrap();
    let json = serde_json::to_value(timeout.metrics()).unwrap();
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
            "average_execution_time",
            "failed_executions",
            "limit",
            "name",
            "rejected_executions",
            "successful_executions",
            "timed_out_executions",
            "timeout_rate",
            "total_execution_time",
            "total_executions",
        ]
    );
    assert_eq!(json["limit"], 0.1);
    assert_eq!(json["average_execution_time"], 0.05);
}

#[tokio::test(start_paused = true)]
async fn events_come_in_order_with_their_fields() {
    let timeout = timeout(100 * MS);
    let recorder = EventRecorder::attach(timeout.events());

    timeout.call(|| sleeper(30 * MS)).await.unwrap();
    let _ = timeout
        .call(|| async { Err::<(), _>(io::Error::other("own")) })
        .await;
    let _ = timeout.call(|| sleeper(1000 * MS)).await;

    assert_eq!(
        recorder.names(),
        ["timeout_success", "timeout_success", "timeout_exceeded"]
    );
    let payloads: Vec<_> = recorder
        .events()
        .iter()
        .map(|event| event.payload::<TimeoutEvent>().cloned().unwrap())
        .collect();
    assert_eq!(
        payloads[0],
        TimeoutEvent::TimeoutSuccess {
            elapsed: 30 * MS,
            limit: 100 * MS
        }
    );
    assert_eq!(
        payloads[2],
        TimeoutEvent::TimeoutExceeded { limit: 100 * MS }
    );
    assert_eq!(recorder.events()[2].metadata()["limit"], "0.1");
    assert!(recorder
        .events()
        .iter()
        .all(|event| event.pattern() == PatternKind::Timeout));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_is_shared_by_sequential_calls_and_the_fourth_never_runs() {
    let timeout = timeout(1000 * MS);
    let deadline = Deadline::after(100 * MS).named("request");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ran = Arc::new(AtomicUsize::new(0));

    let results = deadline
        .scope(async {
            let mut results = Vec::new();
            for _ in 0..4 {
                let result = timeout
                    .call(|| {
                        ran.fetch_add(1, Ordering::SeqCst);
                        let seen = Arc::clone(&seen);
                        async move {
                            let remaining = Deadline::current().unwrap().remaining();
                            seen.lock().unwrap().push(remaining);
                            sleeper(40 * MS).await
                        }
                    })
                    .await;
                results.push(result);
            }
            results
        })
        .await;

    // Each call got only what the earlier ones left.
    assert_eq!(*seen.lock().unwrap(), [100 * MS, 60 * MS, 20 * MS]);
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(matches!(
        results[2],
        Err(Error::Timeout { elapsed, limit }) if limit == 20 * MS && elapsed == 20 * MS
    ));
    // The fourth starts exactly at the deadline: rejected, and its operation never called.
    let rejection = results[3].as_ref().unwrap_err().rejection().unwrap();
    assert_eq!(rejection.pattern(), PatternKind::Deadline);
    assert_eq!(rejection.reason(), RejectionReason::DeadlineExpired);
    assert_eq!(rejection.name(), "request");
    assert_eq!(rejection.retry_after(), None);
    assert_eq!(ran.load(Ordering::SeqCst), 3);

    let metrics = timeout.metrics();
    assert_eq!(metrics.total_executions, 3);
    assert_eq!(metrics.timed_out_executions, 1);
    assert_eq!(metrics.rejected_executions, 1);
}

#[tokio::test(start_paused = true)]
async fn deadline_run_cancels_at_the_deadline_and_rejects_after_it() {
    let deadline = Deadline::after(100 * MS);
    assert_eq!(deadline.remaining(), 100 * MS);
    assert!(!deadline.is_expired());
    assert_eq!(deadline.name(), "deadline");

    assert!(deadline.run(sleeper(60 * MS)).await.is_ok());
    assert_eq!(deadline.remaining(), 40 * MS);
    match deadline.run(sleeper(60 * MS)).await {
        Err(Error::Timeout { elapsed, limit }) => assert_eq!((elapsed, limit), (40 * MS, 40 * MS)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(deadline.is_expired());
    assert_eq!(deadline.remaining(), Duration::ZERO);

    let polled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&polled);
    let result = deadline
        .run(async move {
            flag.store(true, Ordering::SeqCst);
            Ok::<_, io::Error>(())
        })
        .await;
    assert!(result.unwrap_err().is_rejected());
    assert!(!polled.load(Ordering::SeqCst), "the operation must not run");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_at_an_instant_expires_at_that_instant() {
    let at = Instant::now() + 10 * MS;
    let deadline = Deadline::at(at);
    assert_eq!(deadline.instant(), at);
    tokio::time::advance(10 * MS - NS).await;
    assert!(!deadline.is_expired());
    tokio::time::advance(NS).await;
    assert!(deadline.is_expired());
    assert!(deadline.run(sleeper(MS)).await.unwrap_err().is_rejected());
}

#[tokio::test(start_paused = true)]
async fn a_nested_deadline_bounds_an_inner_timeout_with_a_longer_limit() {
    let inner = timeout(10_000 * MS);
    let outer = Deadline::after(50 * MS).named("outer");
    let started = Instant::now();
    let result = outer.scope(inner.call(|| sleeper(1000 * MS))).await;
    assert!(matches!(
        result,
        Err(Error::Timeout { elapsed, limit }) if limit == 50 * MS && elapsed == 50 * MS
    ));
    assert_eq!(started.elapsed(), 50 * MS);
    assert_eq!(inner.metrics().timed_out_executions, 1);
}

#[tokio::test(start_paused = true)]
async fn nested_scopes_take_the_earlier_deadline() {
    let outer = Deadline::after(50 * MS).named("outer");
    let later = Deadline::after(1000 * MS).named("later");
    let sooner = Deadline::after(20 * MS).named("sooner");
    assert!(Deadline::current().is_none());

    outer
        .scope(async {
            assert_eq!(Deadline::current().unwrap().name(), "outer");
            later
                .scope(async {
                    assert_eq!(Deadline::current().unwrap().name(), "outer");
                })
                .await;
            sooner
                .scope(async {
                    assert_eq!(Deadline::current().unwrap().name(), "sooner");
                })
                .await;
            // A later deadline's run is still cancelled at the outer one.
            let error = later.run(sleeper(1000 * MS)).await.unwrap_err();
            assert!(matches!(error, Error::Timeout { limit, .. } if limit == 50 * MS));
            // And once the outer one has passed, the rejection names it.
            let error = later.run(sleeper(MS)).await.unwrap_err();
            assert_eq!(error.rejection().unwrap().name(), "outer");
        })
        .await;
    assert!(Deadline::current().is_none());
}

/// A deadline's run is the current deadline of everything inside it, exactly as a scope of
/// it would be: for `Deadline::current`, nested timeouts, scopes and runs, and rejections.
#[tokio::test(start_paused = true)]
async fn a_deadlines_run_bounds_everything_nested_in_it() {
    let outer = Deadline::after(Duration::from_nanos(50_000_001)).named("outer");
    let current = || {
        let deadline = Deadline::current().unwrap();
        (deadline.name().to_owned(), deadline.instant())
    };
    let outer_seen = ("outer".to_owned(), outer.instant());
    let long = timeout(10_000 * MS);
    let short = Timeout::builder("short").limit(10 * MS).build().unwrap();
    let result = outer
        .run(async {
            assert_eq!(current(), outer_seen);
            // A longer limit is cut at the run's deadline, which stays current.
            let seen = long.call(|| async { Ok::<_, io::Error>(current()) }).await;
            assert_eq!(seen.unwrap(), outer_seen);
            // A shorter one is current inside its own call only.
            let seen = short
                .call(|| async { Ok::<_, io::Error>(current().0) })
                .await;
            assert_eq!(seen.unwrap(), "short");
            assert_eq!(current(), outer_seen);
            // Later scopes and runs leave it current; earlier ones take over, then give back.
            let later = Deadline::after(1000 * MS).named("later");
            assert_eq!(later.scope(async { current() }).await, outer_seen);
            let seen = later.run(async { Ok::<_, io::Error>(current()) }).await;
            assert_eq!(seen.unwrap(), outer_seen);
            let sooner = Deadline::after(20 * MS).named("sooner");
            let seen = sooner.run(async { Ok::<_, io::Error>(current().0) }).await;
            assert_eq!(seen.unwrap(), "sooner");
            assert_eq!(sooner.scope(async { current().0 }).await, "sooner");
            assert_eq!(current(), outer_seen);
            // A nested call with more time than the run has left is cancelled with it.
            let error = long.call(|| sleeper(1000 * MS)).await.unwrap_err();
            assert!(matches!(
                error,
                Error::Timeout { limit, .. } if limit == Duration::from_nanos(50_000_001)
            ));
            Ok::<_, io::Error>(())
        })
        .await;
    assert!(result.is_ok());
    assert!(Deadline::current().is_none());

    // Once the run's deadline has passed, what starts inside it is rejected in its name.
    let outer = Deadline::after(10 * MS).named("outer");
    let result = outer
        .run(async {
            tokio::time::advance(10 * MS).await;
            let error = long.call(|| sleeper(MS)).await.unwrap_err();
            Ok::<_, io::Error>(error.rejection().unwrap().name().to_owned())
        })
        .await;
    assert_eq!(result.unwrap(), "outer");
    assert_eq!(long.metrics().rejected_executions, 1);
}

#[tokio::test(start_paused = true)]
async fn a_scope_built_outside_still_honours_the_enclosing_deadline() {
    let timeout = timeout(10_000 * MS);
    // Built before the outer scope exists, awaited inside it.
    let work = Deadline::after(5000 * MS).scope(timeout.call(|| sleeper(1000 * MS)));
    let result = Deadline::after(30 * MS).scope(work).await;
    assert!(matches!(result, Err(Error::Timeout { limit, .. }) if limit == 30 * MS));
}

#[tokio::test(start_paused = true)]
async fn inside_a_call_the_current_deadline_is_its_cancellation_point() {
    let timeout = Timeout::builder("lookup").limit(80 * MS).build().unwrap();
    let (name, remaining) = timeout
        .call(|| async {
            let current = Deadline::current().unwrap();
            Ok::<_, io::Error>((current.name().to_owned(), current.remaining()))
        })
        .await
        .unwrap();
    assert_eq!((name.as_str(), remaining), ("lookup", 80 * MS));
}

#[tokio::test(start_paused = true)]
async fn the_current_deadline_is_exact_to_the_nanosecond() {
    let deadline = Deadline::after(Duration::from_nanos(1_234_567_891));
    let seen = deadline
        .scope(async { Deadline::current().unwrap().instant() })
        .await;
    assert_eq!(seen, deadline.instant());

    // A timeout inside, with the shorter limit: its own cancellation point, from its start.
    let timeout = timeout(Duration::from_nanos(987_654_321));
    tokio::time::advance(Duration::from_nanos(3)).await;
    let started = Instant::now();
    let seen = deadline
        .scope(
            timeout.call(|| async { Ok::<_, io::Error>(Deadline::current().unwrap().instant()) }),
        )
        .await
        .unwrap();
    assert_eq!(seen, started + Duration::from_nanos(987_654_321));

    // A deadline set in the past is expired, and a scope of it makes it current unchanged.
    let past = Deadline::at(started - Duration::from_secs(60));
    let seen = past
        .scope(async { Deadline::current().unwrap().instant() })
        .await;
    assert_eq!(seen, past.instant());
    let error = past
        .run(async { Ok::<_, io::Error>(()) })
        .await
        .unwrap_err();
    assert!(error.is_rejected());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_operation_is_dropped_by_the_time_the_error_returns() {
    let timeout = timeout(10 * MS);
    let dropped = Arc::new(AtomicBool::new(false));
    let error = timeout.call(|| endless(&dropped)).await.unwrap_err();
    assert!(error.is_timeout());
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_drops_the_operation_and_counts_nothing() {
    let timeout = timeout(1000 * MS);
    let dropped = Arc::new(AtomicBool::new(false));
    let call = timeout.call(|| endless(&dropped));
    // The caller gives up first (an outer cancellation): the whole call future is dropped.
    assert!(tokio::time::timeout(5 * MS, call).await.is_err());
    assert!(dropped.load(Ordering::SeqCst));
    let metrics = timeout.metrics();
    assert_eq!(
        (metrics.total_executions, metrics.timed_out_executions),
        (0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn config_errors_name_the_field() {
    let zero = Timeout::builder("t")
        .limit(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(zero.field(), "limit");
    assert_eq!(Timeout::new(Duration::ZERO).unwrap_err().field(), "limit");
    let huge = Timeout::from_config("t", TimeoutConfig::with_limit(Duration::MAX)).unwrap_err();
    assert_eq!(huge.field(), "limit");
    assert_eq!(Timeout::builder("  ").build().unwrap_err().field(), "name");

    let timeout = Timeout::new(2 * MS).unwrap();
    assert_eq!(timeout.name(), "timeout");
    assert_eq!(
        timeout
            .set_config(TimeoutConfig::with_limit(Duration::ZERO))
            .unwrap_err()
            .field(),
        "limit"
    );
    assert_eq!(timeout.limit(), 2 * MS, "an invalid config changes nothing");
    timeout
        .set_config(TimeoutConfig::with_limit(7 * MS))
        .unwrap();
    assert_eq!(timeout.config(), TimeoutConfig::with_limit(7 * MS));
}

#[tokio::test(start_paused = true)]
async fn a_new_limit_applies_to_the_next_call() {
    let timeout = timeout(10 * MS);
    let clone = timeout.clone();
    clone
        .set_config(TimeoutConfig::with_limit(50 * MS))
        .unwrap();
    assert!(timeout.call(|| sleeper(30 * MS)).await.is_ok());
    assert_eq!(
        timeout.metrics().successful_executions,
        1,
        "clones share state"
    );
}

#[cfg(feature = "serde")]
#[test]
fn config_deserializes_with_human_durations() {
    let parse = |json: &str| serde_json::from_str::<TimeoutConfig>(json);
    assert_eq!(parse(r#"{"limit": "250ms"}"#).unwrap().limit, 250 * MS);
    assert_eq!(
        parse(r#"{"timeout": "1m 30s"}"#).unwrap().limit,
        Duration::from_secs(90)
    );
    assert_eq!(parse("{}").unwrap(), TimeoutConfig::default());
    assert!(parse(r#"{"limit": "soon"}"#).is_err());
    assert!(
        parse(r#"{"limt": "1s"}"#).is_err(),
        "unknown fields are refused"
    );
    let zero = parse(r#"{"limit": "0s"}"#).unwrap();
    assert_eq!(
        Timeout::from_config("t", zero).unwrap_err().field(),
        "limit"
    );
}

#[test]
fn a_registry_shares_instances_and_refuses_a_different_config() {
    let registry = Registry::<Timeout>::new();
    let config = TimeoutConfig::with_limit(Duration::from_secs(2));
    let a = registry.get_or_create("search", config).unwrap();
    let b = registry.get_or_create("search", config).unwrap();
    b.set_config(TimeoutConfig::with_limit(Duration::from_secs(3)))
        .unwrap();
    assert_eq!(
        a.limit(),
        Duration::from_secs(3),
        "same name, same instance"
    );
    assert!(matches!(
        registry.get_or_create("search", TimeoutConfig::default()),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    assert_eq!(registry.metrics()["search"].limit, Duration::from_secs(3));
}

#[cfg(feature = "tower")]
mod tower_layer {
    use super::*;
    use resilience::timeout::TimeoutLayer;
    use resilience_testkit::{Flaky, FlakyError};
    use tower::{Layer, ServiceExt};

    #[tokio::test(start_paused = true)]
    async fn a_response_within_the_limit_passes_and_a_slow_one_is_cut_off() {
        let flaky = Flaky::builder().latency(50 * MS).build();
        let timeout = timeout(100 * MS);
        let service = TimeoutLayer::new(timeout.clone()).layer(flaky.clone());

        assert_eq!(service.clone().oneshot("fast").await.unwrap(), "fast");

        flaky.set_latency(100 * MS);
        assert_eq!(
            service.clone().oneshot("at the limit").await.unwrap(),
            "at the limit"
        );

        flaky.set_latency(200 * MS);
        let started = Instant::now();
        match service.clone().oneshot("slow").await {
            Err(Error::Timeout { elapsed, limit }) => {
                assert_eq!((elapsed, limit), (100 * MS, 100 * MS))
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(started.elapsed(), 100 * MS);
        // The cancelled call started but never finished: its future was dropped.
        assert_eq!((flaky.calls(), flaky.successes()), (3, 2));

        let metrics = timeout.metrics();
        assert_eq!(
            (metrics.successful_executions, metrics.timed_out_executions),
            (2, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_inner_services_errors_are_failures_not_timeouts() {
        let flaky = Flaky::builder().fail_first(1).latency(10 * MS).build();
        let timeout = timeout(100 * MS);
        let service = TimeoutLayer::new(timeout.clone()).layer(flaky);
        match service.oneshot(()).await {
            Err(Error::Inner(error)) => assert_eq!(error, FlakyError::new(1)),
            other => panic!("expected the inner error, got {other:?}"),
        }
        let metrics = timeout.metrics();
        assert_eq!(
            (metrics.failed_executions, metrics.timed_out_executions),
            (1, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_honours_the_callers_deadline() {
        let flaky = Flaky::builder().latency(50 * MS).build();
        let timeout = timeout(100 * MS);
        let service = TimeoutLayer::new(timeout.clone()).layer(flaky.clone());

        let deadline = Deadline::after(30 * MS).named("request");
        let result = deadline.scope(service.clone().oneshot(1)).await;
        assert!(matches!(result, Err(Error::Timeout { limit, .. }) if limit == 30 * MS));

        // The deadline has passed: the request never reaches the upstream.
        let calls = flaky.calls();
        let result = deadline.scope(service.oneshot(2)).await;
        let rejection = result.unwrap_err().rejection().cloned().unwrap();
        assert_eq!(
            (rejection.pattern(), rejection.name()),
            (PatternKind::Deadline, "request")
        );
        assert_eq!(flaky.calls(), calls);
        assert_eq!(timeout.metrics().rejected_executions, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_inner_service_sees_the_requests_deadline() {
        let timeout = Timeout::builder("edge").limit(80 * MS).build().unwrap();
        let inner = tower::service_fn(|()| async {
            let current = Deadline::current().unwrap();
            Ok::<_, io::Error>((current.name().to_owned(), current.remaining()))
        });
        let (name, remaining) = TimeoutLayer::new(timeout)
            .layer(inner)
            .oneshot(())
            .await
            .unwrap();
        assert_eq!((name.as_str(), remaining), ("edge", 80 * MS));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_response_future_drops_the_inner_future() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let inner = tower::service_fn(move |()| endless(&flag));
        let service = TimeoutLayer::new(timeout(1000 * MS)).layer(inner);
        assert!(tokio::time::timeout(5 * MS, service.oneshot(()))
            .await
            .is_err());
        assert!(dropped.load(Ordering::SeqCst));
    }
}

#[tokio::test(start_paused = true)]
async fn the_operations_set_up_code_already_sees_the_deadline() {
    let timeout = Timeout::builder("setup").limit(40 * MS).build().unwrap();
    let seen = timeout
        .call(|| {
            // Runs before the operation's future exists.
            let remaining = Deadline::current().map(|deadline| deadline.remaining());
            async move { Ok::<_, io::Error>(remaining) }
        })
        .await
        .unwrap();
    assert_eq!(seen, Some(40 * MS));
}

#[tokio::test(start_paused = true)]
async fn a_panic_inside_a_scope_puts_the_enclosing_deadline_back() {
    use futures_util::FutureExt;

    let outer = Deadline::after(Duration::from_secs(10)).named("outer");
    let inner = Deadline::after(Duration::from_secs(1)).named("inner");
    let seen = outer
        .scope(async {
            let panicked = std::panic::AssertUnwindSafe(inner.scope(async {
                assert_eq!(Deadline::current().unwrap().name(), "inner");
                panic!("inside the inner scope");
            }))
            .catch_unwind()
            .await;
            assert!(panicked.is_err());
            Deadline::current().map(|deadline| deadline.name().to_owned())
        })
        .await;
    assert_eq!(seen.as_deref(), Some("outer"));
    assert!(
        Deadline::current().is_none(),
        "nothing current outside every scope"
    );
}

#[tokio::test(start_paused = true)]
async fn scopes_in_two_tasks_on_one_thread_never_see_each_other() {
    let first = Deadline::after(Duration::from_secs(1)).named("first");
    let second = Deadline::after(Duration::from_secs(2)).named("second");
    let name = || Deadline::current().map(|deadline| deadline.name().to_owned());
    let a = tokio::spawn(first.scope(async move {
        let before = name();
        tokio::task::yield_now().await;
        (before, name())
    }));
    let b = tokio::spawn(second.scope(async move {
        let before = name();
        tokio::task::yield_now().await;
        (before, name())
    }));
    let first_seen = Some("first".to_owned());
    let second_seen = Some("second".to_owned());
    assert_eq!(a.await.unwrap(), (first_seen.clone(), first_seen));
    assert_eq!(b.await.unwrap(), (second_seen.clone(), second_seen));
    assert!(name().is_none());
}

/// An operation that is never ready and uses up its task's budget at every poll (a busy
/// loop of ready I/O, say) still times out, as with `tokio::time::timeout`: its timer is
/// made on its first pending poll and then polled outside the budget. Real time: a paused
/// clock never advances while the task is always awake.
#[tokio::test]
async fn an_operation_that_uses_up_the_budget_still_times_out() {
    let limit = 20 * MS;
    let busy = || async {
        loop {
            tokio::task::consume_budget().await;
        }
    };
    let started = Instant::now();
    let outcome: Result<(), Error<io::Error>> = timeout(limit).call(busy).await;
    assert!(matches!(outcome, Err(Error::Timeout { limit: given, .. }) if given == limit));
    assert!(started.elapsed() >= limit);
    let deadline = Deadline::after(limit).run(busy()).await;
    assert!(matches!(deadline, Err(Error::Timeout { .. })));
}

/// A call's clock starts at its first poll, not when its future is made: the time before
/// counts neither against its limit nor in its execution time.
#[tokio::test(start_paused = true)]
async fn a_call_starts_at_its_first_poll() {
    let timeout = timeout(10 * MS);
    let ready = timeout.call(|| async { Ok::<_, io::Error>(1) });
    let pending = timeout.call(|| sleeper(MS));
    // Neither is polled before the limit has passed: their clocks start at the first poll.
    sleep(50 * MS).await;
    assert_eq!(ready.await.unwrap(), 1);
    assert_eq!(pending.await.unwrap(), MS);
    let metrics = timeout.metrics();
    assert_eq!(metrics.successful_executions, 2);
    assert_eq!(metrics.total_execution_time, MS);
}
