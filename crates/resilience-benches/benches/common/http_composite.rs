//! The composite layer the HTTP benches and the `http_requests` example put in front of their
//! app: five steps, each sized so nothing is ever refused while measuring; and the same five
//! steps built from the peers, for the benches to compare.

use std::convert::Infallible;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::{BoxError, Router};

use resilience::circuit_breaker::CircuitBreaker;
use resilience::rate_limit::LocalRateLimiter;
use resilience::timeout::Timeout;
use resilience::{Bulkhead, LoadShedder, Rate};
use resilience_http::{CompositeLayer, HttpStageLayer, KeyedRateLimit, Stages};
use tower::ServiceBuilder;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;
use tower_http::timeout::TimeoutLayer;

/// Rate limit, load shedder, bulkhead, circuit breaker and timeout, none of which refuses;
/// admitted responses carry the `RateLimit-*` headers when `success_headers` is on (the
/// default of the layer).
pub(crate) fn composite(success_headers: bool) -> CompositeLayer<impl Stages + Clone> {
    let limiter = LocalRateLimiter::builder("bench")
        .rate(Rate::per_second(1_000_000_000))
        .build()
        .expect("valid");
    CompositeLayer::new()
        .rate_limit(HttpStageLayer::new(
            KeyedRateLimit::new(limiter).headers_on_success(success_headers),
        ))
        .load_shed(
            LoadShedder::builder("bench")
                .max_requests(1_024)
                .build()
                .expect("valid"),
        )
        .bulkhead(
            Bulkhead::builder("bench")
                .max_concurrent(1_024)
                .build()
                .expect("valid"),
        )
        .circuit_breaker(CircuitBreaker::builder("bench").build().expect("valid"))
        .timeout(Timeout::new(Duration::from_secs(30)).expect("valid"))
}

/// `app` behind the composite's five steps from the peers, in the same order, as a user would stack them
/// without this crate: tower_governor keyed by the peer's IP with its `x-ratelimit-*` headers
/// on admitted responses, tower's `LoadShed` over a `ConcurrencyLimit` (the load shedder and
/// the bulkhead), tower-resilience's circuit breaker and tower-http's timeout, with axum's
/// `HandleErrorLayer` turning refusals into responses. Nothing is refused either.
#[allow(
    dead_code,
    reason = "the benches use it, the `http_requests` example does not"
)]
pub(crate) fn with_peers_composite(app: Router) -> Router {
    let governor = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .use_headers()
        .finish()
        .expect("valid");
    let breaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .name("bench")
        .build()
        .expect("valid");
    let steps = ServiceBuilder::new()
        .layer(GovernorLayer::new(governor))
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            StatusCode::SERVICE_UNAVAILABLE
        }))
        .load_shed()
        .concurrency_limit(1_024)
        .layer(HandleErrorLayer::new(
            |_: tower_resilience::circuitbreaker::CircuitBreakerError<Infallible>| async {
                StatusCode::SERVICE_UNAVAILABLE
            },
        ))
        .layer(breaker)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));
    app.layer(steps)
}
