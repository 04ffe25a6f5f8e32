//! The middleware configurations both reqwest benches measure (`reqwest.rs` over loopback,
//! `reqwest_overhead.rs` without the network), so both measure the same stacks.

use std::time::Duration;

use resilience::circuit_breaker::KeyedCircuitBreaker;
use resilience::retry::{Backoff, BudgetConfig};
use resilience::{Retry, Timeout};
use resilience_reqwest::ResilientMiddlewareBuilder;

/// Up to 3 attempts, exponential backoff from 100 ms, the default retry budget.
pub(crate) fn retry(builder: ResilientMiddlewareBuilder) -> ResilientMiddlewareBuilder {
    builder.retry(
        Retry::builder("bench")
            .max_attempts(3)
            .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
            .budget(BudgetConfig::default())
            .build()
            .expect("valid"),
    )
}

/// A breaker per host, with the defaults.
pub(crate) fn breaker(builder: ResilientMiddlewareBuilder) -> ResilientMiddlewareBuilder {
    builder.breaker_per_host(
        KeyedCircuitBreaker::builder("bench")
            .build()
            .expect("valid"),
    )
}

/// A 30 s timeout on each attempt (never reached: it arms a timer per request).
pub(crate) fn timeout(builder: ResilientMiddlewareBuilder) -> ResilientMiddlewareBuilder {
    builder.timeout(Timeout::new(Duration::from_secs(30)).expect("valid"))
}
