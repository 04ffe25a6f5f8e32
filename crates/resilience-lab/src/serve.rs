//! `--serve ADDR`: the scenario round after round, with `/metrics` for Prometheus (the
//! `resilience-prometheus` recorder) and a live page at `/`.
//!
//! Every round is a normal run on loopback (its own upstreams, gateways and traffic plan, at
//! the scenario's rate), so the traffic stays bounded by the scenario; only the server on
//! `ADDR` outlives the rounds. Instances of a new round register the same series as the
//! last round's, so counters keep counting across rounds, as in a long-lived service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use resilience_prometheus::PrometheusHandle;
use resilience_redis::RedisBackend;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::live::Live;
use crate::run;
use crate::scenario::Scenario;

/// How often the live page's figures are refreshed.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Serves on `address` and runs rounds until `stop` turns true or `rounds` are done; returns
/// whether it was stopped. Installs the Prometheus recorder, so call it before any pattern
/// instance is built.
pub(crate) async fn serve(
    address: SocketAddr,
    scenario: Arc<Scenario>,
    stop: watch::Receiver<bool>,
    redis: Option<&RedisBackend>,
    rounds: Option<u64>,
) -> anyhow::Result<bool> {
    let handle = resilience_prometheus::install().context("installing the Prometheus recorder")?;
    let live = Live::new(handle.clone());
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("--serve {address}: cannot listen there"))?;
    let address = listener.local_addr()?;
    println!("serving http://{address}/ (live page) and http://{address}/metrics (Prometheus)");
    tokio::spawn(live.clone().sample_every(SAMPLE_EVERY));
    let app = routes(handle, live.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut round = 0;
    while !*stop.borrow() && rounds.is_none_or(|rounds| round < rounds) {
        round += 1;
        live.start_round(round, Arc::clone(&scenario));
        let (report, ..) = run::run(&scenario, stop.clone(), redis).await?;
        let p = &report.protected;
        println!(
            "round {round}: sent {}, fresh {}, fallback {}, rejected {}",
            p.sent,
            p.fresh,
            p.fallback,
            p.rejected.values().sum::<u64>()
        );
    }
    let stopped = *stop.borrow();
    Ok(stopped)
}

fn routes(handle: PrometheusHandle, live: Live) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response()
                }
            }),
        )
        .route("/", get(move || async move { Html(live.page()) }))
}
