//! A reqwest client with retries, a circuit breaker per host and a timeout, against a flaky
//! server on loopback: the first answer is a 503, the retry gets the 200; then a host that
//! always fails gets its circuit opened while the healthy one is still served. Last, the
//! same stack sent directly through a bare `reqwest::Client` (`send_with`), without
//! `reqwest-middleware`.
//!
//! ```text
//! cargo run -p resilience-reqwest --example client
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use resilience::circuit_breaker::KeyedCircuitBreaker;
use resilience::retry::{Backoff, BudgetConfig};
use resilience::{Retry, Timeout};
use resilience_reqwest::{Attempts, ClientError, ResilientMiddleware, SendWith};

/// A server whose first `failures` answers are `status`, then 200s.
async fn server(failures: usize, status: StatusCode) -> anyhow::Result<String> {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(move || {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                status
            } else {
                StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/items", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let middleware = ResilientMiddleware::builder()
        .retry(
            Retry::builder("upstream")
                .max_attempts(3)
                .backoff(Backoff::exponential(Duration::from_millis(50), 2.0))
                .budget(BudgetConfig::default())
                .build()?,
        )
        .breaker_per_host(
            KeyedCircuitBreaker::builder("hosts")
                .failure_threshold(3)
                .open_duration(Duration::from_secs(30))
                .build()?,
        )
        .timeout(Timeout::new(Duration::from_secs(2))?)
        .build()?;
    // Clones share the retry budget and the breakers: the direct sends below count with
    // the middleware's.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware.clone())
        .build();

    let flaky = server(1, StatusCode::SERVICE_UNAVAILABLE).await?;
    let response = client.get(&flaky).send().await?;
    let attempts = response.extensions().get::<Attempts>().map_or(1, |a| a.0);
    println!(
        "flaky host: {} after {attempts} attempts",
        response.status()
    );

    let down = server(usize::MAX, StatusCode::INTERNAL_SERVER_ERROR).await?;
    for _ in 0..4 {
        match client.get(&down).send().await.map_err(ClientError::from) {
            Ok(response) => println!("down host: {}", response.status()),
            Err(ClientError::Rejected(rejection)) => println!("down host: not sent, {rejection}"),
            Err(other) => return Err(other.into()),
        }
    }
    println!(
        "flaky host again: {}",
        client.get(&flaky).send().await?.status()
    );

    // The same stack without reqwest-middleware: errors are `ClientError` at once.
    let bare = reqwest::Client::new();
    let retried = server(2, StatusCode::BAD_GATEWAY).await?;
    let response = bare.get(&retried).send_with(&middleware).await?;
    let attempts = response.extensions().get::<Attempts>().map_or(1, |a| a.0);
    println!(
        "sent directly: {} after {attempts} attempts",
        response.status()
    );
    match bare.get(&down).send_with(&middleware).await {
        Ok(response) => println!("sent directly to the down host: {}", response.status()),
        Err(error) => println!("sent directly to the down host: {error}"),
    }
    Ok(())
}
