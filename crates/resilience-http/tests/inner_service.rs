//! What the layers do with the service inside them: the one `poll_ready` made ready is the
//! one called, and it is cloned only when a request's future must own it (an admission that
//! waits, a retry).

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use resilience::{Bulkhead, Timeout};
use resilience_http::{HttpFallbackLayer, HttpStageLayer, HttpTimeoutLayer};
use tower::{Layer, Service, ServiceExt};

/// How often the service was cloned and called.
#[derive(Debug, Default)]
struct Counts {
    clones: AtomicUsize,
    calls: AtomicUsize,
}

impl Counts {
    fn clones(&self) -> usize {
        self.clones.load(Ordering::SeqCst)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A service that answers "ok" at once and counts its clones and calls.
struct Counted(Arc<Counts>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.clones.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(&self.0))
    }
}

impl Service<Request<()>> for Counted {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

/// A service that cannot be cloned, answering "ok".
struct Unclonable;

impl Service<Request<()>> for Unclonable {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

fn request() -> Request<()> {
    Request::get("/").body(()).unwrap()
}

/// Sends one request through `service` and reads the whole answer: its status.
async fn send<S, B>(service: &mut S) -> StatusCode
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn requests_admitted_at_once_call_the_ready_service_without_cloning_it() {
    let counts = Arc::new(Counts::default());
    let bulkhead = Bulkhead::builder("api").max_concurrent(4).build().unwrap();
    let timeout = Timeout::new(Duration::from_secs(5)).unwrap();
    let mut service = HttpTimeoutLayer::new(timeout)
        .layer(HttpStageLayer::new(bulkhead).layer(Counted(Arc::clone(&counts))));
    for _ in 0..3 {
        assert_eq!(send(&mut service).await, StatusCode::OK);
    }
    assert_eq!(counts.calls(), 3);
    assert_eq!(counts.clones(), 0, "no request needed a service of its own");
}

#[tokio::test]
async fn a_request_that_waits_for_its_slot_owns_a_clone_of_the_ready_service() {
    let counts = Arc::new(Counts::default());
    let bulkhead = Bulkhead::builder("api")
        .max_concurrent(1)
        .max_waiting(1)
        .wait_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut service = HttpStageLayer::new(bulkhead.clone()).layer(Counted(Arc::clone(&counts)));

    // The first answer's body holds the only slot until it is read.
    let first = service
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    assert_eq!(counts.clones(), 0);

    let mut waiting = service.ready().await.unwrap().call(request());
    assert!((&mut waiting).now_or_never().is_none(), "no slot is free");
    assert_eq!(
        counts.clones(),
        1,
        "the waiting request owns the service it will call"
    );
    assert_eq!(counts.calls(), 1, "and calls it only once admitted");

    first.into_body().collect().await.unwrap();
    let second = waiting.await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(counts.calls(), 2);
    second.into_body().collect().await.unwrap();
    assert_eq!(bulkhead.available_slots(), 1);
}

#[tokio::test]
async fn a_fallback_takes_a_service_that_cannot_be_cloned() {
    let fallback = HttpFallbackLayer::response(Response::new(Bytes::from_static(b"later")));
    let mut service = fallback.layer(Unclonable);
    assert_eq!(send(&mut service).await, StatusCode::OK);
}
