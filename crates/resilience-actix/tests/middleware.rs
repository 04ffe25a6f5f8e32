//! The middleware over real sockets: an actix-web server on 127.0.0.1, reqwest as the client.
//! Every wait is bounded; assertions are on counts and orderings, not on timing.

mod common;

use std::time::Duration;

use actix_web::{web, HttpResponse};
use common::{client, eventually, problem, seconds, Feed, Hits, Server};
use resilience::circuit_breaker::CircuitState;
use resilience::load_shed::{LoadShedder, Priority};
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Bulkhead, CircuitBreaker, Timeout};
use resilience_actix::Resilience;
use resilience_http::{
    CompositeLayer, ExcludePaths, HttpStageLayer, KeyedRateLimit, RateLimitKey, TrustedProxies,
};

fn limiter(rate: &str) -> LocalRateLimiter {
    LocalRateLimiter::builder("actix")
        .rate(rate.parse().unwrap())
        .build()
        .unwrap()
}

/// `/` answers "hello" and counts; `/health` answers "ok".
fn hello(hits: Hits) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    move |config| {
        let hits = hits.clone();
        config
            .route(
                "/",
                web::get().to(move || {
                    let hits = hits.clone();
                    async move {
                        hits.hit();
                        "hello"
                    }
                }),
            )
            .route("/health", web::get().to(|| async { "ok" }));
    }
}

#[tokio::test]
async fn a_rate_limit_answers_429_with_headers_and_a_problem_after_the_limit() {
    let hits = Hits::default();
    let layer = CompositeLayer::new()
        .rate_limit(limiter("2/minute"))
        .exclude(ExcludePaths::none().exact("/health"));
    let server = Server::start(Resilience::new(layer), hello(hits.clone()));
    let client = client();

    for remaining in ["1", "0"] {
        let response = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "2");
        assert_eq!(response.headers()["ratelimit-remaining"], remaining);
        assert_eq!(response.text().await.unwrap(), "hello");
    }

    let refused = client.get(server.url("/")).send().await.unwrap();
    let retry_after = seconds(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(refused.headers()["ratelimit-limit"], "2");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert!(seconds(&refused, "ratelimit-reset") <= 60);
    let body = problem(refused, 429).await;
    assert_eq!(body["reason"], "rate_limited");
    assert_eq!(body["title"], "Too Many Requests");
    assert_eq!(body["retry_after"], retry_after);
    assert_eq!(
        hits.get(),
        2,
        "the refused request never reached the handler"
    );

    // Excluded: never limited, never counted, no headers.
    for _ in 0..5 {
        let health = client.get(server.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(health.headers().get("ratelimit-limit").is_none());
        assert_eq!(health.text().await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn an_excluded_path_spends_no_budget() {
    let hits = Hits::default();
    let layer = HttpStageLayer::new(KeyedRateLimit::new(limiter("2/minute")))
        .exclude(ExcludePaths::none().exact("/health"));
    let server = Server::start(Resilience::new(layer), hello(hits.clone()));
    let client = client();
    for _ in 0..10 {
        let health = client.get(server.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    for expected in [200, 200, 429] {
        let response = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(response.status(), expected);
    }
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn x_forwarded_for_keys_the_limit_only_behind_a_trusted_proxy() {
    let trusted =
        RateLimitKey::client_ip().trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap());
    let behind_proxy = CompositeLayer::new().rate_limit(HttpStageLayer::new(
        KeyedRateLimit::new(limiter("2/minute")).key(trusted),
    ));
    let server = Server::start(Resilience::new(behind_proxy), hello(Hits::default()));
    let client = client();
    let status = |client: &reqwest::Client, url: String, from: &'static str| {
        let request = client.get(url).header("x-forwarded-for", from).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    // The proxy (127.0.0.1) forwards two clients: each has its own budget.
    for expected in [200, 200, 429] {
        assert_eq!(
            status(&client, server.url("/"), "203.0.113.1").await,
            expected
        );
    }
    for expected in [200, 200, 429] {
        assert_eq!(
            status(&client, server.url("/"), "198.51.100.7, 203.0.113.2").await,
            expected,
            "the right-most untrusted hop is the client"
        );
    }

    // Trusting nobody, the header is a client's claim: every request spends the peer's budget.
    let direct = CompositeLayer::new().rate_limit(limiter("2/minute"));
    let server = Server::start(Resilience::new(direct), hello(Hits::default()));
    let spoofed = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    let mut statuses = Vec::new();
    for from in spoofed {
        statuses.push(status(&client, server.url("/"), from).await);
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn a_circuit_opens_after_server_errors_and_answers_503_without_the_handler() {
    let hits = Hits::default();
    let breaker = CircuitBreaker::builder("actix")
        .failure_threshold(3)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let routes = {
        let hits = hits.clone();
        move |config: &mut web::ServiceConfig| {
            let hits = hits.clone();
            config.route(
                "/",
                web::get().to(move || {
                    let hits = hits.clone();
                    async move {
                        hits.hit();
                        HttpResponse::InternalServerError().body("boom")
                    }
                }),
            );
        }
    };
    let server = Server::start(
        Resilience::new(HttpStageLayer::new(breaker.clone())),
        routes,
    );
    let client = client();

    for _ in 0..3 {
        let failed = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(failed.status(), 500);
        assert_eq!(
            failed.text().await.unwrap(),
            "boom",
            "5xx reach the client unchanged"
        );
    }
    // The third failure is recorded when its body has been sent: bounded wait for it.
    eventually("the circuit opens", || {
        breaker.state() == CircuitState::Open
    })
    .await;

    let refused = client.get(server.url("/")).send().await.unwrap();
    let retry_after = seconds(&refused, "retry-after");
    assert!(
        (1..=60).contains(&retry_after),
        "the remaining open time, {retry_after}"
    );
    let body = problem(refused, 503).await;
    assert_eq!(body["reason"], "circuit_open");
    assert_eq!(
        hits.get(),
        3,
        "the open circuit kept the request from the handler"
    );
}

#[tokio::test]
async fn a_full_bulkhead_answers_503_while_a_streaming_body_holds_the_slot() {
    let hits = Hits::default();
    let bulkhead = Bulkhead::builder("actix")
        .max_concurrent(1)
        .build()
        .unwrap();
    let feed = Feed::default();
    let routes = {
        let (hits, feed) = (hits.clone(), feed.clone());
        move |config: &mut web::ServiceConfig| {
            let (hits, feed) = (hits.clone(), feed.clone());
            config.route(
                "/stream",
                web::get().to(move || {
                    let (hits, feed) = (hits.clone(), feed.clone());
                    async move {
                        hits.hit();
                        feed.respond()
                    }
                }),
            );
        }
    };
    let layer = CompositeLayer::new().bulkhead(bulkhead.clone());
    let server = Server::start(Resilience::new(layer), routes);
    let client = client();

    // A streams: its head and first chunk are out, the rest is to come.
    let sender = feed.arm();
    assert!(sender.send("first,"));
    let mut streaming = client.get(server.url("/stream")).send().await.unwrap();
    assert_eq!(streaming.status(), 200);
    assert_eq!(streaming.chunk().await.unwrap().unwrap(), "first,");
    assert_eq!(
        bulkhead.active(),
        1,
        "the body holds the slot after the handler returned"
    );

    let refused = client.get(server.url("/stream")).send().await.unwrap();
    assert!(seconds(&refused, "retry-after") >= 1);
    let body = problem(refused, 503).await;
    assert_eq!(body["reason"], "capacity_full");
    assert_eq!(hits.get(), 1);

    // The body ends: the slot goes back, and the next request gets in.
    assert!(sender.send("last"));
    drop(sender);
    let mut rest = Vec::new();
    while let Some(chunk) = streaming.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"last");
    eventually("the slot is released", || bulkhead.active() == 0).await;

    let sender = feed.arm();
    drop(sender);
    let next = client.get(server.url("/stream")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.bytes().await.unwrap().len(), 0);
    eventually("the slot is released again", || bulkhead.active() == 0).await;
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_body_gives_the_slot_back() {
    let bulkhead = Bulkhead::builder("actix")
        .max_concurrent(1)
        .build()
        .unwrap();
    let feed = Feed::default();
    let routes = {
        let feed = feed.clone();
        move |config: &mut web::ServiceConfig| {
            let feed = feed.clone();
            config.route(
                "/stream",
                web::get().to(move || {
                    let feed = feed.clone();
                    async move { feed.respond() }
                }),
            );
        }
    };
    let server = Server::start(
        Resilience::new(HttpStageLayer::new(bulkhead.clone())),
        routes,
    );
    let client = client();

    let sender = feed.arm();
    assert!(sender.send("first,"));
    let mut streaming = client.get(server.url("/stream")).send().await.unwrap();
    assert_eq!(streaming.chunk().await.unwrap().unwrap(), "first,");
    assert_eq!(bulkhead.active(), 1);
    drop(streaming);

    // The server learns of the closed connection when it next writes: keep the stream
    // going (bounded) until actix drops the body, and with it the permit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bulkhead.active() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released"
        );
        let _ = sender.send("more,");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(bulkhead.active(), 0);
}

#[tokio::test]
async fn the_priority_header_decides_who_is_shed() {
    let shedder = LoadShedder::builder("actix")
        .max_requests(2)
        .threshold(Priority::Low, 0.4)
        .build()
        .unwrap();
    let feed = Feed::default();
    let routes = {
        let feed = feed.clone();
        move |config: &mut web::ServiceConfig| {
            let feed = feed.clone();
            config
                .route(
                    "/stream",
                    web::get().to(move || {
                        let feed = feed.clone();
                        async move { feed.respond() }
                    }),
                )
                .route("/", web::get().to(|| async { "hello" }));
        }
    };
    let layer = CompositeLayer::new().load_shed(shedder.clone());
    let server = Server::start(Resilience::new(layer), routes);
    let client = client();

    // One request in flight of two: utilisation 0.5, above low's 0.4 only.
    let sender = feed.arm();
    assert!(sender.send("held"));
    let mut streaming = client
        .get(server.url("/stream"))
        .header("x-priority", "critical")
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.chunk().await.unwrap().unwrap(), "held");

    for (priority, expected) in [
        (Some("low"), 503),
        (Some("LOW"), 503),
        (Some("Normal"), 200),
        (Some("high"), 200),
        (Some("nonsense"), 200),
        (None, 200),
    ] {
        let mut request = client.get(server.url("/"));
        if let Some(priority) = priority {
            request = request.header("x-priority", priority);
        }
        let response = request.send().await.unwrap();
        if expected == 503 {
            let body = problem(response, 503).await;
            assert_eq!(body["reason"], "load_shed", "{priority:?}");
        } else {
            assert_eq!(response.status(), 200, "{priority:?}");
            assert_eq!(response.text().await.unwrap(), "hello");
        }
    }
    drop(sender);
    while streaming.chunk().await.unwrap().is_some() {}
    eventually("the shedder is idle", || {
        shedder.metrics().active_requests == 0
    })
    .await;
}

#[tokio::test]
async fn a_slow_handler_gets_408_and_counts_as_a_breaker_failure() {
    let hits = Hits::default();
    let breaker = CircuitBreaker::builder("actix")
        .failure_threshold(1)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let layer = CompositeLayer::new()
        .circuit_breaker(breaker.clone())
        .timeout(Timeout::new(Duration::from_millis(200)).unwrap());
    let routes = {
        let hits = hits.clone();
        move |config: &mut web::ServiceConfig| {
            let hits = hits.clone();
            config.route(
                "/",
                web::get().to(move || {
                    let hits = hits.clone();
                    async move {
                        hits.hit();
                        std::future::pending::<HttpResponse>().await
                    }
                }),
            );
        }
    };
    let server = Server::start(Resilience::new(layer), routes);
    let client = client();

    let timed_out = client.get(server.url("/")).send().await.unwrap();
    let body = problem(timed_out, 408).await;
    assert_eq!(body["reason"], "timeout");
    assert!(
        breaker.state() == CircuitState::Open,
        "a timeout is a failure"
    );

    let refused = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(problem(refused, 503).await["reason"], "circuit_open");
    assert_eq!(hits.get(), 1);
}
