//! Admissions that cannot answer at once: a stage of one's own that answers only when
//! awaited, and a load shedder and a bulkhead whose requests queue. The stages before the
//! waiting one keep their permits while it waits, its answer reaches the client as any other,
//! and a request given up while it waits leaves the queue with nothing held.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use resilience::load_shed::{LoadShedder, Priority};
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Bulkhead, Rate};
use resilience_http::{CompositeLayer, PriorityHeader, Refusal, RequestStage, RATELIMIT_REMAINING};
use tower::{Layer, ServiceExt};

const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

/// Admits every request, counting them, but only when awaited (the default `admit_now`
/// leaves the answer to `admit_request`), after yielding once.
#[derive(Clone, Default)]
struct Asynchronous(Arc<AtomicUsize>);

impl RequestStage for Asynchronous {
    type Permit = ();

    async fn admit_request(&self, _request: &Parts) -> Result<(), Refusal> {
        tokio::task::yield_now().await;
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn request() -> Request<()> {
    let mut request = Request::get("/").body(()).unwrap();
    request.extensions_mut().insert(PEER);
    request
}

fn ok() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"ok")))
}

/// The composite `rate limit → custom stage → load shedder → bulkhead` with these slots, each
/// queue taking 4 requests for up to 10 s, and its service.
fn app(
    asked: &Asynchronous,
    shedder: &LoadShedder,
    bulkhead: &Bulkhead,
) -> impl tower::Service<
    Request<()>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = Infallible>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let layer = CompositeLayer::new()
        .rate_limit(limiter())
        .stage(asked.clone())
        // Critical: queued rather than shed by utilization when every slot is taken.
        .load_shed(PriorityHeader::new(shedder.clone()).default_priority(Priority::Critical))
        .bulkhead(bulkhead.clone());
    layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(ok())
    }))
}

/// Lets spawned requests run as far as they can.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn a_request_waiting_at(shedder_slots: u32, bulkhead_slots: u32) {
    let asked = Asynchronous::default();
    let shedder = LoadShedder::builder("waits")
        .max_requests(shedder_slots)
        .max_queue_depth(4)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("waits")
        .max_concurrent(bulkhead_slots)
        .max_waiting(4)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let app = app(&asked, &shedder, &bulkhead);
    let queued = || shedder.metrics().queue_depth + bulkhead.waiting();

    // The custom stage answers only when awaited; the others at once.
    let response = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(asked.0.load(Ordering::Relaxed), 1);
    assert!(response.headers().contains_key(RATELIMIT_REMAINING));
    response.into_body().collect().await.unwrap();

    // A first request holds the one slot with its body; a second one queues, the rate
    // limit's and the custom stage's permits taken.
    let holding = app.clone().oneshot(request()).await.unwrap();
    let waiting = tokio::spawn(app.clone().oneshot(request()));
    settle().await;
    assert_eq!((queued(), asked.0.load(Ordering::Relaxed)), (1, 3));
    // Given up while it waits: it leaves the queue, holding nothing.
    waiting.abort();
    assert!(waiting.await.is_err_and(|error| error.is_cancelled()));
    assert_eq!(queued(), 0);
    let waiting = tokio::spawn(app.clone().oneshot(request()));
    settle().await;
    assert_eq!(queued(), 1);
    // The first body ends: the waiting request gets the slot and its answer.
    holding.into_body().collect().await.unwrap();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key(RATELIMIT_REMAINING));
    assert_eq!(bulkhead.active(), 1);
    response.into_body().collect().await.unwrap();
    assert_eq!(
        (bulkhead.active(), shedder.metrics().active_requests),
        (0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_at_the_shedder_goes_on_with_the_permits_taken_before() {
    a_request_waiting_at(1, 2).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_at_the_bulkhead_goes_on_with_the_permits_taken_before() {
    a_request_waiting_at(2, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_a_wait_gives_the_earlier_permits_back_and_still_says_the_quota() {
    let asked = Asynchronous::default();
    let shedder = LoadShedder::builder("waits")
        .max_requests(2)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("waits")
        .max_concurrent(1)
        .max_waiting(0)
        .build()
        .unwrap();
    // The custom stage waits, then the bulkhead (full, no queue) refuses.
    let layer = CompositeLayer::new()
        .rate_limit(limiter())
        .load_shed(PriorityHeader::new(shedder.clone()).default_priority(Priority::Critical))
        .stage(asked.clone())
        .bulkhead(bulkhead.clone());
    let app = layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(ok())
    }));
    let holding = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(shedder.metrics().active_requests, 1);

    let refused = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(asked.0.load(Ordering::Relaxed), 2, "asked after the wait");
    assert!(
        refused.headers().contains_key(RATELIMIT_REMAINING),
        "a refusal after the rate limit says the quota"
    );
    assert_eq!(
        shedder.metrics().active_requests,
        1,
        "the shedder's slot given back"
    );
    holding.into_body().collect().await.unwrap();
    assert_eq!(
        (bulkhead.active(), shedder.metrics().active_requests),
        (0, 0)
    );
}

/// A rate limit that admits every request of these tests.
fn limiter() -> LocalRateLimiter {
    LocalRateLimiter::builder("waits")
        .rate(Rate::per_second(100))
        .build()
        .unwrap()
}
