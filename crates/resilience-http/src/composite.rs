//! [`CompositeLayer`]: rate limit → load shed → bulkhead → circuit breaker → timeout, in one
//! layer and that documented order.
//!
//! # The order, and why
//!
//! 1. **Rate limit** first: the cheapest check, and a client over its rate must not take a
//!    load-shedder or bulkhead slot, nor count against the circuit. 429.
//! 2. **Load shed**, by the request's priority header: under load, unimportant work goes
//!    before it queues for anything. 503.
//! 3. **Bulkhead**: bounds the requests running at once, waiting in its queue if it has one.
//!    503. (The seed's composite called the bulkhead, ignored its answer and released a slot
//!    it had not taken, so it never refused and inflated its capacity, bug B17.)
//! 4. **Circuit breaker**: only requests that would really run are admitted or refused by
//!    the circuit, so a half-open probe is a request that will reach the service. 503 with
//!    the remaining open time.
//! 5. **Timeout** around the service: a timeout is a failure for the breaker outside it
//!    (408).
//!
//! A request refused at one step never reaches the next: a rate-limited request takes no
//! shedder slot, bulkhead slot or probe. Every step is optional, and each is the same layer
//! you would use alone ([`RateLimitLayer`], [`LoadShedLayer`], [`BulkheadLayer`],
//! [`CircuitBreakerLayer`], [`TimeoutLayer`]) with its own reply, exclusions and classifier;
//! the composite runs them in one future, one response body and one allocation. The slots
//! and the probe are held until the response body has been sent; 5xx answers count as
//! breaker failures and reach the client unchanged; admitted responses carry the
//! `RateLimit-*` headers.
//!
//! Retry and fallback are not part of it: on a server they belong around the client calls
//! the handler makes ([`RetryLayer`](crate::RetryLayer) and
//! [`FallbackLayer`](crate::FallbackLayer) fit a hyper client too), or outside the composite.
//!
//! ```
//! use axum::{routing::get, Router};
//! use resilience::rate_limit::LocalRateLimiter;
//! use resilience::load_shed::LoadShedder;
//! use resilience::{Bulkhead, CircuitBreaker, Timeout};
//! use resilience_http::{CompositeLayer, ExcludePaths};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = CompositeLayer::new()
//!     .rate_limit(LocalRateLimiter::builder("api").rate("50/second".parse()?).build()?)
//!     .load_shed(LoadShedder::builder("api").max_requests(500).build()?)
//!     .bulkhead(Bulkhead::builder("api").max_concurrent(100).build()?)
//!     .circuit_breaker(CircuitBreaker::builder("api").build()?)
//!     .timeout(Timeout::new(Duration::from_secs(10))?)
//!     .exclude(ExcludePaths::seed_defaults());
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(layer);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod service;

use std::sync::Arc;

use resilience::rate_limit::LocalRateLimiter;
use tower_layer::Layer;

use crate::{
    BulkheadLayer, CircuitBreakerLayer, ExcludePaths, LoadShedLayer, RateLimitLayer,
    ResponseFactory, TimeoutLayer,
};
pub use service::{CompositeGuard, CompositeService};

/// The five server-side patterns in their documented order; see the [module docs](self).
///
/// Clones share every handle they hold.
#[derive(Debug, Clone)]
pub struct CompositeLayer<L = LocalRateLimiter> {
    rate_limit: Option<RateLimitLayer<L>>,
    load_shed: Option<LoadShedLayer>,
    bulkhead: Option<BulkheadLayer>,
    breaker: Option<CircuitBreakerLayer>,
    timeout: Option<TimeoutLayer>,
    exclude: ExcludePaths,
    factory: Option<ResponseFactory>,
}

impl CompositeLayer {
    /// A composite with no step yet: add the ones you need.
    pub fn new() -> Self {
        Self {
            rate_limit: None,
            load_shed: None,
            bulkhead: None,
            breaker: None,
            timeout: None,
            exclude: ExcludePaths::none(),
            factory: None,
        }
    }
}

impl Default for CompositeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<L> CompositeLayer<L> {
    /// Step 1: a rate limiter (keyed by client IP), or a configured [`RateLimitLayer`].
    pub fn rate_limit<L2>(self, layer: impl Into<RateLimitLayer<L2>>) -> CompositeLayer<L2> {
        CompositeLayer {
            rate_limit: Some(layer.into()),
            load_shed: self.load_shed,
            bulkhead: self.bulkhead,
            breaker: self.breaker,
            timeout: self.timeout,
            exclude: self.exclude,
            factory: self.factory,
        }
    }

    /// Step 2: a load shedder (priority from `X-Priority`), or a configured [`LoadShedLayer`].
    #[must_use]
    pub fn load_shed(mut self, layer: impl Into<LoadShedLayer>) -> Self {
        self.load_shed = Some(layer.into());
        self
    }

    /// Step 3: a bulkhead, or a configured [`BulkheadLayer`].
    #[must_use]
    pub fn bulkhead(mut self, layer: impl Into<BulkheadLayer>) -> Self {
        self.bulkhead = Some(layer.into());
        self
    }

    /// Step 4: a circuit breaker, or a configured [`CircuitBreakerLayer`].
    #[must_use]
    pub fn circuit_breaker(mut self, layer: impl Into<CircuitBreakerLayer>) -> Self {
        self.breaker = Some(layer.into());
        self
    }

    /// Step 5: a timeout, or a configured [`TimeoutLayer`].
    #[must_use]
    pub fn timeout(mut self, layer: impl Into<TimeoutLayer>) -> Self {
        self.timeout = Some(layer.into());
        self
    }

    /// Lets requests for these paths through every step untouched (each step's own
    /// exclusions apply as well).
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.exclude = exclude;
        self
    }

    /// Builds every step's refusal and timeout responses with `factory`, except for steps
    /// whose [`Reply`](crate::Reply) has a factory of its own.
    #[must_use]
    pub fn response_factory(mut self, factory: ResponseFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// The composite as its services use it: the shared factory set on every step.
    fn resolved(&self) -> Self
    where
        L: Clone,
    {
        let mut layer = self.clone();
        if let Some(factory) = &layer.factory {
            let apply = |reply: &mut crate::Reply| {
                if !reply.has_factory() {
                    *reply = reply.clone().factory(factory.clone());
                }
            };
            layer
                .rate_limit
                .iter_mut()
                .for_each(|l| apply(&mut l.reply));
            layer.load_shed.iter_mut().for_each(|l| apply(&mut l.reply));
            layer.bulkhead.iter_mut().for_each(|l| apply(&mut l.reply));
            layer.breaker.iter_mut().for_each(|l| apply(&mut l.reply));
            layer.timeout.iter_mut().for_each(|l| apply(&mut l.reply));
        }
        layer
    }
}

impl<S, L: Clone> Layer<S> for CompositeLayer<L> {
    type Service = CompositeService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        CompositeService::new(inner, Arc::new(self.resolved()))
    }
}
