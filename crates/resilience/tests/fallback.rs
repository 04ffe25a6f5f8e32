//! Fallback behaviour through the public API, under paused time.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::fallback::{ErrorClass, Fallback, FallbackConfig, FallbackEvent};
use resilience::timeout::Timeout;
use resilience::{Error, PatternKind, RejectionReason};
use resilience_testkit::EventRecorder;

const MS: Duration = Duration::from_millis(1);

/// The operation's error in these tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiError {
    NotFound,
    Unavailable(&'static str),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

async fn ok(value: &'static str) -> Result<&'static str, ApiError> {
    Ok(value)
}

async fn down() -> Result<&'static str, ApiError> {
    Err(ApiError::Unavailable("db"))
}

#[tokio::test(start_paused = true)]
async fn a_static_value_answers_a_failure_and_success_leaves_it_unused() {
    let fallback = Fallback::builder("greeting")
        .value("hello from cache")
        .build()
        .unwrap();

    assert_eq!(fallback.call(|| ok("hello")).await.unwrap(), "hello");
    assert_eq!(fallback.call(down).await.unwrap(), "hello from cache");

    let metrics = fallback.metrics();
    assert_eq!(metrics.successful_executions, 1);
    assert_eq!(metrics.fallback_executions, 1);
    assert_eq!(metrics.total_executions, 2);
}

#[tokio::test(start_paused = true)]
async fn a_static_value_is_returned_never_called() {
    // A callable value (the seed would have called it, B15).
    type Callback = Arc<dyn Fn() -> u32 + Send + Sync>;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let value: Callback = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        7
    });
    let fallback = Fallback::<Callback, ApiError>::builder("callable")
        .value(value)
        .build()
        .unwrap();
    let answer = fallback
        .call(|| async { Err(ApiError::NotFound) })
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the value was called");
    assert_eq!(answer(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_closure_receives_the_primary_error() {
    let fallback = Fallback::builder("describe")
        .with(|error: &Error<ApiError>| match error {
            Error::Inner(ApiError::NotFound) => Ok("nothing here".to_owned()),
            other => Ok(format!("degraded: {other}")),
        })
        .build()
        .unwrap();
    let not_found = || async { Err(ApiError::NotFound) };
    assert_eq!(fallback.call(not_found).await.unwrap(), "nothing here");
    let unavailable = || async { Err(ApiError::Unavailable("db")) };
    assert_eq!(
        fallback.call(unavailable).await.unwrap(),
        "degraded: unavailable: db"
    );
}

#[tokio::test(start_paused = true)]
async fn an_async_closure_receives_the_error() {
    let fallback = Fallback::builder("backup")
        .with_async(|error: &Error<ApiError>| {
            let why = error.to_string();
            async move {
                tokio::time::sleep(20 * MS).await;
                Ok(format!("from backup after {why}"))
            }
        })
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let answer = fallback
        .call(|| async { Err(ApiError::Unavailable("primary")) })
        .await
        .unwrap();
    assert_eq!(answer, "from backup after unavailable: primary");
    assert_eq!(started.elapsed(), 20 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_chain_is_tried_in_order_and_the_first_success_wins() {
    let tried = Arc::new(Mutex::new(Vec::new()));
    let (first, second, fourth) = (Arc::clone(&tried), Arc::clone(&tried), Arc::clone(&tried));
    let fallback = Fallback::builder("tiers")
        .with(move |_: &Error<ApiError>| {
            first.lock().unwrap().push("cache");
            Err(ApiError::NotFound)
        })
        .with_async(move |_: &Error<ApiError>| {
            second.lock().unwrap().push("replica");
            async { Err(ApiError::Unavailable("replica")) }
        })
        .value("default")
        .with(move |_: &Error<ApiError>| {
            fourth.lock().unwrap().push("never");
            Ok("never")
        })
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(fallback.events());

    assert_eq!(fallback.len(), 4);
    assert_eq!(fallback.call(down).await.unwrap(), "default");
    assert_eq!(*tried.lock().unwrap(), ["cache", "replica"]);
    assert_eq!(
        recorder.events()[0].payload::<FallbackEvent>().cloned(),
        Some(FallbackEvent::FallbackTriggered {
            index: 2,
            error: "unavailable: db".into()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_fallback_fails_both_errors_are_kept() {
    let fallback = Fallback::builder("all-fail")
        .with(|_: &Error<ApiError>| Err::<&str, _>(ApiError::NotFound))
        .with_async(|_: &Error<ApiError>| async { Err(ApiError::Unavailable("backup")) })
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(fallback.events());

    match fallback.call(down).await {
        Err(Error::FallbackFailed { primary, fallback }) => {
            assert!(matches!(
                *primary,
                Error::Inner(ApiError::Unavailable("db"))
            ));
            assert_eq!(fallback, ApiError::Unavailable("backup"));
        }
        other => panic!("expected FallbackFailed, got {other:?}"),
    }
    assert_eq!(recorder.names(), ["fallback_failed"]);
    assert_eq!(
        recorder.events()[0].payload::<FallbackEvent>().cloned(),
        Some(FallbackEvent::FallbackFailed {
            tried: 2,
            error: "unavailable: backup".into()
        })
    );
    let metrics = fallback.metrics();
    assert_eq!(
        (metrics.failed_executions, metrics.fallback_executions),
        (1, 0)
    );
    assert_eq!(metrics.failure_rate, 1.0);
}

#[tokio::test(start_paused = true)]
async fn events_come_in_order_and_success_emits_nothing() {
    let attempt = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempt);
    let fallback = Fallback::builder("events")
        .with(move |_: &Error<ApiError>| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Ok("cached")
            } else {
                Err(ApiError::NotFound)
            }
        })
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(fallback.events());

    fallback.call(|| ok("fine")).await.unwrap();
    fallback.call(down).await.unwrap();
    fallback.call(down).await.unwrap_err();

    assert_eq!(recorder.names(), ["fallback_triggered", "fallback_failed"]);
    assert!(recorder
        .events()
        .iter()
        .all(|event| event.pattern() == PatternKind::Fallback && event.name() == "events"));
    assert_eq!(recorder.events()[0].metadata()["index"], "0");
}

#[tokio::test(start_paused = true)]
async fn errors_not_selected_pass_through_untouched() {
    let fallback = Fallback::builder("only-rejections")
        .fallback_on([ErrorClass::Rejected])
        .value("stale")
        .build()
        .unwrap();
    match fallback.call(down).await {
        Err(Error::Inner(error)) => assert_eq!(error, ApiError::Unavailable("db")),
        other => panic!("expected the operation's error untouched, got {other:?}"),
    }
    let metrics = fallback.metrics();
    assert_eq!(metrics.passed_through_executions, 1);
    assert_eq!(metrics.fallback_executions, 0);
    assert_eq!(metrics.total_executions, 1);
}

#[tokio::test(start_paused = true)]
async fn when_inner_selects_the_operations_own_errors_by_predicate() {
    let fallback = Fallback::builder("outages-only")
        .when_inner(|error: &ApiError| matches!(error, ApiError::Unavailable(_)))
        .value("cached")
        .build()
        .unwrap();
    assert_eq!(fallback.call(down).await.unwrap(), "cached");
    let not_found = fallback.call(|| async { Err(ApiError::NotFound) }).await;
    assert!(matches!(not_found, Err(Error::Inner(ApiError::NotFound))));

    // Not an `Inner` error at all: passed through as well.
    let timeout = Timeout::new(10 * MS).unwrap();
    let slow = || async {
        tokio::time::sleep(100 * MS).await;
        ok("late").await
    };
    let result = fallback.execute(|| timeout.call(slow)).await;
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(fallback.metrics().passed_through_executions, 2);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_can_fall_back() {
    let timeout = Timeout::new(10 * MS).unwrap();
    let fallback = Fallback::builder("slow-search")
        .fallback_on([ErrorClass::Timeout])
        .with(|error: &Error<ApiError>| match error {
            Error::Timeout { limit, .. } => Ok(format!("partial results after {limit:?}")),
            _ => Err(ApiError::NotFound),
        })
        .build()
        .unwrap();
    let slow = || async {
        tokio::time::sleep(100 * MS).await;
        Ok::<String, ApiError>("full results".to_owned())
    };
    let answer = fallback.execute(|| timeout.call(slow)).await.unwrap();
    assert_eq!(answer, "partial results after 10ms");
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_falls_back_without_calling_the_operation() {
    let breaker = CircuitBreaker::builder("payments").build().unwrap();
    breaker.force_open();
    let fallback = Fallback::builder("payments-fallback")
        .fallback_on([ErrorClass::Rejected])
        .with(|error: &Error<ApiError>| {
            let rejection = error.rejection().expect("only rejections are selected");
            assert_eq!(rejection.reason(), RejectionReason::CircuitForcedOpen);
            Ok("queued for later")
        })
        .build()
        .unwrap();
    let calls = AtomicUsize::new(0);
    let answer = fallback
        .execute(|| {
            breaker.call(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                ok("paid")
            })
        })
        .await
        .unwrap();
    assert_eq!(answer, "queued for later");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(breaker.metrics().rejected_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fallback_for_a_rejection_keeps_the_rejection() {
    let breaker = CircuitBreaker::builder("search").build().unwrap();
    breaker.force_open();
    let fallback = Fallback::builder("search-fallback")
        .with(|_: &Error<ApiError>| Err::<&str, _>(ApiError::NotFound))
        .build()
        .unwrap();
    match fallback.execute(|| breaker.call(|| ok("hits"))).await {
        Err(Error::FallbackFailed { primary, fallback }) => {
            assert_eq!(
                primary.rejection().map(|rejection| rejection.pattern()),
                Some(PatternKind::CircuitBreaker)
            );
            assert_eq!(fallback, ApiError::NotFound);
        }
        other => panic!("expected FallbackFailed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_predicate_never_reaches_the_caller() {
    let panics = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&panics);
    resilience::set_error_handler(move |panic| {
        if panic.name.as_ref() == "fragile" {
            sink.lock()
                .unwrap()
                .push((panic.pattern, panic.message.clone()));
        }
    });
    let fallback = Fallback::builder("fragile")
        .when(|_: &Error<ApiError>| panic!("predicate bug"))
        .value("never used")
        .build()
        .unwrap();
    let result = fallback.call(down).await;
    resilience::reset_error_handler();

    // The caller gets the true error, not a value chosen by a broken filter.
    assert!(matches!(
        result,
        Err(Error::Inner(ApiError::Unavailable("db")))
    ));
    assert_eq!(
        *panics.lock().unwrap(),
        [(PatternKind::Fallback, "predicate bug".to_owned())]
    );
    assert_eq!(fallback.metrics().passed_through_executions, 1);
}

#[tokio::test(start_paused = true)]
async fn metrics_have_the_seeds_keys_and_can_be_reset() {
    let fallback = Fallback::builder("metrics")
        .when_inner(|error: &ApiError| *error != ApiError::NotFound)
        .with(|error: &Error<ApiError>| match error {
            Error::Inner(ApiError::Unavailable("db")) => Ok("cached"),
            _ => Err(ApiError::Unavailable("cache")),
        })
        .build()
        .unwrap();
    fallback.call(|| ok("a")).await.unwrap();
    fallback.call(down).await.unwrap();
    fallback
        .call(|| async { Err(ApiError::Unavailable("other")) })
        .await
        .unwrap_err();
    fallback
        .call(|| async { Err(ApiError::NotFound) })
        .await
        .unwrap_err();

    let metrics = fallback.metrics();
    assert_eq!(metrics.name, "metrics");
    assert_eq!(metrics.total_executions, 4);
    assert_eq!(metrics.successful_executions, 1);
    assert_eq!(metrics.fallback_executions, 1);
    assert_eq!(metrics.failed_executions, 1);
    assert_eq!(metrics.passed_through_executions, 1);
    assert_eq!(metrics.fallback_rate, 0.25);
    assert_eq!(metrics.failure_rate, 0.25);

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
                "failed_executions",
                "failure_rate",
                "fallback_executions",
                "fallback_rate",
                "name",
                "passed_through_executions",
                "successful_executions",
                "total_executions",
            ]
        );
    }

    fallback.reset_metrics();
    let reset = fallback.metrics();
    assert_eq!((reset.total_executions, reset.fallback_rate), (0, 0.0));
}

#[test]
fn config_errors_name_the_field() {
    let no_fallbacks = Fallback::<u32, ApiError>::builder("empty")
        .build()
        .unwrap_err();
    assert_eq!(no_fallbacks.field(), "fallbacks");
    let nothing_selected = Fallback::<u32, ApiError>::builder("none")
        .fallback_on([])
        .value(1)
        .build()
        .unwrap_err();
    assert_eq!(nothing_selected.field(), "fallback_on");
    let unnamed = Fallback::<u32, ApiError>::builder(" ")
        .value(1)
        .build()
        .unwrap_err();
    assert_eq!(unnamed.field(), "name");

    let fallback = Fallback::<u32, ApiError>::builder("configured")
        .config(FallbackConfig {
            fallback_on: vec![ErrorClass::Timeout],
        })
        .value(1)
        .build()
        .unwrap();
    assert_eq!(fallback.config().fallback_on, [ErrorClass::Timeout]);
    assert!(format!("{fallback:?}").contains("configured"));
}

#[cfg(feature = "serde")]
#[test]
fn config_deserializes_error_classes() {
    let parse = |json: &str| serde_json::from_str::<FallbackConfig>(json);
    assert_eq!(
        parse(r#"{"fallback_on": ["rejected", "timeout"]}"#)
            .unwrap()
            .fallback_on,
        [ErrorClass::Rejected, ErrorClass::Timeout]
    );
    assert_eq!(parse("{}").unwrap(), FallbackConfig::default());
    assert!(parse(r#"{"fallback_on": ["rejection"]}"#).is_err());
    assert!(
        parse(r#"{"fallback": "x"}"#).is_err(),
        "unknown fields are refused"
    );
    let empty = parse(r#"{"fallback_on": []}"#).unwrap();
    assert_eq!(empty.validate().unwrap_err().field(), "fallback_on");
}

#[tokio::test(start_paused = true)]
async fn a_call_can_run_on_another_task() {
    let fallback = Fallback::builder("spawned")
        .with_async(|_: &Error<ApiError>| async { Ok("from another task") })
        .build()
        .unwrap();
    let handle = tokio::spawn(async move { fallback.call(down).await });
    assert_eq!(handle.await.unwrap().unwrap(), "from another task");
}

#[cfg(feature = "tower")]
mod tower_layer {
    use super::*;
    use resilience::fallback::FallbackLayer;
    use resilience_testkit::{Flaky, FlakyError};
    use tower::{Layer, ServiceExt};

    #[tokio::test(start_paused = true)]
    async fn failed_requests_are_answered_and_successes_pass() {
        let flaky = Flaky::builder().fail_first(1).latency(10 * MS).build();
        let fallback = Fallback::builder("echo")
            .with_async(|error: &Error<FlakyError>| {
                let call = error.inner().map_or(0, FlakyError::call);
                async move { Ok(format!("fallback for call {call}")) }
            })
            .build()
            .unwrap();
        let service = FallbackLayer::new(fallback.clone()).layer(flaky.clone());

        let first = service.clone().oneshot("request".to_owned()).await.unwrap();
        assert_eq!(first, "fallback for call 1");
        let second = service.oneshot("request".to_owned()).await.unwrap();
        assert_eq!(second, "request");

        let metrics = fallback.metrics();
        assert_eq!(
            (metrics.fallback_executions, metrics.successful_executions),
            (1, 1)
        );
        assert_eq!(flaky.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_not_selected_and_failed_fallbacks_come_back_typed() {
        let flaky = Flaky::builder().fail_first(2).build();
        let fallback = Fallback::<u32, FlakyError>::builder("picky")
            .when_inner(|error: &FlakyError| error.call() == 2)
            .with(|_: &Error<FlakyError>| Err(FlakyError::new(99)))
            .build()
            .unwrap();
        let service = FallbackLayer::new(fallback).layer(flaky);

        let first = service.clone().oneshot(7).await.unwrap_err();
        assert!(matches!(first, Error::Inner(error) if error == FlakyError::new(1)));
        match service.oneshot(7).await {
            Err(Error::FallbackFailed { primary, fallback }) => {
                assert_eq!(primary.inner(), Some(&FlakyError::new(2)));
                assert_eq!(fallback, FlakyError::new(99));
            }
            other => panic!("expected FallbackFailed, got {other:?}"),
        }
    }
}
