//! Prometheus for `resilience`: the recorder its metrics go to, and a `/metrics` endpoint.
//!
//! The core records through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`; the names are in `resilience::telemetry`). This crate installs
//! `metrics-exporter-prometheus`'s recorder with buckets for the `_seconds` histograms, and
//! serves its exposition text on a listener of your choice.
//!
//! Why `metrics-exporter-prometheus` rather than `prometheus-client`: it *is* a `metrics`
//! recorder, so the core's kept handles write straight into it with no bridge and no second
//! registry; `prometheus-client` would need an adapter from the facade.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use resilience::CircuitBreaker;
//!
//! // First the recorder, then the instances: each registers its handles when built.
//! let handle = resilience_prometheus::install()?;
//! let breaker = CircuitBreaker::builder("payments").build()?;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
//! tokio::spawn(resilience_prometheus::serve(listener, handle));
//! # Ok(())
//! # }
//! ```

use std::io;

pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusRecorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use resilience::telemetry::SECONDS_BUCKETS;

/// A Prometheus recorder with [`SECONDS_BUCKETS`] for the `_seconds` histograms, not
/// installed: use it with `metrics::with_local_recorder` or `metrics::set_global_recorder`,
/// and render with [`PrometheusRecorder::handle`].
///
/// # Errors
///
/// Never with these buckets; the type is the exporter's.
pub fn recorder() -> Result<PrometheusRecorder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .build_recorder())
}

/// Installs [`recorder`] as the process's global `metrics` recorder and returns the handle
/// that renders it. Call it before building instances.
///
/// # Errors
///
/// If a global recorder is already installed.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let recorder = recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    Ok(handle)
}

/// Serves the exposition text of `handle` to every HTTP request on `listener` (any path; a
/// scraper asks for `/metrics`), one connection at a time per task, until accepting fails.
///
/// A deliberately small HTTP/1.x responder (read the request head, answer, close): a scrape
/// endpoint needs no router, and this keeps hyper out of the dependencies.
///
/// # Errors
///
/// When accepting a connection fails.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &handle).await;
        });
    }
}

async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    // Read the request head; its content does not matter.
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let body = handle.render();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
