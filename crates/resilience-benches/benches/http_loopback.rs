//! Requests per second through `resilience-http`'s composite layer against the same axum app
//! without it, over real HTTP on loopback, with this file's own load generator.
//!
//! ```text
//! cargo bench -p resilience-benches --bench http_loopback
//! ```
//!
//! Servers run in this process: the bare app, the same app behind the composite layer (rate
//! limit, load shed, bulkhead, circuit breaker, timeout, with limits high enough that nothing
//! is refused), the composite without the `RateLimit-*` headers on admitted responses, and,
//! for reference, the bare app adding those three headers itself (what sending them costs,
//! whoever adds them), and the same five steps built from the peers (tower_governor by client
//! IP with its headers, tower's load shed and concurrency limit, tower-resilience's breaker,
//! tower-http's timeout). Each is compared with the bare app: a keep-alive client with
//! `CONCURRENCY` requests in flight sends `REQUESTS` requests to both in every one of `ROUNDS`
//! rounds, the server measured first alternating between rounds, and the bench prints the
//! median of the rounds' ratios (with their range), the median requests per second and the
//! overhead per request in microseconds. Loopback only; bounded in count.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use resilience_benches::median;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[path = "common/http_composite.rs"]
mod http_composite;
use http_composite::{composite, with_peers_composite};

const CONCURRENCY: usize = 32;
const REQUESTS: usize = 20_000;
const ROUNDS: usize = 9;

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// The same app answering with the composite's three `RateLimit-*` headers itself: what
/// sending them costs (writing, and the client's parsing), whoever adds them.
fn app_with_rate_limit_headers() -> Router {
    let headers = [
        ("ratelimit-limit", "1000000000"),
        ("ratelimit-remaining", "999999999"),
        ("ratelimit-reset", "1"),
    ];
    Router::new().route("/", get(move || async move { (headers, "ok") }))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    address
}

/// Sends `count` requests with `CONCURRENCY` in flight; returns requests per second.
async fn load(client: &reqwest::Client, url: &str, count: usize) -> f64 {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = Arc::clone(&slots).acquire_owned().await.expect("open");
        let (client, url) = (client.clone(), url.to_owned());
        requests.spawn(async move {
            let response = client.get(&url).send().await.expect("answered");
            assert_eq!(response.status(), 200, "nothing may be refused");
            response.bytes().await.expect("a body");
            drop(permit);
        });
    }
    while requests.join_next().await.is_some() {}
    count as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this without it: do a
    // quick smoke run then.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let (requests, rounds) = if quick { (200, 1) } else { (REQUESTS, ROUNDS) };
    let bare = format!("http://{}/", serve(app()).await);
    let protected = [
        ("composite layer", app().layer(composite(true))),
        (
            "composite, no RateLimit-* on 200s",
            app().layer(composite(false)),
        ),
        (
            "bare, its handler adding RateLimit-*",
            app_with_rate_limit_headers(),
        ),
        ("the peers' five steps", with_peers_composite(app())),
    ];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("a client");
    println!("http_loopback: {requests} requests x {rounds} rounds, {CONCURRENCY} in flight");
    for (name, app) in protected {
        let protected = format!("http://{}/", serve(app).await);
        compare(&client, &bare, (name, &protected), requests, rounds).await;
    }
}

/// Loads `bare` and `protected` in turn for `rounds` rounds and prints how they compare.
///
/// Each round measures both servers back to back, the first one alternating, so that
/// neither side always runs on a machine warmed (or loaded) by the other; the figure is the
/// median over rounds of the ratio within a round.
async fn compare(
    client: &reqwest::Client,
    bare: &str,
    (name, protected): (&str, &str),
    requests: usize,
    rounds: usize,
) {
    load(client, bare, requests / 10).await;
    load(client, protected, requests / 10).await;
    let (mut bare_rps, mut protected_rps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (bare_now, protected_now) = if round % 2 == 0 {
            let bare_now = load(client, bare, requests).await;
            (bare_now, load(client, protected, requests).await)
        } else {
            let protected_now = load(client, protected, requests).await;
            (load(client, bare, requests).await, protected_now)
        };
        bare_rps.push(bare_now);
        protected_rps.push(protected_now);
        ratios.push(protected_now / bare_now);
    }
    let (bare, protected) = (median(&mut bare_rps), median(&mut protected_rps));
    let ratio = median(&mut ratios);
    println!(
        "{name:<37} {:>5.1} % of bare (median of the rounds' ratios, {:.1}–{:.1} %); \
         {protected:.0} vs {bare:.0} requests/s; {:.2} µs more per request",
        ratio * 100.0,
        ratios[0] * 100.0,
        ratios[ratios.len() - 1] * 100.0,
        // Time per request at full throughput, both cores shared by client and servers.
        (1.0 / (bare * ratio) - 1.0 / bare) * 1e6
    );
}
