//! The flaky upstream: an HTTP service on loopback whose latency and failure rate follow the
//! scenario's phases.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::scenario::Scenario;

struct Upstream {
    scenario: Arc<Scenario>,
    started: Instant,
    rng: Mutex<fastrand::Rng>,
}

/// Starts an upstream on a free loopback port; it serves until the runtime ends.
pub(crate) async fn start(
    scenario: Arc<Scenario>,
    started: Instant,
    seed: u64,
) -> anyhow::Result<SocketAddr> {
    let upstream = Arc::new(Upstream {
        scenario,
        started,
        rng: Mutex::new(fastrand::Rng::with_seed(seed)),
    });
    let app = Router::new().route("/work", get(work)).with_state(upstream);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn work(State(upstream): State<Arc<Upstream>>) -> (StatusCode, &'static str) {
    let (_, phase) = upstream.scenario.phase_at(upstream.started.elapsed());
    let (latency, failure_rate) = (phase.latency, phase.failure_rate);
    let fails = upstream
        .rng
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .f64()
        < failure_rate;
    tokio::time::sleep(latency).await;
    if fails {
        (StatusCode::SERVICE_UNAVAILABLE, "upstream failure")
    } else {
        (StatusCode::OK, "fresh")
    }
}
