//! The composite layer the HTTP benches and the `http_requests` example put in front of their
//! app: five steps, each sized so nothing is ever refused while measuring.

use std::time::Duration;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::rate_limit::LocalRateLimiter;
use resilience::timeout::Timeout;
use resilience::{Bulkhead, LoadShedder, Rate};
use resilience_http::{CompositeLayer, HttpStageLayer, KeyedRateLimit, Stages};

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
