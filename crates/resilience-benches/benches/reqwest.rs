//! Requests per second of a `reqwest` client through `resilience-reqwest` (retry and a
//! breaker per host on, then with a timeout too), sent directly (`send_with`) and as a
//! `reqwest-middleware` middleware, against bare reqwest, the same client through
//! `reqwest-middleware` with no middleware and with one middleware that only passes the
//! request on, and TrueLayer's `reqwest-retry`, over real HTTP on loopback, with this file's
//! own load generator.
//!
//! ```text
//! cargo bench -p resilience-benches --bench reqwest
//! ```
//!
//! One axum server answers `200 ok`. Each client sends `REQUESTS` requests with
//! `CONCURRENCY` in flight, then one at a time, the clients taking turns over `ROUNDS` rounds
//! (each round starting with another client) so all see the same machine load. Printed:
//! each client's median rate, and the median over rounds of its rate as a share of bare
//! reqwest's in the same round (a round's clients run back to back, so a shift of the
//! machine's load moves them together), with that share as a cost per request.
//! Nothing fails, so no retry runs: this is the price of the happy path. Loopback only;
//! bounded in count. Client and server share the machine's cores, so every microsecond of
//! client CPU shows; `benches/reqwest_overhead.rs` measures the same stacks' CPU cost per
//! request without the network.
//!
//! The pass-through middleware (`next.run(request, extensions).await`) is the floor of any
//! one middleware: `reqwest-middleware` boxes the middleware's future and the client call's,
//! and calls both through `dyn`. The direct rows send through the same stack without the
//! framework.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use resilience_benches::median;
use resilience_reqwest::{ResilientMiddleware, SendWith};
use stack::{breaker, retry, timeout};

#[path = "common/reqwest_stack.rs"]
mod stack;
use tokio::sync::Semaphore;
use tokio::time::Instant;

const CONCURRENCY: usize = 32;
const REQUESTS: usize = 6_000;
const ROUNDS: usize = 15;

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The clients under test, all over one connection pool configuration.
#[derive(Clone)]
enum Client {
    Bare(reqwest::Client),
    Middleware(ClientWithMiddleware),
    Direct(reqwest::Client, ResilientMiddleware),
}

impl Client {
    async fn get(&self, url: &str) -> reqwest::Response {
        match self {
            Self::Bare(client) => client.get(url).send().await.expect("answered"),
            Self::Middleware(client) => client.get(url).send().await.expect("answered"),
            Self::Direct(client, stack) => {
                client.get(url).send_with(stack).await.expect("answered")
            }
        }
    }
}

/// A middleware that only passes the request on: the framework's own cost of one
/// middleware.
struct PassThrough;

#[async_trait::async_trait]
impl Middleware for PassThrough {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        next.run(request, extensions).await
    }
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("a client")
}

/// Ours with retry and a breaker per host on, and a timeout too when `with_timeout`.
fn stack(with_timeout: bool) -> ResilientMiddleware {
    let builder = breaker(retry(ResilientMiddleware::builder()));
    let builder = if with_timeout {
        timeout(builder)
    } else {
        builder
    };
    builder.build().expect("valid")
}

/// Ours as a `reqwest-middleware` middleware.
fn ours(with_timeout: bool) -> Client {
    Client::Middleware(
        reqwest_middleware::ClientBuilder::new(reqwest_client())
            .with(stack(with_timeout))
            .build(),
    )
}

/// Ours sent directly, without `reqwest-middleware`.
fn ours_direct(with_timeout: bool) -> Client {
    Client::Direct(reqwest_client(), stack(with_timeout))
}

fn reqwest_retry() -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder().build_with_max_retries(2);
    reqwest_middleware::ClientBuilder::new(reqwest_client())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build()
}

/// Sends `count` requests with `in_flight` at a time; returns requests per second.
///
/// The tasks share the client and the URL behind one `Arc`: a clone of a
/// `ClientWithMiddleware` allocates (its middleware list), a bare client's does not, and
/// neither cost is a middleware's.
async fn load(client: &Client, url: &str, count: usize, in_flight: usize) -> f64 {
    let slots = Arc::new(Semaphore::new(in_flight));
    let shared = Arc::new((client.clone(), url.to_owned()));
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = Arc::clone(&slots).acquire_owned().await.expect("open");
        let shared = Arc::clone(&shared);
        requests.spawn(async move {
            let (client, url) = &*shared;
            let response = client.get(url).await;
            assert_eq!(response.status(), 200, "nothing may fail");
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
    let url = format!("http://{}/", serve().await);
    let clients = [
        ("reqwest bare", Client::Bare(reqwest_client())),
        (
            "reqwest-middleware, empty",
            Client::Middleware(reqwest_middleware::ClientBuilder::new(reqwest_client()).build()),
        ),
        (
            "reqwest-middleware, pass-through",
            Client::Middleware(
                reqwest_middleware::ClientBuilder::new(reqwest_client())
                    .with(PassThrough)
                    .build(),
            ),
        ),
        ("reqwest-retry", Client::Middleware(reqwest_retry())),
        ("ours: retry+breaker", ours(false)),
        ("ours: retry+breaker+timeout", ours(true)),
        ("ours direct: retry+breaker", ours_direct(false)),
        ("ours direct: +timeout", ours_direct(true)),
    ];
    for (_, client) in &clients {
        load(client, &url, requests / 10, CONCURRENCY).await;
    }
    for (in_flight, count) in [(CONCURRENCY, requests), (1, requests / 4)] {
        let mut rates = vec![Vec::new(); clients.len()];
        for round in 0..rounds {
            for turn in 0..clients.len() {
                let index = (round + turn) % clients.len();
                rates[index].push(load(&clients[index].1, &url, count, in_flight).await);
            }
        }
        let bare = median(&mut rates[0].clone());
        println!("reqwest: {count} requests x {rounds} rounds, {in_flight} in flight, loopback");
        for ((name, _), own) in clients.iter().zip(&rates) {
            let share = median(
                &mut own
                    .iter()
                    .zip(&rates[0])
                    .map(|(rate, bare)| rate / bare)
                    .collect::<Vec<_>>(),
            );
            println!(
                "  {name:<34} {:>10.0} requests/s ({:>5.1} % of bare, {:>+6.2} µs per request)",
                median(&mut own.clone()),
                share * 100.0,
                (1.0 / share - 1.0) / bare * 1e6
            );
        }
    }
}
