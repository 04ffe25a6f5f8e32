//! HTTP: the per-request cost of `resilience-http`'s layers, in process: the same axum
//! `Router` called through `tower::ServiceExt::oneshot` with and without them.
//!
//! ```text
//! cargo bench -p resilience-benches --bench http -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Group `http/oneshot`, each entry one whole request: build the `Request` (with the
//! `ConnectInfo` axum's server would add), route it, run the handler (`async { "ok" }`),
//! collect the response body (which is when permits go back). Each router is finalised with
//! `with_state(())` first, as `axum::serve` does:
//!
//! * `axum_bare`: the router alone, the baseline;
//! * `composite`: the `CompositeLayer` with all five steps (a keyed rate limit by client IP,
//!   the load shedder reading `X-Priority`, a bulkhead, a circuit breaker, a timeout);
//! * `rate_limit`, `bulkhead`, `circuit_breaker`, `timeout`: one layer each, to see where the
//!   composite's cost goes;
//! * `peers_composite`: the same five steps from the peers, in the same order, as a user
//!   would stack them without this crate: tower_governor keyed by the peer's IP with its
//!   `x-ratelimit-*` headers on admitted responses (ours sends its `RateLimit-*` ones),
//!   tower's `LoadShed` over a `ConcurrencyLimit` (the load shedder and the bulkhead),
//!   tower-resilience's circuit breaker and tower-http's timeout, with axum's
//!   `HandleErrorLayer` turning the refusals into responses.
//!
//! The overhead per request is an entry's time minus `axum_bare`'s. Because a busy machine
//! shifts entries measured seconds apart, `composite_minus_bare` measures that difference
//! directly: it alternates chunks of 32 bare and 32 composite requests and reports the
//! composite's extra time per request, so both sides see the same load. No socket is involved:
//! this is the layer's own cost, which a load generator on loopback (the lab) dilutes in
//! the kernel's. Futures are polled once with `now_or_never` inside an entered runtime (the
//! timeout needs its timer), as in the other benches: every entry completes on its first
//! poll, which [`check`] asserts before measuring, and limits are far above what a run uses,
//! so no entry measures a refusal.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Bulkhead, CircuitBreaker, Rate, Timeout};
use resilience_http::{HttpStageLayer, HttpTimeoutLayer, KeyedRateLimit};
use tower::ServiceExt;

#[path = "common/http_composite.rs"]
mod http_composite;
use http_composite::{composite, with_peers_composite};

const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

fn router() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn request() -> axum::http::Request<Body> {
    let mut request = axum::http::Request::get("/")
        .body(Body::empty())
        .expect("a request");
    request.extensions_mut().insert(ConnectInfo(PEER));
    request
}

/// One request through `app`, polled once; the body length, or `None` if anything was
/// pending or the answer was not a 200.
fn once(app: &Router) -> Option<usize> {
    let response = app.clone().oneshot(request()).now_or_never()?.ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .now_or_never()?
        .ok()?;
    Some(body.len())
}

fn check(name: &str, app: &Router) {
    assert_eq!(
        once(app),
        Some(2),
        "{name}: not answered at once with a 200"
    );
}

fn limiter() -> LocalRateLimiter {
    LocalRateLimiter::builder("bench")
        .rate(Rate::per_second(1_000_000_000))
        .build()
        .expect("valid")
}

fn bulkhead() -> Bulkhead {
    Bulkhead::builder("bench")
        .max_concurrent(1_024)
        .build()
        .expect("valid")
}

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder("bench").build().expect("valid")
}

fn timeout() -> Timeout {
    Timeout::new(Duration::from_secs(30)).expect("valid")
}

fn oneshot(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();

    let entries = [
        ("axum_bare", router()),
        ("composite", router().layer(composite(true))),
        (
            "rate_limit",
            router().layer(HttpStageLayer::new(KeyedRateLimit::new(limiter()))),
        ),
        ("bulkhead", router().layer(HttpStageLayer::new(bulkhead()))),
        (
            "circuit_breaker",
            router().layer(HttpStageLayer::new(breaker())),
        ),
        ("timeout", router().layer(HttpTimeoutLayer::new(timeout()))),
        ("peers_composite", with_peers_composite(router())),
    ];
    // What `axum::serve` does once (`into_make_service` calls `with_state(())`): turn the
    // handlers into routes. Without it, a `Router` called directly re-applies its layers to
    // the handler on every request.
    let entries = entries.map(|(name, app)| (name, app.with_state(())));

    let mut group = c.benchmark_group("http/oneshot");
    group.throughput(Throughput::Elements(1));
    for (name, app) in &entries {
        check(name, app);
        group.bench_function(*name, |b| b.iter(|| black_box(once(black_box(app)))));
    }
    let (bare, composite) = (&entries[0].1, &entries[1].1);
    group.bench_function("composite_minus_bare", |b| {
        b.iter_custom(|iters| paired_difference(bare, composite, iters));
    });
    group.finish();
}

/// The extra time `composite` takes over `bare` for `iters` requests each, measured in
/// alternating chunks so that both see the same machine.
fn paired_difference(bare: &Router, composite: &Router, iters: u64) -> Duration {
    const CHUNK: u64 = 32;
    let time = |app: &Router, count: u64| {
        let started = tokio::time::Instant::now();
        for _ in 0..count {
            black_box(once(black_box(app)));
        }
        started.elapsed()
    };
    let (mut extra, mut done) = (Duration::ZERO, 0);
    while done < iters {
        let count = CHUNK.min(iters - done);
        let base = time(bare, count);
        extra += time(composite, count).saturating_sub(base);
        done += count;
    }
    extra
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = oneshot
}
criterion_main!(benches);
