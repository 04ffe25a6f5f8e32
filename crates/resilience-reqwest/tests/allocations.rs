//! Heap allocations of one request through the middleware, counted with `dhat`, the network
//! taken out (a last middleware answers at once): what retries and a breaker per host add to
//! a request that succeeds at once. Then the same stack sent directly (`send_with`), against
//! bare reqwest over loopback, on one thread.
//!
//! Its own harness on the main thread (`harness = false`): the allocator counts every thread
//! of the process, and libtest's would allocate in the middle of a measurement.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use resilience::circuit_breaker::KeyedCircuitBreaker;
use resilience::retry::{Backoff, BudgetConfig};
use resilience::Retry;
use resilience_reqwest::{ResilientMiddleware, ResilientMiddlewareBuilder, SendWith};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The network, taken out: every request is answered `200` at once.
struct Answer;

#[async_trait::async_trait]
impl Middleware for Answer {
    async fn handle(
        &self,
        _: Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        Ok(Response::from(http::Response::new("ok")))
    }
}

fn client(
    build: impl FnOnce(ResilientMiddlewareBuilder) -> ResilientMiddlewareBuilder,
) -> ClientWithMiddleware {
    let middleware = build(ResilientMiddleware::builder()).build().unwrap();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .with(Answer)
        .build()
}

/// Polls a future that is ready at once, without a runtime (which could allocate itself).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the request was expected to be answered at once"),
    }
}

/// Blocks allocated by one GET through `client`, after a warm-up.
fn per_request(client: &ClientWithMiddleware, url: &reqwest::Url) -> u64 {
    let send = || {
        let response = ready(client.get(url.clone()).send()).unwrap();
        assert_eq!(response.status(), 200);
    };
    send();
    let before = dhat::HeapStats::get().total_blocks;
    send();
    dhat::HeapStats::get().total_blocks - before
}

fn retry_and_breaker(builder: ResilientMiddlewareBuilder) -> ResilientMiddlewareBuilder {
    builder
        .retry(
            Retry::builder("alloc")
                .max_attempts(3)
                .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
                .budget(BudgetConfig::default())
                .build()
                .unwrap(),
        )
        .breaker_per_host(KeyedCircuitBreaker::builder("alloc").build().unwrap())
}

/// The fewest blocks one of a few GETs allocated, after a warm-up: the server, the pool and
/// the runtime share the thread, and the fewest is what the request itself costs.
async fn fewest<F, Fut>(mut get: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    let mut send = async || {
        let response = get().await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    };
    send().await;
    let mut fewest = u64::MAX;
    for _ in 0..8 {
        let before = dhat::HeapStats::get().total_blocks;
        send().await;
        fewest = fewest.min(dhat::HeapStats::get().total_blocks - before);
    }
    fewest
}

/// Bare reqwest's blocks per GET over loopback, and the direct stack's.
fn loopback() -> (u64, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let stack = retry_and_breaker(ResilientMiddleware::builder())
            .build()
            .unwrap();
        let bare = fewest(|| async { client.get(&url).send().await.unwrap() }).await;
        let direct = fewest(|| async { client.get(&url).send_with(&stack).await.unwrap() }).await;
        (bare, direct)
    })
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let url = reqwest::Url::parse("http://127.0.0.1:8080/items").unwrap();
    let nothing = per_request(&client(|builder| builder), &url);
    let retried = per_request(&client(retry_and_breaker), &url);
    // The request's copy for a retry, which owns its URL; nothing else: no clone of the
    // headers' storage or the extensions, no second boxed future, no timer.
    assert_eq!(
        retried,
        nothing + 1,
        "retry and breaker: {retried} blocks, nothing on: {nothing}"
    );
    println!("test retry_and_a_breaker_add_one_allocation_a_request ... ok");

    let (bare, direct) = loopback();
    // The same copy's URL, and nothing else: no boxed future at all.
    assert_eq!(
        direct,
        bare + 1,
        "sent directly: {direct} blocks, bare reqwest: {bare}"
    );
    println!("test sent_directly_retry_and_a_breaker_add_one_allocation_a_request ... ok");
}
