//! Retry re-sends idempotent requests with their buffered body, never a POST, and says why
//! it did not retry; fallback answers for what fails inside it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::routing::any;
use axum::Router;
use common::{client, header, Server};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use resilience::retry::{Backoff, Jitter, Retry};
use resilience::CircuitBreaker;
use resilience_http::{HttpFallbackLayer, HttpRetryLayer, HttpStageLayer};

fn policy() -> Retry {
    Retry::builder("upstream")
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// Answers `status` to the first `failures` attempts, then echoes the request body; counts
/// every attempt.
fn flaky(failures: usize, status: StatusCode) -> (Arc<AtomicUsize>, Router) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let app = Router::new().route(
        "/",
        any(move |body: Bytes| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if attempt <= failures {
                    (status, format!("attempt {attempt} failed"))
                } else {
                    let echo = String::from_utf8_lossy(&body);
                    (StatusCode::OK, format!("echo {echo}"))
                }
            }
        }),
    );
    (attempts, app)
}

async fn retried_server(
    failures: usize,
    status: StatusCode,
    layer: HttpRetryLayer,
) -> (Arc<AtomicUsize>, Server) {
    let (attempts, app) = flaky(failures, status);
    let app = app.layer(layer.request_body::<Body>());
    (attempts, Server::start(app).await)
}

#[tokio::test]
async fn an_idempotent_get_is_sent_again_with_its_buffered_body() {
    let retry = policy();
    let (attempts, server) = retried_server(
        2,
        StatusCode::SERVICE_UNAVAILABLE,
        HttpRetryLayer::new(retry.clone()),
    )
    .await;
    let response = client()
        .get(server.url("/"))
        .body("the same bytes every time")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-retry-skipped").is_none());
    assert_eq!(
        response.text().await.unwrap(),
        "echo the same bytes every time"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(retry.metrics().total_attempts, 3);
}

#[tokio::test]
async fn a_post_is_not_retried_and_says_why() {
    let (attempts, server) = retried_server(
        2,
        StatusCode::SERVICE_UNAVAILABLE,
        HttpRetryLayer::new(policy()),
    )
    .await;
    let response = client()
        .post(server.url("/"))
        .body("order #1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header(&response, "x-retry-skipped"),
        "non-idempotent-method"
    );
    assert_eq!(response.text().await.unwrap(), "attempt 1 failed");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    // A successful POST needs no explanation.
    let response = client()
        .post(server.url("/"))
        .body("order #2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = client()
        .post(server.url("/"))
        .body("order #3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-retry-skipped").is_none());
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_retried() {
    let (attempts, server) =
        retried_server(1, StatusCode::BAD_GATEWAY, HttpRetryLayer::new(policy())).await;
    let response = client()
        .post(server.url("/"))
        .header("idempotency-key", "order-1")
        .body("order #1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "echo order #1");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_over_the_limit_is_sent_once_whole_and_says_why() {
    let layer = HttpRetryLayer::new(policy()).max_body_bytes(16);
    let (attempts, server) = retried_server(1, StatusCode::SERVICE_UNAVAILABLE, layer).await;
    let big = "x".repeat(100);
    let response = client()
        .put(server.url("/"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "x-retry-skipped"), "body-too-large");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    // Streamed (no declared length) and over the limit: read, passed on whole, not retried.
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from("0123456789")))),
    );
    let response = client()
        .put(server.url("/"))
        .body(reqwest::Body::wrap(StreamBody::new(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the second attempt overall"
    );
    assert_eq!(
        response.text().await.unwrap(),
        format!("echo {}", "0123456789".repeat(10))
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn when_attempts_run_out_the_last_answer_reaches_the_client() {
    let (attempts, server) = retried_server(
        usize::MAX,
        StatusCode::SERVICE_UNAVAILABLE,
        HttpRetryLayer::new(policy()),
    )
    .await;
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.text().await.unwrap(), "attempt 3 failed");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_404_or_an_open_circuit_is_not_retried() {
    let (attempts, server) =
        retried_server(5, StatusCode::NOT_FOUND, HttpRetryLayer::new(policy())).await;
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get("x-retry-skipped").is_none());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    // Retry outside an open circuit: its refusal ends the retrying at once.
    let breaker = CircuitBreaker::builder("upstream")
        .failure_threshold(1)
        .build()
        .unwrap();
    breaker.trip();
    let (attempts, app) = flaky(0, StatusCode::OK);
    let app = app
        .layer(HttpStageLayer::new(breaker))
        .layer(HttpRetryLayer::new(policy()).request_body::<Body>());
    let server = Server::start(app).await;
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fallback_answers_for_an_open_circuit_and_for_5xx() {
    let breaker = CircuitBreaker::builder("upstream")
        .failure_threshold(2)
        .build()
        .unwrap();
    let (attempts, app) = flaky(usize::MAX, StatusCode::INTERNAL_SERVER_ERROR);
    let degraded = Response::builder()
        .header("x-degraded", "1")
        .body(axum::body::Bytes::from_static(b"cached answer"))
        .unwrap();
    let fallback = HttpFallbackLayer::response(degraded);
    let app = app
        .layer(HttpStageLayer::new(breaker.clone()))
        .layer(fallback.clone());
    let server = Server::start(app).await;
    for _ in 0..4 {
        let response = client().get(server.url("/")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-degraded"), "1");
        assert_eq!(response.text().await.unwrap(), "cached answer");
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "two failures opened the circuit"
    );
    assert_eq!(breaker.metrics().rejected_requests, 2);
    assert_eq!(fallback.served(), 4);
}
