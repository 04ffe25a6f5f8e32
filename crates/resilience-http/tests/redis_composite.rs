//! Two instances of one axum app behind the composite, sharing a Redis-backed circuit breaker
//! and rate limit through a private `redis-server`: when the first trips, the second rejects.
//! Real servers, real sockets, real time.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use resilience::circuit_breaker::CircuitBreaker;
use resilience::Rate;
use resilience_http::{CompositeLayer, HttpStageLayer, KeyedRateLimit, RateLimitKey};
use resilience_redis::{FailurePolicy, RedisBackend, RedisCircuitBreaker, RedisRateLimiter};
use resilience_testkit::RedisServer;
use tokio::time::Instant;

use common::{client, header, Server};

/// One app instance: its own connection, its own local breaker mirroring the shared state.
async fn instance(redis: &RedisServer) -> (Server, RedisCircuitBreaker) {
    let backend = RedisBackend::builder(redis.url())
        .call_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let local = CircuitBreaker::builder("checkout")
        .failure_threshold(2)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let breaker = RedisCircuitBreaker::builder(local, &backend)
        .sync_interval(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let limiter = RedisRateLimiter::builder("checkout", &backend)
        .rate(Rate::per_hour(100))
        .build()
        .unwrap();
    // One budget for every client, so both instances visibly spend the same one.
    let everyone = RateLimitKey::global();
    let layer = CompositeLayer::new()
        .rate_limit(HttpStageLayer::new(
            KeyedRateLimit::new(limiter).key(everyone),
        ))
        .stage(breaker.clone());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(layer);
    (Server::start(app).await, breaker)
}

async fn get_status(server: &Server, path: &str) -> (StatusCode, reqwest::Response) {
    let response = client().get(server.url(path)).send().await.unwrap();
    (response.status(), response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_instance_rejects_after_the_first_trips_the_shared_circuit() {
    let redis = RedisServer::start().await.unwrap();
    let (first, _first_breaker) = instance(&redis).await;
    let (second, second_breaker) = instance(&redis).await;

    let (status, response) = get_status(&second, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&response, "ratelimit-remaining"), "99");
    let (status, response) = get_status(&first, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&response, "ratelimit-remaining"),
        "98",
        "the budget is shared"
    );

    // Two 500s open the first instance's circuit, and through Redis everyone's.
    for _ in 0..2 {
        assert_eq!(
            get_status(&first, "/fail").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(
        get_status(&first, "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The second instance has seen no failure of its own, yet it rejects once the shared
    // state reaches it (the poll bound is 20 ms plus a round trip; a busy machine gets 5 s).
    let started = Instant::now();
    let rejected = loop {
        let (status, response) = get_status(&second, "/").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the second instance never saw the shared circuit open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let retry_after: u64 = header(&rejected, "retry-after").parse().unwrap();
    assert!(
        (1..=30).contains(&retry_after),
        "retry-after {retry_after} is the remaining open time"
    );
    assert_eq!(second_breaker.metrics().local.failed_requests, 0);
    assert!(
        rejected.headers().get("ratelimit-remaining").is_some(),
        "a refusal after the rate limit still tells the quota"
    );
}

/// A server whose rate limit lives in `redis` and follows `policy` when Redis is gone.
async fn limited(redis: &RedisServer, name: &str, policy: FailurePolicy) -> Server {
    let backend = RedisBackend::builder(redis.url())
        .call_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let limiter = RedisRateLimiter::builder(name, &backend)
        .rate(Rate::per_hour(100))
        .failure_policy(policy)
        .build()
        .unwrap();
    let layer = HttpStageLayer::new(KeyedRateLimit::new(limiter).key(RateLimitKey::global()));
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    Server::start(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_a_503_when_failing_closed_and_invents_no_quota_when_failing_open() {
    let mut redis = RedisServer::start().await.unwrap();
    let closed = limited(&redis, "closed", FailurePolicy::FailClosed).await;
    let open = limited(&redis, "open", FailurePolicy::FailOpen).await;
    for server in [&closed, &open] {
        let (status, response) = get_status(server, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-remaining"), "99");
    }

    redis.stop().await.unwrap();
    // Fail closed: the service is unavailable, the client is not over its rate.
    let (status, response) = get_status(&closed, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(response.headers().get(name).is_none(), "{name} invented");
    }
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "backend_unavailable");

    // Fail open: admitted, without a quota nobody could read.
    let (status, response) = get_status(&open, "/").await;
    assert_eq!(status, StatusCode::OK);
    for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(response.headers().get(name).is_none(), "{name} invented");
    }
}
