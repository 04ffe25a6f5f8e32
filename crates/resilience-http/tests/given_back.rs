//! Whatever path a request takes through the composite (refused by a later step, given up
//! while the service runs, given up while queued, answered), every slot it took goes back,
//! exactly once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use resilience::load_shed::LoadShedder;
use resilience::{Bulkhead, CircuitBreaker};
use resilience_http::{CompositeLayer, Stages, StagesService};
use tower::{Layer, Service, ServiceExt};

struct Steps {
    shedder: LoadShedder,
    bulkhead: Bulkhead,
    breaker: CircuitBreaker,
}

impl Steps {
    /// One bulkhead slot, and `waiting` places in its queue.
    fn new(waiting: u32) -> Self {
        Self {
            shedder: LoadShedder::builder("given-back")
                .max_requests(100)
                .build()
                .unwrap(),
            bulkhead: Bulkhead::builder("given-back")
                .max_concurrent(1)
                .max_waiting(waiting)
                .build()
                .unwrap(),
            breaker: CircuitBreaker::builder("given-back").build().unwrap(),
        }
    }

    /// `/` answers at once, `/never` never does.
    fn app(&self) -> StagesService<Router, impl Stages> {
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/never", get(std::future::pending::<&'static str>));
        CompositeLayer::new()
            .load_shed(self.shedder.clone())
            .bulkhead(self.bulkhead.clone())
            .circuit_breaker(self.breaker.clone())
            .layer(router)
    }

    fn active(&self) -> (u32, u32) {
        (
            self.shedder.metrics().active_requests,
            1 - self.bulkhead.available_slots(),
        )
    }
}

fn request(path: &str) -> http::Request<Body> {
    let mut request = http::Request::get(path).body(Body::empty()).unwrap();
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn a_refusal_by_a_later_step_gives_the_earlier_slots_back() {
    let steps = Steps::new(0);
    steps.breaker.force_open();
    let response = steps.app().oneshot(request("/")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(steps.active(), (0, 0));
}

#[tokio::test]
async fn a_request_given_up_while_the_service_runs_gives_every_slot_back() {
    let steps = Steps::new(0);
    {
        let mut call = pin!(steps.app().oneshot(request("/never")));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(steps.active(), (1, 1), "held while the service runs");
    }
    assert_eq!(
        steps.active(),
        (0, 0),
        "given back when the request is dropped"
    );
    let metrics = steps.breaker.metrics();
    assert_eq!(
        (metrics.successful_requests, metrics.failed_requests),
        (0, 0),
        "a request given up is no outcome"
    );
}

#[tokio::test]
async fn a_request_given_up_while_queued_gives_back_what_it_took() {
    let steps = Steps::new(1);
    let app = steps.app();
    let mut running = Box::pin(app.clone().oneshot(request("/never")));
    assert!(poll_once(running.as_mut()).is_pending());
    {
        let mut queued = pin!(app.clone().oneshot(request("/")));
        assert!(poll_once(queued.as_mut()).is_pending());
        assert_eq!(
            steps.active(),
            (2, 1),
            "the queued request holds a shedder slot"
        );
    }
    assert_eq!(
        steps.active(),
        (1, 1),
        "given back when the queued request is dropped"
    );
    {
        // Called, never polled: admitted by the shedder and queued at the bulkhead all the
        // same.
        let mut service = app.clone();
        let ready = ServiceExt::<http::Request<Body>>::ready(&mut service).await;
        let _unpolled = ready.unwrap().call(request("/"));
        assert_eq!(steps.active(), (2, 1));
    }
    assert_eq!(
        steps.active(),
        (1, 1),
        "given back when the unpolled request is dropped"
    );
    drop(running);
    assert_eq!(steps.active(), (0, 0));
}

#[tokio::test]
async fn an_answered_request_gives_every_slot_back_when_its_body_ends() {
    let steps = Steps::new(0);
    let response = steps.app().oneshot(request("/")).await.unwrap();
    assert_eq!(steps.active(), (1, 1), "held by the body");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    assert_eq!(steps.active(), (0, 0));
    assert_eq!(steps.breaker.metrics().successful_requests, 1);
}
