//! A real Prometheus scrapes an app on loopback and sees a breaker open and a limiter reject;
//! `promtool` finds the exposition valid. Needs `prometheus` and `promtool` on `PATH`
//! (Debian's `prometheus` package; `scripts/test` installs it): without them these tests fail.
//! Real time throughout (real sockets, a real process).

use std::time::Duration;

use resilience::rate_limit::DirectRateLimiter;
use resilience::{CircuitBreaker, Rate};
use resilience_testkit::prometheus_server::check_metrics;
use resilience_testkit::PrometheusServer;

/// The instances of the app, registered with a (local) Prometheus recorder.
fn app() -> (
    resilience_prometheus::PrometheusHandle,
    CircuitBreaker,
    DirectRateLimiter,
) {
    let recorder = resilience_prometheus::recorder().unwrap();
    let handle = recorder.handle();
    let (breaker, limiter) = metrics::with_local_recorder(&recorder, || {
        (
            CircuitBreaker::builder("payments")
                .failure_threshold(2)
                .build()
                .unwrap(),
            DirectRateLimiter::builder("partner")
                .rate(Rate::per_second(1))
                .build()
                .unwrap(),
        )
    });
    (handle, breaker, limiter)
}

fn value(body: &str) -> f64 {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_the_breaker_open_and_the_limiter_reject() {
    let (handle, breaker, limiter) = app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    tokio::spawn(resilience_prometheus::serve(listener, handle));
    let prometheus = PrometheusServer::start(&[app], Duration::from_millis(250))
        .await
        .expect("a real prometheus server (apt-get install prometheus)");

    // The breaker is seen closed first, then open: a state change over time.
    let closed = prometheus
        .wait_for(
            r#"resilience_circuit_breaker_state{name="payments",state="closed"} == 1"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(value(&closed), 1.0);

    for _ in 0..2 {
        let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    }
    assert!(breaker.call(|| async { Ok::<_, &str>(()) }).await.is_err());
    for _ in 0..5 {
        let _ = limiter.try_acquire();
    }

    let opened = prometheus
        .wait_for(
            r#"resilience_circuit_breaker_transitions_total{name="payments",from="closed",to="open"} > 0"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(value(&opened), 1.0);
    let state = prometheus
        .wait_for(
            r#"resilience_circuit_breaker_state{name="payments",state="open"} == 1"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(value(&state), 1.0);
    // The closed series went from 1 to 0 in Prometheus' own history: the change it stored.
    let changes = prometheus
        .wait_for(
            r#"changes(resilience_circuit_breaker_state{name="payments",state="closed"}[1m]) > 0"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(value(&changes) >= 1.0);
    let rejected = prometheus
        .wait_for(
            r#"resilience_rate_limit_decisions_total{name="partner",decision="rejected"} > 0"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(value(&rejected), 4.0);
    let rejected_calls = prometheus
        .wait_for(
            r#"resilience_circuit_breaker_calls_total{name="payments",outcome="rejected"}"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(value(&rejected_calls), 1.0);
}

#[tokio::test]
async fn promtool_finds_the_exposition_valid() {
    let (handle, breaker, limiter) = app();
    breaker.trip();
    let _ = limiter.try_acquire();
    let _ = limiter.try_acquire();
    let text = handle.render();
    assert!(
        text.contains("# HELP resilience_circuit_breaker_transitions_total"),
        "{text}"
    );
    check_metrics(&text).await.expect("promtool check metrics");
}
