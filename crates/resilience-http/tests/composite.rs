//! The composite's documented order: rate limit → load shed → bulkhead → circuit breaker →
//! timeout. A request refused at one step never reaches the next.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{client, header, json, Gate, Server};
use http::{Response, StatusCode};
use resilience::circuit_breaker::CircuitState;
use resilience::load_shed::LoadShedder;
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Bulkhead, CircuitBreaker, Timeout};
use resilience_http::{CompositeLayer, ExcludePaths, ResponseFactory};

struct Stack {
    limiter: LocalRateLimiter,
    shedder: LoadShedder,
    bulkhead: Bulkhead,
    breaker: CircuitBreaker,
    timeout: Timeout,
}

impl Stack {
    fn new(rate: &str, shed_at: u32, slots: u32) -> Self {
        Self {
            limiter: LocalRateLimiter::builder("api")
                .rate(rate.parse().unwrap())
                .build()
                .unwrap(),
            shedder: LoadShedder::builder("api")
                .max_requests(shed_at)
                .build()
                .unwrap(),
            bulkhead: Bulkhead::builder("api")
                .max_concurrent(slots)
                .build()
                .unwrap(),
            breaker: CircuitBreaker::builder("api")
                .failure_threshold(2)
                .open_duration(Duration::from_secs(5))
                .build()
                .unwrap(),
            timeout: Timeout::new(Duration::from_millis(100)).unwrap(),
        }
    }

    fn layer(&self) -> CompositeLayer<impl resilience_http::Stages + Clone> {
        CompositeLayer::new()
            .rate_limit(self.limiter.clone())
            .load_shed(self.shedder.clone())
            .bulkhead(self.bulkhead.clone())
            .circuit_breaker(self.breaker.clone())
            .timeout(self.timeout.clone())
    }
}

/// `/` answers at once, `/hold` waits at the gate, `/slow` outlives the timeout, `/fail`
/// answers 500.
fn app(gate: &Gate) -> Router {
    let held = gate.clone();
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/hold",
            get(move || {
                let gate = held.clone();
                async move {
                    gate.pass().await;
                    "released"
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "late"
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
        )
        .route("/health", get(|| async { "ok" }))
}

async fn status(server: &Server, path: &str) -> StatusCode {
    client()
        .get(server.url(path))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_rate_limited_request_touches_nothing_after_the_limiter() {
    let stack = Stack::new("2/minute", 100, 10);
    let server = Server::start(app(&Gate::default()).layer(stack.layer())).await;
    let client = client();
    let first = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "ratelimit-limit"), "2");
    assert_eq!(header(&first, "ratelimit-remaining"), "1");
    assert_eq!(status(&server, "/").await, StatusCode::OK);
    for _ in 0..3 {
        let limited = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&limited, "retry-after"), "30");
    }
    assert_eq!(stack.shedder.metrics().total_accepted, 2);
    assert_eq!(stack.shedder.metrics().total_shed, 0);
    assert_eq!(stack.bulkhead.metrics().total_requests, 2);
    assert_eq!(stack.breaker.metrics().total_requests, 2);
    assert_eq!(stack.timeout.metrics().total_executions, 2);
}

#[tokio::test]
async fn a_shed_request_never_takes_a_bulkhead_slot() {
    // The shedder holds 1 request; a second one is shed at the cap (no queue). A rate that
    // gives nothing back while the test runs, so the quota the refusal reports is exact
    // however long a loaded machine takes between the two requests.
    let stack = Stack::new("100/hour", 1, 10);
    let gate = Gate::default();
    let server = Server::start(app(&gate).layer(stack.layer())).await;
    let holder = tokio::spawn(client().get(server.url("/hold")).send());
    gate.entered(1).await;

    let shed = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&shed, "retry-after"), "5");
    assert_eq!(
        header(&shed, "ratelimit-remaining"),
        "98",
        "refusals say the quota too"
    );
    assert_eq!(
        json(shed).await["detail"],
        "Service temporarily overloaded. Please retry later."
    );
    assert_eq!(
        stack.bulkhead.metrics().total_requests,
        1,
        "only the held request"
    );

    gate.release(1);
    assert_eq!(holder.await.unwrap().unwrap().status(), StatusCode::OK);
    common::eventually(|| stack.bulkhead.active() == 0).await;
    // The breaker counts outcomes as they end: the held request only.
    assert_eq!(stack.breaker.metrics().total_requests, 1);
}

#[tokio::test]
async fn the_bulkhead_really_bounds_concurrency_and_its_refusals_do_not_count_as_failures() {
    // The seed's composite ignored its bulkhead's answer: 5 of 5 got through a bulkhead of 1.
    let stack = Stack::new("100/second", 100, 2);
    let gate = Gate::default();
    let server = Server::start(app(&gate).layer(stack.layer())).await;
    let holders: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client().get(server.url("/hold")).send()))
        .collect();
    gate.entered(2).await;
    for _ in 0..5 {
        let refused = client().get(server.url("/hold")).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&refused, "retry-after"), "10");
        assert_eq!(json(refused).await["reason"], "capacity_full");
    }
    assert_eq!(stack.bulkhead.metrics().peak_active, 2);
    assert_eq!(
        stack.shedder.metrics().active_requests,
        2,
        "shed slots given back"
    );

    gate.release(2);
    for holder in holders {
        assert_eq!(holder.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    common::eventually(|| stack.bulkhead.active() == 0).await;
    // Refused by the bulkhead before the breaker: never seen by it, so never failures.
    let breaker = stack.breaker.metrics();
    assert_eq!((breaker.total_requests, breaker.failed_requests), (2, 0));
    assert_eq!(stack.breaker.state(), CircuitState::Closed);
}

#[tokio::test]
async fn timeouts_and_5xx_open_the_circuit_which_then_refuses_before_any_timer() {
    let stack = Stack::new("100/second", 100, 10);
    let server = Server::start(app(&Gate::default()).layer(stack.layer())).await;

    let timed_out = client().get(server.url("/slow")).send().await.unwrap();
    assert_eq!(timed_out.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(json(timed_out).await["reason"], "timeout");
    let failed = client().get(server.url("/fail")).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.text().await.unwrap(),
        "failed",
        "the 500 passes through"
    );
    assert_eq!(stack.breaker.state(), CircuitState::Open);
    assert_eq!(
        stack.bulkhead.active(),
        0,
        "the timed-out request's slot came back"
    );
    assert_eq!(stack.bulkhead.metrics().failed_requests, 2);

    let open = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&open, "retry-after"), "5");
    assert_eq!(json(open).await["reason"], "circuit_open");
    assert_eq!(
        stack.timeout.metrics().total_executions,
        2,
        "no timer for a refused request"
    );
}

#[tokio::test]
async fn composite_exclusions_and_one_factory_for_every_step() {
    let stack = Stack::new("1/minute", 100, 10);
    let factory = ResponseFactory::new(|problem| {
        Response::builder()
            .status(problem.status())
            .body(Bytes::from(format!("refused: {}", problem.reason())))
            .unwrap()
    });
    let layer = stack
        .layer()
        .exclude(ExcludePaths::none().exact("/health"))
        .response_factory(factory);
    let server = Server::start(app(&Gate::default()).layer(layer)).await;

    for _ in 0..3 {
        assert_eq!(status(&server, "/health").await, StatusCode::OK);
    }
    assert_eq!(status(&server, "/").await, StatusCode::OK);
    let limited = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), "60");
    assert_eq!(limited.text().await.unwrap(), "refused: rate_limited");
    assert_eq!(
        stack.bulkhead.metrics().total_requests,
        1,
        "/health bypassed every step"
    );
}

/// A step whose permit ignores the outcome (the load shedder's) never runs its classifier,
/// which may be a predicate of the user's; a step that uses it (the breaker) runs its own
/// once per response and learns the verdict.
#[tokio::test]
async fn only_steps_that_use_the_outcome_run_their_classifier() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use resilience::classify::Outcome;
    use resilience_http::{HttpStageLayer, ResponseClassifier};

    let counting = |calls: &Arc<AtomicUsize>| {
        let calls = Arc::clone(calls);
        ResponseClassifier::from_fn(move |head| {
            calls.fetch_add(1, Ordering::SeqCst);
            if head.status == StatusCode::IM_A_TEAPOT {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        })
    };
    let (shedder_calls, breaker_calls) = (Arc::default(), Arc::default());
    let stack = Stack::new("100/second", 100, 10);
    let layer = CompositeLayer::new()
        .stage(HttpStageLayer::new(stack.shedder.clone()).classifier(counting(&shedder_calls)))
        .stage(HttpStageLayer::new(stack.breaker.clone()).classifier(counting(&breaker_calls)));
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }));
    let server = Server::start(app.layer(layer)).await;

    assert_eq!(status(&server, "/").await, StatusCode::OK);
    assert_eq!(status(&server, "/teapot").await, StatusCode::IM_A_TEAPOT);
    assert_eq!(shedder_calls.load(Ordering::SeqCst), 0);
    assert_eq!(breaker_calls.load(Ordering::SeqCst), 2);
    let breaker = stack.breaker.metrics();
    assert_eq!(
        (breaker.successful_requests, breaker.failed_requests),
        (1, 1)
    );
    assert_eq!(stack.shedder.metrics().active_requests, 0);
}
