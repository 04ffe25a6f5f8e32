//! Every status code and header the layers answer with, on a real socket: 429 with
//! `RateLimit-*` and `Retry-After`, 503 with `Retry-After` for each slot limiter and the open
//! circuit, 408 (or 504) for timeouts, custom replies and factories, and exclusions.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{client, header, json, Gate, Server};
use http::{Response, StatusCode};
use resilience::adaptive::{AdaptiveLimiter, AimdConfig};
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Backpressure, Bulkhead, CircuitBreaker, Timeout};
use resilience_http::{
    ExcludePaths, HttpStageLayer, HttpTimeoutLayer, KeyedRateLimit, Reply, ResponseFactory,
};

fn limiter(rate: &str) -> LocalRateLimiter {
    LocalRateLimiter::builder("api")
        .rate(rate.parse().unwrap())
        .build()
        .unwrap()
}

fn hello() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/health", get(|| async { "ok" }))
        .route("/internal/{*rest}", get(|| async { "internal" }))
}

#[tokio::test]
async fn rate_limit_answers_429_with_exact_headers() {
    // 3 a minute: one every 20 s, a burst of 3. All requests run well within a second, so
    // every figure is exact once rounded up to whole seconds.
    let server = Server::start(
        hello().layer(HttpStageLayer::new(KeyedRateLimit::new(limiter(
            "3/minute",
        )))),
    )
    .await;
    let client = client();
    for (remaining, reset) in [("2", "20"), ("1", "40"), ("0", "60")] {
        let response = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "3");
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
        assert_eq!(header(&response, "ratelimit-reset"), reset);
        assert!(response.headers().get("retry-after").is_none());
    }
    let limited = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    // The next request fits 20 s from the first (one every 20 s), the whole budget is back
    // 60 s from it, minus the few milliseconds spent so far: rounded up, exactly 20 and 60.
    assert_eq!(header(&limited, "retry-after"), "20");
    assert_eq!(header(&limited, "ratelimit-limit"), "3");
    assert_eq!(header(&limited, "ratelimit-remaining"), "0");
    assert_eq!(header(&limited, "ratelimit-reset"), "60");
    assert_eq!(header(&limited, "content-type"), "application/problem+json");
    let body = json(limited).await;
    assert_eq!(body["detail"], "Rate limit exceeded");
    assert_eq!(body["reason"], "rate_limited");
    assert_eq!(body["status"], 429);
    assert_eq!(body["retry_after"], 20);
}

#[tokio::test]
async fn a_sub_second_wait_rounds_up_to_one_second() {
    let server = Server::start(
        hello().layer(HttpStageLayer::new(KeyedRateLimit::new(limiter(
            "5/second",
        )))),
    )
    .await;
    let client = client();
    // Five fit at once; on a loaded machine the budget may refill a little meanwhile, which
    // only lets a few more through before the first refusal.
    let mut allowed = 0;
    let limited = loop {
        let response = client.get(server.url("/")).send().await.unwrap();
        if response.status() != StatusCode::OK {
            break response;
        }
        allowed += 1;
        assert!(allowed < 100, "never limited");
    };
    assert!(allowed >= 5, "the burst of five: {allowed}");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&limited, "retry-after"),
        "1",
        "a wait of < 200 ms is 1, never 0"
    );
    assert_eq!(header(&limited, "ratelimit-reset"), "1");
}

#[tokio::test]
async fn an_open_circuit_answers_503_with_its_remaining_open_time() {
    let breaker = CircuitBreaker::builder("upstream")
        .failure_threshold(1)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(HttpStageLayer::new(breaker.clone()));
    let server = Server::start(app).await;
    let client = client();

    let failed = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.text().await.unwrap(),
        "boom",
        "the 500 reaches the client as is"
    );

    let open = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&open, "retry-after"), "30");
    let body = json(open).await;
    assert_eq!(
        body["detail"],
        "Service temporarily unavailable due to circuit breaker"
    );
    assert_eq!(body["reason"], "circuit_open");
    assert_eq!(breaker.metrics().rejected_requests, 1);
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(500)).await;
    "late"
}

#[tokio::test]
async fn a_timeout_answers_408_by_default_and_504_when_configured() {
    let timeout = Timeout::new(Duration::from_millis(50)).unwrap();
    let default = Router::new()
        .route("/", get(slow))
        .layer(HttpTimeoutLayer::new(timeout.clone()));
    let gateway = Router::new().route("/", get(slow)).layer(
        HttpTimeoutLayer::new(timeout.clone()).reply(
            Reply::new()
                .status(StatusCode::GATEWAY_TIMEOUT)
                .message("Upstream too slow"),
        ),
    );
    let (default, gateway) = (Server::start(default).await, Server::start(gateway).await);
    let client = client();

    let started = tokio::time::Instant::now();
    let response = client.get(default.url("/")).send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "cancelled at the limit"
    );
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(response.headers().get("retry-after").is_none());
    let body = json(response).await;
    assert_eq!(body["detail"], "Request exceeded timeout");
    assert_eq!(body["reason"], "timeout");

    let response = client.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json(response).await["detail"], "Upstream too slow");
    assert_eq!(timeout.metrics().timed_out_executions, 2);
}

/// A route whose `/hold` requests wait at the gate, so a limiter of one slot is full.
fn gated(gate: &Gate) -> Router {
    let held = gate.clone();
    Router::new().route("/", get(|| async { "hello" })).route(
        "/hold",
        get(move || {
            let gate = held.clone();
            async move {
                gate.pass().await;
                "released"
            }
        }),
    )
}

/// Fills the one slot of `app`'s limiter, then checks the next request's answer.
async fn full_answer(app: impl FnOnce(&Gate) -> Router) -> (StatusCode, String, serde_json::Value) {
    let gate = Gate::default();
    let server = Server::start(app(&gate)).await;
    let client = client();
    let holder = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/hold"));
        async move { client.get(url).send().await.unwrap().status() }
    });
    gate.entered(1).await;
    let refused = client.get(server.url("/")).send().await.unwrap();
    let status = refused.status();
    let retry_after = header(&refused, "retry-after").to_owned();
    let body = json(refused).await;
    gate.release(1);
    assert_eq!(holder.await.unwrap(), StatusCode::OK);
    let after = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "the slot came back");
    (status, retry_after, body)
}

#[tokio::test]
async fn every_slot_limiter_answers_503_with_its_hint() {
    let bulkhead = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
    let (status, retry_after, body) =
        full_answer(|gate| gated(gate).layer(HttpStageLayer::new(bulkhead))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after, "10");
    assert_eq!(body["detail"], "Service at capacity");
    assert_eq!(body["reason"], "capacity_full");

    let backpressure = Backpressure::builder("queue")
        .max_pending(1)
        .water_marks(1, 0)
        .wait_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let (status, retry_after, body) =
        full_answer(|gate| gated(gate).layer(HttpStageLayer::new(backpressure))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after, "5");
    assert_eq!(body["detail"], "System under backpressure");

    let adaptive = AdaptiveLimiter::builder("search")
        .aimd(AimdConfig {
            initial_limit: 1,
            min_limit: 1,
            max_limit: 1,
            ..AimdConfig::default()
        })
        .build()
        .unwrap();
    let (status, retry_after, body) =
        full_answer(|gate| gated(gate).layer(HttpStageLayer::new(adaptive))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after, "1");
    assert_eq!(body["detail"], "Concurrency limit reached");
    assert_eq!(body["reason"], "concurrency_limit");
}

#[tokio::test]
async fn custom_status_message_and_hint() {
    let bulkhead = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
    let reply = Reply::new()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .message("Busy, come back soon")
        .retry_after(Duration::from_millis(2500));
    let (status, retry_after, body) =
        full_answer(|gate| gated(gate).layer(HttpStageLayer::new(bulkhead).reply(reply))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after, "3", "2.5 s rounds up");
    assert_eq!(body["detail"], "Busy, come back soon");
    assert_eq!(body["status"], 429);
}

#[tokio::test]
async fn a_response_factory_replaces_the_body_and_keeps_the_headers() {
    let factory = ResponseFactory::new(|problem| {
        Response::builder()
            .status(problem.status())
            .header("content-type", "text/plain")
            .body(Bytes::from(format!(
                "{} ({}), retry in {}s",
                problem.message(),
                problem.reason(),
                problem.retry_after_secs().unwrap_or(0)
            )))
            .unwrap()
    });
    let app = hello().layer(
        HttpStageLayer::new(KeyedRateLimit::new(limiter("1/minute")))
            .reply(Reply::new().factory(factory)),
    );
    let server = Server::start(app).await;
    let client = client();
    assert_eq!(
        client.get(server.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let limited = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "content-type"), "text/plain");
    assert_eq!(header(&limited, "retry-after"), "60");
    assert_eq!(header(&limited, "ratelimit-remaining"), "0");
    assert_eq!(header(&limited, "ratelimit-reset"), "60");
    assert_eq!(
        limited.text().await.unwrap(),
        "Rate limit exceeded (rate_limited), retry in 60s"
    );
}

async fn statuses(server: &Server, paths: &[&str]) -> Vec<u16> {
    let client = client();
    let mut statuses = Vec::new();
    for path in paths {
        let response = client.get(server.url(path)).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn excluded_paths_exact_prefix_and_empty() {
    // One request a minute: the second request to a limited path is refused.
    let exclude = ExcludePaths::none().exact("/health").prefix("/internal");
    let app = hello()
        .layer(HttpStageLayer::new(KeyedRateLimit::new(limiter("1/minute"))).exclude(exclude));
    let server = Server::start(app).await;
    assert_eq!(
        statuses(
            &server,
            &[
                "/health",
                "/health",
                "/internal/a",
                "/internal/b/c",
                "/",
                "/"
            ]
        )
        .await,
        [200, 200, 200, 200, 200, 429]
    );
    // `?query` is not part of the path.
    assert_eq!(statuses(&server, &["/health?verbose=1"]).await, [200]);

    // An empty list excludes nothing, the seed's defaults included.
    let app = hello().layer(
        HttpStageLayer::new(KeyedRateLimit::new(limiter("1/minute"))).exclude(ExcludePaths::none()),
    );
    let server = Server::start(app).await;
    assert_eq!(statuses(&server, &["/health", "/health"]).await, [200, 429]);

    // The seed's defaults, when asked for.
    let defaults = ExcludePaths::seed_defaults();
    let app = hello()
        .layer(HttpStageLayer::new(KeyedRateLimit::new(limiter("1/minute"))).exclude(defaults));
    let server = Server::start(app).await;
    assert_eq!(
        statuses(&server, &["/health", "/health", "/", "/"]).await,
        [200, 200, 200, 429]
    );
}
