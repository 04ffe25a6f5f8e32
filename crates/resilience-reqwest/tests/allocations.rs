//! Heap allocations of one request through the middleware, counted with `dhat`, the network
//! taken out (a last middleware answers at once): what retries and a breaker per host add to
//! a request that succeeds at once.
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
use resilience_reqwest::{ResilientMiddleware, ResilientMiddlewareBuilder};

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

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let url = reqwest::Url::parse("http://127.0.0.1:8080/items").unwrap();
    let nothing = per_request(&client(|builder| builder), &url);
    let retried = per_request(
        &client(|builder| {
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
        }),
        &url,
    );
    // The request's copy for a retry, which owns its URL; nothing else: no clone of the
    // headers' storage or the extensions, no second boxed future, no timer.
    assert_eq!(
        retried,
        nothing + 1,
        "retry and breaker: {retried} blocks, nothing on: {nothing}"
    );
    println!("test retry_and_a_breaker_add_one_allocation_a_request ... ok");
}
