//! The tower layer: the tower contract step by step with `tower-test`'s mock, the same
//! behaviour as `call` (rejections, timeouts, classification), shared state across clones.
#![cfg(feature = "tower")]

use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, CircuitState};
use resilience::classify::Classifier;
use resilience::{Error, RejectionReason};
use resilience_testkit::Flaky;
use tower::{Layer, ServiceExt};
use tower_test::assert_request_eq;
use tower_test::mock::{self, Spawn};

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder("upstream")
        .failure_threshold(2)
        .open_duration(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn passes_readiness_through_and_counts_inner_errors() {
    let (service, mut handle) = mock::pair::<&str, &str>();
    let breaker = breaker();
    let mut service = Spawn::new(CircuitBreakerLayer::new(breaker.clone()).layer(service));

    handle.allow(0);
    assert!(
        service.poll_ready().is_pending(),
        "not ready while the inner service is not"
    );
    handle.allow(3);
    assert!(service.poll_ready().is_ready());

    for _ in 0..2 {
        assert!(service.poll_ready().is_ready());
        let response = service.call("ping");
        assert_request_eq!(handle, "ping").send_error("down");
        let error = response.await.unwrap_err();
        assert!(matches!(error, Error::Inner(ref inner) if inner.to_string() == "down"));
    }
    assert_eq!(breaker.state(), CircuitState::Open);

    // Rejected without reaching the inner service.
    assert!(service.poll_ready().is_ready());
    let error = service.call("ping").await.unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
    assert_eq!(rejection.retry_after(), Some(Duration::from_secs(5)));
    assert!(handle.poll_request().is_pending());
    drop(service);
}

#[tokio::test(start_paused = true)]
async fn classifies_responses_like_call_with() {
    let classifier = Classifier::<u16, Box<dyn std::error::Error + Send + Sync>>::new()
        .failure_on_result(|status| *status >= 500);
    let breaker = breaker();
    let (service, mut handle) = mock::pair::<(), u16>();
    let mut service = Spawn::new(
        CircuitBreakerLayer::new(breaker.clone())
            .classifier(classifier)
            .layer(service),
    );
    handle.allow(2);
    for _ in 0..2 {
        assert!(service.poll_ready().is_ready());
        let response = service.call(());
        assert_request_eq!(handle, ()).send_response(502);
        assert_eq!(
            response.await.unwrap(),
            502,
            "the 5xx reaches the caller unchanged"
        );
    }
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_circuit_and_the_call_timeout_applies() {
    let breaker = CircuitBreaker::builder("slow-upstream")
        .failure_threshold(1)
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(breaker.clone());
    let slow = Flaky::builder().latency(Duration::from_millis(80)).build();
    let first = layer.clone().layer(slow.clone());
    let second = layer.layer(slow);

    let error = first.oneshot("a").await.unwrap_err();
    assert!(matches!(error, Error::Timeout { limit, .. } if limit == Duration::from_millis(50)));
    let error = second.oneshot("b").await.unwrap_err();
    assert!(error.is_rejected(), "the clone saw the trip");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_response_future_releases_its_probe() {
    let breaker = CircuitBreaker::builder("probe")
        .half_open_max_calls(1)
        .build()
        .unwrap();
    breaker.trip();
    tokio::time::advance(Duration::from_secs(60)).await;
    let (service, mut handle) = mock::pair::<(), ()>();
    let mut service = Spawn::new(CircuitBreakerLayer::new(breaker.clone()).layer(service));
    handle.allow(2);
    assert!(service.poll_ready().is_ready());
    let pending = service.call(());
    assert_eq!(breaker.metrics().half_open_calls, 1);
    drop(pending);
    assert_eq!(breaker.metrics().half_open_calls, 0);
    let _abandoned = handle.next_request().await.unwrap();
    assert!(service.poll_ready().is_ready());
    let response = service.call(());
    assert_request_eq!(handle, ()).send_response(());
    response.await.unwrap();
}
