//! A gateway protected by the composite layer, in front of a flaky upstream, all on
//! 127.0.0.1: inbound, rate limit → load shed → bulkhead → circuit breaker → timeout, with a
//! fallback around them; outbound, the upstream call is retried through a hyper client.
//!
//! ```text
//! cargo run -p resilience-http --example axum_gateway [PORT]
//! curl -i http://127.0.0.1:3000/api/items
//! ```
//!
//! Slow clients: the composite gives a request's slots back when its response body has
//! waited 30 s for the client to read (`CompositeLayer::body_idle_timeout`), which covers
//! clients that stop reading the answer. Clients slow to *send* their request head are the
//! server's to bound: `axum::serve` sets no timer, so hyper's header-read timeout is off
//! there. To have it, serve each accepted connection with hyper-util instead:
//!
//! ```text
//! let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
//! builder.http1().timer(hyper_util::rt::TokioTimer::new())
//!     .header_read_timeout(Duration::from_secs(10));
//! builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)).await
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use resilience::load_shed::LoadShedder;
use resilience::rate_limit::LocalRateLimiter;
use resilience::retry::{Backoff, Retry};
use resilience::{Bulkhead, CircuitBreaker, Timeout};
use resilience_http::{
    CompositeLayer, ExcludePaths, HttpFallbackLayer, HttpRetryLayer, HttpRetryService, ReplayBody,
};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

type Upstream = (
    HttpRetryService<Client<HttpConnector, ReplayBody<Body>>>,
    SocketAddr,
);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(Ok(3000), |port| port.parse())?;
    let upstream = spawn_upstream().await?;
    let retry = Retry::builder("upstream")
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(20), 2.0))
        .build()?;
    let client =
        HttpRetryLayer::new(retry).layer(Client::builder(TokioExecutor::new()).build_http());

    let protection = CompositeLayer::new()
        .rate_limit(
            LocalRateLimiter::builder("gateway")
                .rate("100/second".parse()?)
                .build()?,
        )
        .load_shed(LoadShedder::builder("gateway").max_requests(200).build()?)
        .bulkhead(
            Bulkhead::builder("gateway")
                .max_concurrent(32)
                .max_waiting(64)
                .build()?,
        )
        .circuit_breaker(
            CircuitBreaker::builder("upstream")
                .failure_threshold(5)
                .open_duration(Duration::from_secs(2))
                .build()?,
        )
        .timeout(Timeout::new(Duration::from_millis(300))?)
        .exclude(ExcludePaths::none().exact("/health"));
    let degraded = Response::builder()
        .header("x-fallback", "1")
        .body(Bytes::from_static(br#"{"items":[]}"#))?;

    let app = Router::new()
        .route("/api/{*path}", get(proxy))
        .route("/health", get(|| async { "ok" }))
        .with_state((client, upstream))
        .layer(protection)
        .layer(HttpFallbackLayer::response(degraded));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "gateway on http://{}/api/items, upstream on {upstream}",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Forwards the request to the upstream, retried by the client when it may be.
async fn proxy(State((client, upstream)): State<Upstream>, request: Request) -> impl IntoResponse {
    let (mut parts, body) = request.into_parts();
    parts.uri = format!("http://{upstream}{}", parts.uri.path())
        .parse()
        .expect("a valid URI");
    match client.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(Body::new).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// An upstream that fails every fourth request and is slow every seventh.
async fn spawn_upstream() -> std::io::Result<SocketAddr> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route(
        "/{*path}",
        get(|| async {
            let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            if call % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if call % 4 == 0 {
                return (StatusCode::SERVICE_UNAVAILABLE, "upstream busy");
            }
            (StatusCode::OK, r#"{"items":[1,2,3]}"#)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}
