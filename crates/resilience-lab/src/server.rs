//! The protected gateway's server side: `resilience-http`'s composite layer (rate limit,
//! load shed, bulkhead, timeout, in that order) in front of its handler.

use anyhow::Context;
use axum::Router;
use resilience::bulkhead::Bulkhead;
use resilience::load_shed::LoadShedder;
use resilience::rate_limit::LocalRateLimiter;
use resilience::Timeout;
use resilience_http::CompositeLayer;
use resilience_redis::RedisRateLimiter;

use crate::scenario::GatewayConfig;

/// The server-side patterns, kept for the report.
#[derive(Clone)]
pub(crate) struct ServerProtection {
    pub(crate) rate_limiter: LocalRateLimiter,
    pub(crate) load_shedder: LoadShedder,
    pub(crate) bulkhead: Bulkhead,
    pub(crate) timeout: Timeout,
}

impl ServerProtection {
    pub(crate) fn new(config: &GatewayConfig, plan_rate: u64) -> anyhow::Result<Self> {
        Ok(Self {
            rate_limiter: LocalRateLimiter::builder("gateway")
                .rate(config.rate_limit(plan_rate)?)
                .build()
                .context("[gateway] rate_limit")?,
            load_shedder: LoadShedder::builder("gateway")
                .max_requests(config.max_concurrent.saturating_add(config.max_waiting))
                .build()
                .context("[gateway] max_concurrent + max_waiting")?,
            bulkhead: Bulkhead::builder("gateway")
                .max_concurrent(config.max_concurrent)
                .max_waiting(config.max_waiting)
                .build()
                .context("[gateway] max_concurrent, max_waiting")?,
            timeout: Timeout::builder("gateway")
                .limit(config.request_timeout)
                .build()
                .context("[gateway] request_timeout")?,
        })
    }

    /// Wraps the gateway's routes in the composite layer; its rate limit is `shared` (a budget
    /// in Redis) when given, this instance's own otherwise.
    pub(crate) fn protect(&self, router: Router, shared: Option<&RedisRateLimiter>) -> Router {
        let rest = CompositeLayer::new()
            .load_shed(self.load_shedder.clone())
            .bulkhead(self.bulkhead.clone())
            .timeout(self.timeout.clone());
        match shared {
            Some(limiter) => router.layer(rest.rate_limit(limiter.clone())),
            None => router.layer(rest.rate_limit(self.rate_limiter.clone())),
        }
    }
}
