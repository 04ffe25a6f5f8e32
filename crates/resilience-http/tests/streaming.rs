//! Slots follow the response body: a streamed answer holds its bulkhead slot until the
//! client has read the last chunk; a client that goes away gives it back. Upstream 5xx
//! answers reach the client unchanged and open the circuit after the threshold.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{client, eventually, header, json, Server};
use http::StatusCode;
use resilience::adaptive::AdaptiveLimiter;
use resilience::circuit_breaker::CircuitState;
use resilience::{Bulkhead, CircuitBreaker};
use resilience_http::{CompositeLayer, HttpStageLayer};
use tokio::sync::mpsc;

type Chunks = mpsc::Sender<Bytes>;

/// `/stream` answers at once with a body fed, chunk by chunk, by the test through the sender
/// it finds in `feeds`; `/` answers at once.
fn streaming(feeds: Arc<Mutex<Vec<mpsc::Receiver<Bytes>>>>) -> Router {
    Router::new().route("/", get(|| async { "hello" })).route(
        "/stream",
        get(move || {
            let receiver = feeds.lock().unwrap().pop().expect("a feed per request");
            async move {
                let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
                    let chunk = receiver.recv().await?;
                    Some((Ok::<_, Infallible>(chunk), receiver))
                });
                Body::from_stream(chunks)
            }
        }),
    )
}

fn feed(feeds: &Arc<Mutex<Vec<mpsc::Receiver<Bytes>>>>) -> Chunks {
    let (sender, receiver) = mpsc::channel(4);
    feeds.lock().unwrap().push(receiver);
    sender
}

#[tokio::test]
async fn a_streaming_response_holds_its_bulkhead_slot_until_the_last_chunk() {
    let bulkhead = Bulkhead::builder("downloads")
        .max_concurrent(1)
        .build()
        .unwrap();
    let feeds = Arc::default();
    let app = streaming(Arc::clone(&feeds)).layer(HttpStageLayer::new(bulkhead.clone()));
    let server = Server::start(app).await;
    let client = client();

    let chunks = feed(&feeds);
    let mut download = client.get(server.url("/stream")).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    // The handler has returned; the slot is still taken while the body streams.
    assert_eq!(bulkhead.active(), 1);
    for part in ["one ", "two "] {
        chunks.send(Bytes::from(part)).await.unwrap();
        assert_eq!(download.chunk().await.unwrap().unwrap(), part);
        assert_eq!(bulkhead.active(), 1, "held after chunk {part:?}");
        let refused = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    drop(chunks);
    assert!(
        download.chunk().await.unwrap().is_none(),
        "the end of the body"
    );
    eventually(|| bulkhead.active() == 0).await;
    let served = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);

    let metrics = bulkhead.metrics();
    assert_eq!(
        metrics.successful_requests, 2,
        "the stream and the last request"
    );
    assert_eq!(metrics.rejected_requests, 2);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_gives_the_slot_back() {
    let bulkhead = Bulkhead::builder("downloads")
        .max_concurrent(1)
        .build()
        .unwrap();
    let feeds = Arc::default();
    let app = streaming(Arc::clone(&feeds)).layer(CompositeLayer::new().bulkhead(bulkhead.clone()));
    let server = Server::start(app).await;

    let chunks = feed(&feeds);
    let mut download = client().get(server.url("/stream")).send().await.unwrap();
    chunks.send(Bytes::from("first")).await.unwrap();
    assert_eq!(download.chunk().await.unwrap().unwrap(), "first");
    assert_eq!(bulkhead.active(), 1);
    drop(download);
    // The server notices the closed connection when it next writes, or at once.
    let _ = chunks.send(Bytes::from("unread")).await;
    eventually(|| bulkhead.active() == 0).await;
    let metrics = bulkhead.metrics();
    assert_eq!(
        metrics.ignored_requests, 1,
        "an abandoned body says nothing about the service"
    );
}

#[tokio::test]
async fn an_upstream_502_reaches_the_client_and_opens_the_circuit_after_the_threshold() {
    let breaker = CircuitBreaker::builder("upstream")
        .failure_threshold(3)
        .open_duration(Duration::from_millis(1500))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                (
                    StatusCode::BAD_GATEWAY,
                    [("x-upstream", "down")],
                    "upstream refused the connection",
                )
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(HttpStageLayer::new(breaker.clone()));
    let server = Server::start(app).await;
    let client = client();

    // 4xx answers are the service's answers, not failures.
    for _ in 0..5 {
        let missing = client.get(server.url("/missing")).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
    for attempt in 1..=3 {
        let response = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_GATEWAY,
            "attempt {attempt}"
        );
        assert_eq!(header(&response, "x-upstream"), "down");
        assert_eq!(
            response.text().await.unwrap(),
            "upstream refused the connection"
        );
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.failed_requests, metrics.successful_requests),
        (3, 5)
    );

    let open = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header(&open, "retry-after"),
        "2",
        "1.5 s of open time left, rounded up"
    );
    assert_eq!(json(open).await["reason"], "circuit_open");
    assert_eq!(breaker.metrics().rejected_requests, 1);
}

#[tokio::test]
async fn a_5xx_is_a_failure_for_the_adaptive_limiter_too_and_reaches_the_client() {
    let limiter = AdaptiveLimiter::builder("search").build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded upstream") }),
        )
        .layer(HttpStageLayer::new(limiter.clone()));
    let server = Server::start(app).await;
    let client = client();
    for _ in 0..2 {
        let failed = client.get(server.url("/fail")).send().await.unwrap();
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(failed.text().await.unwrap(), "overloaded upstream");
    }
    for _ in 0..3 {
        let served = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(served.text().await.unwrap(), "hello");
    }
    eventually(|| limiter.in_flight() == 0).await;
    let metrics = limiter.metrics();
    assert_eq!((metrics.failure_count, metrics.success_count), (2, 3));
}

#[tokio::test]
async fn the_answer_to_a_head_request_is_complete_with_its_head() {
    // hyper never polls the body of an answer to HEAD: the slot must not wait for it, and the
    // request is a success, not an abandoned body.
    let bulkhead = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(HttpStageLayer::new(bulkhead.clone()));
    let server = Server::start(app).await;
    for _ in 0..3 {
        let response = client().head(server.url("/")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    eventually(|| bulkhead.active() == 0).await;
    let metrics = bulkhead.metrics();
    assert_eq!(
        (metrics.successful_requests, metrics.ignored_requests),
        (3, 0)
    );
}
