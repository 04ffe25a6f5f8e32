//! The two gateways: one protected by the full stack (server-side admission control, and
//! fallback, retry, circuit breaker and timeout around its upstream calls), one with none.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use resilience::circuit_breaker::{CircuitBreaker, DetectorConfig, Window};
use resilience::pipeline::Pipeline;
use resilience::retry::Backoff;
use resilience::ConfigError;
use resilience::{Fallback, Retry, Timeout};
use resilience_redis::{RedisBackend, RedisCircuitBreaker, RedisRateLimiter};
use tokio::net::TcpListener;

use crate::loadgen::SERVED_BY;
use crate::scenario::GatewayConfig;

/// What the upstream answered, or the fallback in its place.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Fresh(String),
    Fallback,
}

/// Why an upstream call failed.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    Status(u16),
    Transport(String),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "upstream answered {status}"),
            Self::Transport(error) => write!(f, "upstream unreachable: {error}"),
        }
    }
}

/// The patterns of the protected gateway, kept for the report.
#[derive(Clone)]
pub(crate) struct Protection {
    pub(crate) breaker: CircuitBreaker,
    pub(crate) retry: Retry,
    pub(crate) timeout: Timeout,
    pub(crate) fallback: Fallback<Answer, UpstreamError>,
    pub(crate) server: crate::server::ServerProtection,
    /// Distributed mode: the rate limit and breaker state this instance shares through Redis.
    pub(crate) shared: Option<Shared>,
}

/// The parts of a protected instance that live in Redis, shared with the other instances.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) limiter: RedisRateLimiter,
    pub(crate) breaker: RedisCircuitBreaker,
}

/// What stands between the gateway's handler and its upstream.
enum Guard {
    None,
    /// The core pipeline: fallback, retry, circuit breaker, timeout.
    Local(Pipeline<Answer, UpstreamError>),
    /// The same pipeline around a breaker shared through Redis.
    Shared(Pipeline<Answer, UpstreamError, (), (), RedisCircuitBreaker>),
}

struct Gateway {
    client: reqwest::Client,
    upstream: String,
    guard: Guard,
}

impl Protection {
    /// Builds every pattern from the scenario's `[gateway]` table; `plan_rate` resolves a rate
    /// limit given as a share of the plan. The scenario has checked the values already; should
    /// the core still refuse one, the error names the scenario's key.
    pub(crate) fn new(config: &GatewayConfig, plan_rate: u64) -> anyhow::Result<Self> {
        Ok(Self {
            breaker: CircuitBreaker::builder("upstream")
                .detector(DetectorConfig::FailureRate {
                    window: Window::Calls(config.breaker_window),
                    threshold: config.breaker_failure_rate,
                    min_calls: config.breaker_window / 2,
                })
                .open_duration(config.breaker_open_duration)
                .success_threshold(2)
                .build()
                .map_err(|error| keyed(&error))?,
            retry: Retry::builder("upstream")
                .max_attempts(config.retry_attempts)
                .backoff(Backoff::exponential(config.retry_delay, 2.0))
                .build()
                .map_err(|error| keyed(&error))?,
            timeout: Timeout::builder("upstream")
                .limit(config.upstream_timeout)
                .build()
                .context("[gateway] upstream_timeout")?,
            fallback: Fallback::builder("upstream")
                .value(Answer::Fallback)
                .build()?,
            server: crate::server::ServerProtection::new(config, plan_rate)?,
            shared: None,
        })
    }

    /// One instance of the distributed gateway: the same patterns, with the rate limit and
    /// the breaker's state shared through `backend` under `prefix` by every instance built
    /// with the same prefix.
    pub(crate) async fn shared(
        config: &GatewayConfig,
        plan_rate: u64,
        backend: &RedisBackend,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let mut protection = Self::new(config, plan_rate)?;
        let rate = config.rate_limit(plan_rate)?;
        let limiter = RedisRateLimiter::builder("gateway", backend)
            .rate(rate)
            .burst(rate.burst())
            .prefix(prefix)
            .build()
            .context("[gateway] rate_limit")?;
        let breaker = RedisCircuitBreaker::builder(protection.breaker.clone(), backend)
            .prefix(prefix)
            .start()
            .await
            .context("shared circuit breaker")?;
        protection.shared = Some(Shared { limiter, breaker });
        Ok(protection)
    }
}

/// A core config error, said with the scenario key behind the field.
fn keyed(error: &ConfigError) -> anyhow::Error {
    let key = GatewayConfig::key_for(error.field());
    anyhow::anyhow!("[gateway] {key}: {error}")
}

/// Starts the protected gateway in front of `upstream`.
pub(crate) async fn start_protected(
    protection: &Protection,
    client: reqwest::Client,
    upstream: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let pipeline = Pipeline::builder("gateway")
        .fallback(protection.fallback.clone())
        .retry(protection.retry.clone())
        .timeout(protection.timeout.clone());
    let guard = match &protection.shared {
        Some(shared) => Guard::Shared(pipeline.circuit_breaker(shared.breaker.clone()).build()?),
        None => Guard::Local(
            pipeline
                .circuit_breaker(protection.breaker.clone())
                .build()?,
        ),
    };
    let gateway = Gateway {
        client,
        upstream: format!("http://{upstream}/work"),
        guard,
    };
    let limiter = protection.shared.as_ref().map(|shared| &shared.limiter);
    let app = protection.server.protect(router(gateway), limiter);
    serve(app).await
}

/// Starts the unprotected gateway: every call goes straight to `upstream`.
pub(crate) async fn start_unprotected(
    client: reqwest::Client,
    upstream: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let gateway = Gateway {
        client,
        upstream: format!("http://{upstream}/work"),
        guard: Guard::None,
    };
    serve(router(gateway)).await
}

fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/api", get(api))
        .with_state(Arc::new(gateway))
}

async fn serve(app: Router) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(address)
}

async fn api(State(gateway): State<Arc<Gateway>>, uri: Uri) -> Response {
    let Some(index) = crate::upstream::query(&uri, "i") else {
        return (StatusCode::BAD_REQUEST, "expected /api?i=<request>").into_response();
    };
    // Each retry is a new attempt of the same planned request, with its own planned fate.
    let attempts = AtomicU32::new(0);
    let fetch = || {
        let attempt = attempts.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}?i={index}&attempt={attempt}", gateway.upstream);
        let client = &gateway.client;
        async move { fetch(client, &url).await }
    };
    let answer = match &gateway.guard {
        Guard::Local(pipeline) => pipeline.call(fetch).await.map_err(|e| e.to_string()),
        Guard::Shared(pipeline) => pipeline.call(fetch).await.map_err(|e| e.to_string()),
        Guard::None => fetch().await.map_err(|error| error.to_string()),
    };
    match answer {
        Ok(Answer::Fresh(body)) => (StatusCode::OK, body).into_response(),
        Ok(Answer::Fallback) => {
            (StatusCode::OK, [(SERVED_BY, "fallback")], "cached").into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error).into_response(),
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Answer, UpstreamError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| UpstreamError::Transport(error.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(UpstreamError::Status(status.as_u16()));
    }
    let body = response
        .text()
        .await
        .map_err(|error| UpstreamError::Transport(error.to_string()))?;
    Ok(Answer::Fresh(body))
}
