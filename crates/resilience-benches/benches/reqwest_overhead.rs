//! The CPU cost of a client middleware stack per request, with the network taken out: a last
//! middleware answers `200` at once, so what is timed is building the request and passing
//! it through the stack.
//!
//! ```text
//! cargo bench -p resilience-benches --bench reqwest_overhead -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Group `reqwest/overhead`: `empty` (reqwest-middleware with only the answering
//! middleware), `reqwest_retry` (TrueLayer's `RetryTransientMiddleware`, the peer), then
//! ours with retry, a breaker per host and a timeout all on (`ours_full`), with nothing on
//! (`ours_nothing`), and each alone.
//! Over loopback (`benches/reqwest.rs`) one request costs tens of microseconds of CPU, so a
//! stack costing well under a microsecond here is a few percent of requests per second there.
//! Futures are polled once inside a current-thread runtime's context (the timeout arms a
//! timer); the `check` before each entry asserts the answer is ready on that first poll.
//!
//! Sent directly (`send_with`, no `reqwest-middleware`), the stack's next step is reqwest's
//! own client, which cannot answer without a connection: group `reqwest/loopback` sends one
//! GET at a time to an axum server on loopback, client and server on one current-thread
//! runtime, so each figure is the whole request's CPU time on one thread: bare reqwest
//! (`bare`), ours directly with retry, a breaker per host and a timeout (`ours_direct_full`),
//! and the same stack as a middleware (`ours_full`). The differences are the stacks' cost.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use resilience_benches::{check, poll_once};
use resilience_reqwest::{ResilientMiddleware, ResilientMiddlewareBuilder, SendWith};
use stack::{breaker, retry, timeout};

#[path = "common/reqwest_stack.rs"]
mod stack;

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
    with: impl FnOnce(reqwest_middleware::ClientBuilder) -> reqwest_middleware::ClientBuilder,
) -> ClientWithMiddleware {
    with(reqwest_middleware::ClientBuilder::new(
        reqwest::Client::new(),
    ))
    .with(Answer)
    .build()
}

fn ours(
    build: impl FnOnce(ResilientMiddlewareBuilder) -> ResilientMiddlewareBuilder,
) -> ClientWithMiddleware {
    let middleware = build(ResilientMiddleware::builder())
        .build()
        .expect("valid");
    client(|builder| builder.with(middleware))
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _context = runtime.enter();
    let mut group = c.benchmark_group("reqwest/overhead");
    group.throughput(Throughput::Elements(1));
    let url = reqwest::Url::parse("http://127.0.0.1:8080/items").expect("a URL");
    let clients = [
        ("empty", client(|builder| builder)),
        (
            "reqwest_retry",
            client(|builder| {
                builder.with(RetryTransientMiddleware::new_with_policy(
                    ExponentialBackoff::builder().build_with_max_retries(2),
                ))
            }),
        ),
        (
            "ours_full",
            ours(|builder| timeout(breaker(retry(builder)))),
        ),
        ("ours_nothing", ours(|builder| builder)),
        ("ours_retry", ours(retry)),
        ("ours_breaker", ours(breaker)),
        ("ours_timeout", ours(timeout)),
    ];
    for (name, client) in &clients {
        let mut entry = || {
            poll_once(client.get(url.clone()).send())
                .is_some_and(|answer| answer.is_ok_and(|response| response.status() == 200))
        };
        check(name, &mut entry);
        group.bench_function(*name, |b| b.iter(&mut entry));
    }
    group.finish();
}

/// One GET at a time over loopback: bare, sent directly through ours, and through ours as a
/// middleware.
fn loopback(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("bound"));
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });
    let client = reqwest::Client::new();
    let stack = timeout(breaker(retry(ResilientMiddleware::builder())))
        .build()
        .expect("valid");
    let middleware = reqwest_middleware::ClientBuilder::new(client.clone())
        .with(stack.clone())
        .build();
    let mut group = c.benchmark_group("reqwest/loopback");
    group.throughput(Throughput::Elements(1));
    let answered = |response: reqwest::Response| async move {
        response.status() == 200 && response.bytes().await.is_ok()
    };
    let mut bare =
        || runtime.block_on(async { answered(client.get(&url).send().await.expect("sent")).await });
    check("bare", &mut bare);
    group.bench_function("bare", |b| b.iter(&mut bare));
    let mut direct = || {
        runtime.block_on(async {
            answered(client.get(&url).send_with(&stack).await.expect("sent")).await
        })
    };
    check("ours_direct_full", &mut direct);
    group.bench_function("ours_direct_full", |b| b.iter(&mut direct));
    let mut through = || {
        runtime.block_on(async { answered(middleware.get(&url).send().await.expect("sent")).await })
    };
    check("ours_full", &mut through);
    group.bench_function("ours_full", |b| b.iter(&mut through));
    group.finish();
}

criterion_group!(benches, overhead, loopback);
criterion_main!(benches);
