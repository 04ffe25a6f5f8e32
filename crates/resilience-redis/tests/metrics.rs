//! The Redis limiter's and the shared breaker's metrics (feature `metrics`) against a real
//! `redis-server`, in real time: decisions, backend health through an outage and back, and a
//! trip made by one instance showing in another instance's series. Each instance records
//! into a recorder of its own, as separate processes would.
#![cfg(feature = "metrics")]

// The core's telemetry tests' recorder: plain atomics, readable any number of times.
#[path = "../../resilience/tests/common/recorder.rs"]
mod recorder;

use std::sync::atomic::Ordering;
use std::time::Duration;

use recorder::Values;
use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::rate_limit::RateLimiter;
use resilience::Rate;
use resilience_redis::{RedisBackend, RedisCircuitBreaker, RedisRateLimiter};
use resilience_testkit::RedisServer;
use tokio::time::Instant;

async fn backend(server: &RedisServer) -> RedisBackend {
    RedisBackend::builder(server.url())
        // Generous: a spurious timeout on a busy machine would count as a backend error.
        .call_timeout(Duration::from_secs(2))
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap()
}

/// The value of the counter or gauge `name{labels...}`, if it was registered.
fn value(values: &Values, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |key: &metrics::Key| {
        key.name() == name
            && labels
                .iter()
                .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
    };
    let counter = values
        .0
        .get_counter_handles()
        .into_iter()
        .find(|(key, _)| matches(key))
        .map(|(_, count)| count.load(Ordering::SeqCst) as f64);
    counter.or_else(|| {
        values
            .0
            .get_gauge_handles()
            .into_iter()
            .find(|(key, _)| matches(key))
            .map(|(_, bits)| f64::from_bits(bits.load(Ordering::SeqCst)))
    })
}

/// Polls until `name{labels}` equals `expected`; real time, bounded.
async fn until(values: &Values, name: &str, labels: &[(&str, &str)], expected: f64) {
    let started = Instant::now();
    loop {
        let seen = value(values, name, labels);
        if seen == Some(expected) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}{labels:?} is {seen:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_limiter_counts_decisions_and_backend_health_through_an_outage() {
    let mut server = RedisServer::start().await.expect("redis-server starts");
    let backend = backend(&server).await;
    let values = Values::new();
    let recorder = values.clone();
    let limiter = metrics::with_local_recorder(&recorder, || {
        // Two per minute: nothing refills during the test, so the counts are exact.
        RedisRateLimiter::builder("partner", &backend)
            .rate(Rate::per_minute(2))
            .build()
            .unwrap()
    });
    let name = ("name", "partner");

    for _ in 0..5 {
        limiter.check("ada").await;
    }
    let decisions = "resilience_rate_limit_decisions_total";
    assert_eq!(
        value(&values, decisions, &[name, ("decision", "allowed")]),
        Some(2.0)
    );
    assert_eq!(
        value(&values, decisions, &[name, ("decision", "rejected")]),
        Some(3.0)
    );
    assert_eq!(value(&values, "resilience_backend_up", &[name]), Some(1.0));
    let errors = "resilience_backend_errors_total";
    assert_eq!(
        value(&values, errors, &[name, ("policy", "fail_open")]),
        Some(0.0)
    );

    // Redis goes away: the next decision fails open, and the series say why.
    server.stop().await.unwrap();
    assert!(limiter.check("ada").await.is_allowed());
    assert_eq!(value(&values, "resilience_backend_up", &[name]), Some(0.0));
    assert_eq!(
        value(&values, errors, &[name, ("policy", "fail_open")]),
        Some(1.0)
    );
    assert_eq!(
        value(&values, decisions, &[name, ("decision", "allowed")]),
        Some(3.0)
    );

    // It comes back (empty): once the health check sees it, a decision marks it up again.
    server.restart().await.unwrap();
    let started = Instant::now();
    while !backend.is_healthy() {
        assert!(started.elapsed() < Duration::from_secs(10), "still down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(limiter.check("ada").await.is_allowed());
    assert_eq!(value(&values, "resilience_backend_up", &[name]), Some(1.0));
}

fn local(name: &str) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .failure_threshold(2)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_by_one_instance_shows_in_the_series_of_another() {
    let server = RedisServer::start().await.expect("redis-server starts");
    let (seen_by_a, seen_by_b) = (Values::new(), Values::new());
    let (recorder_a, recorder_b) = (seen_by_a.clone(), seen_by_b.clone());
    let local_a = metrics::with_local_recorder(&recorder_a, || local("payments"));
    let local_b = metrics::with_local_recorder(&recorder_b, || local("payments"));
    let a = RedisCircuitBreaker::builder(local_a, &backend(&server).await)
        .sync_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let b = RedisCircuitBreaker::builder(local_b, &backend(&server).await)
        .sync_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let name = ("name", "payments");
    let state = "resilience_circuit_breaker_state";
    for seen in [&seen_by_a, &seen_by_b] {
        assert_eq!(value(seen, state, &[name, ("state", "closed")]), Some(1.0));
    }

    for _ in 0..2 {
        let _ = a.call(|| async { Err::<(), _>("down") }).await;
    }
    assert_eq!(a.state(), CircuitState::Open);
    let failures = "resilience_circuit_breaker_calls_total";
    assert_eq!(
        value(&seen_by_a, failures, &[name, ("outcome", "failure")]),
        Some(2.0)
    );

    // b never saw a failure; it follows the shared state, and its own series say so.
    let transitions = "resilience_circuit_breaker_transitions_total";
    let opened = [name, ("from", "closed"), ("to", "open")];
    until(&seen_by_b, transitions, &opened, 1.0).await;
    assert_eq!(
        value(&seen_by_b, state, &[name, ("state", "open")]),
        Some(1.0)
    );
    assert_eq!(
        value(&seen_by_b, state, &[name, ("state", "closed")]),
        Some(0.0)
    );
    assert!(b
        .call(|| async { Ok::<_, &str>(()) })
        .await
        .unwrap_err()
        .is_rejected());
    assert_eq!(
        value(&seen_by_b, failures, &[name, ("outcome", "rejected")]),
        Some(1.0)
    );
    assert_eq!(
        value(&seen_by_b, failures, &[name, ("outcome", "failure")]),
        Some(0.0)
    );
}

/// The shared breaker's backend series follow Redis: up after its first read, down (with the
/// failed call counted under its policy) while Redis is gone, up again once it is back.
/// Current-thread runtime: the breaker registers its series as it starts, into the
/// recorder installed on this thread.
#[tokio::test]
async fn the_shared_breakers_backend_health_follows_an_outage() {
    let mut server = RedisServer::start().await.expect("redis-server starts");
    let values = Values::new();
    let recorder = values.clone();
    let _installed = metrics::set_default_local_recorder(&recorder);
    let backend = backend(&server).await;
    let breaker = RedisCircuitBreaker::builder(local("orders"), &backend)
        .sync_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let name = ("name", "orders");
    let up = "resilience_backend_up";
    let errors = "resilience_backend_errors_total";
    assert_eq!(value(&values, up, &[name]), Some(1.0));
    assert_eq!(
        value(&values, errors, &[name, ("policy", "fail_open")]),
        Some(0.0)
    );

    server.stop().await.unwrap();
    // The next sync round (or the health check first) finds it gone.
    until(&values, up, &[name], 0.0).await;
    assert!(
        value(&values, errors, &[name, ("policy", "fail_open")]).unwrap() <= 1.0,
        "at most the one read that found it gone"
    );

    server.restart().await.unwrap();
    until(&values, up, &[name], 1.0).await;
    assert_eq!(breaker.state(), CircuitState::Closed);
}
