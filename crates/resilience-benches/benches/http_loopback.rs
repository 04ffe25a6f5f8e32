//! Requests per second through `resilience-http`'s composite layer against the same axum app
//! without it, over real HTTP on loopback, with this file's own load generator.
//!
//! ```text
//! cargo bench -p resilience-benches --bench http_loopback
//! ```
//!
//! Two servers run in this process: the bare app and the same app behind the composite layer
//! (rate limit, load shed, bulkhead, circuit breaker, timeout, with limits high enough that
//! nothing is refused). A keep-alive client with `CONCURRENCY` requests in flight sends
//! `REQUESTS` requests to each, alternating over `ROUNDS` rounds so both see the same machine
//! load, and prints requests per second and the overhead per request in microseconds.
//! Loopback only; bounded in count.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[path = "common/http_composite.rs"]
mod http_composite;
use http_composite::composite;

const CONCURRENCY: usize = 32;
const REQUESTS: usize = 20_000;
const ROUNDS: usize = 3;

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
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
    let protected = format!("http://{}/", serve(app().layer(composite())).await);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("a client");
    load(&client, &bare, requests / 10).await;
    load(&client, &protected, requests / 10).await;

    let (mut bare_rps, mut protected_rps) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare_rps.push(load(&client, &bare, requests).await);
        protected_rps.push(load(&client, &protected, requests).await);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (bare, protected) = (median(&mut bare_rps), median(&mut protected_rps));
    println!("http_loopback: {requests} requests x {rounds} rounds, {CONCURRENCY} in flight");
    println!("  axum bare:            {bare:>10.0} requests/s");
    println!(
        "  composite layer:      {protected:>10.0} requests/s ({:.1} % of bare)",
        protected / bare * 100.0
    );
    // Time per request at full throughput, both machine cores shared by client and servers.
    println!(
        "  cost per request:     {:>10.2} µs more than bare",
        (1.0 / protected - 1.0 / bare) * 1e6
    );
}
