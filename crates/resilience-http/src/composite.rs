//! [`CompositeLayer`]: an ordered list of stages and a timeout in one layer: rate limit →

use std::sync::Arc;
use std::time::Duration;

use resilience::rate_limit::RateLimiter;
use resilience::{Bulkhead, CircuitBreaker};
use tower_layer::Layer;

use crate::body::DEFAULT_BODY_IDLE_TIMEOUT;
use crate::service::{HttpService, Stack, StagesService};
use crate::stage::{Chain, RequestStage, Stages};
use crate::{
    ExcludePaths, HttpStageLayer, HttpTimeoutLayer, KeyedRateLimit, PriorityHeader, ResponseFactory,
};

/// Stages in the order added, then a timeout.
///
/// `G` is the list of stages so far ([`Stages`]); clones share every handle they hold.
///
/// load shed → bulkhead → circuit breaker → timeout is the recommended order, and any stage
/// of your own fits in.
///
/// # The order, and why
///
/// 1. **Rate limit** first: the cheapest check, and a client over its rate must not take a
///    load-shedder or bulkhead slot, nor count against the circuit. 429.
/// 2. **Load shed**, by the request's priority header: under load, unimportant work goes
///    before it queues for anything. 503.
/// 3. **Bulkhead**: bounds the requests running at once, waiting in its queue if it has one.
///    503.
/// 4. **Circuit breaker**: only requests that would really run are admitted or refused by
///    the circuit, so a half-open probe is a request that will reach the service. 503 with
///    the remaining open time.
/// 5. **Timeout** around the service: a timeout is a failure for the breaker outside it
///    (408).
///
/// Stages run in the order they are added, so add them in this order unless you mean
/// otherwise; [`stage`](CompositeLayer::stage) adds any [`RequestStage`] (a Redis-backed
/// breaker or limiter, a kill switch of your own) wherever you put it. A request refused at
/// one step never reaches the next: a rate-limited request takes no shedder slot, bulkhead
/// slot or probe. Every step is optional, and each is the same [`HttpStageLayer`] you would
/// use alone, with its own reply, exclusions and classifier; the composite runs them in one
/// future, one response body and one allocation. A circuit breaker's own `timeout` is
/// honoured: the shorter of it and the composite's timeout applies. The slots
/// and the probe are held until the response body has been sent, or until the client has
/// left it unread for the [body idle timeout](CompositeLayer::body_idle_timeout) (30 s by
/// default); 5xx answers count as
/// breaker failures and reach the client unchanged; admitted responses carry the
/// `RateLimit-*` headers.
///
/// Retry and fallback are not part of it: on a server they belong around the client calls
/// the handler makes ([`HttpRetryLayer`](crate::HttpRetryLayer) and
/// [`HttpFallbackLayer`](crate::HttpFallbackLayer) fit a hyper client too), or outside the composite.
///
/// ```
/// use axum::{routing::get, Router};
/// use resilience::rate_limit::LocalRateLimiter;
/// use resilience::load_shed::LoadShedder;
/// use resilience::{Bulkhead, CircuitBreaker, Timeout};
/// use resilience_http::{CompositeLayer, ExcludePaths};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = CompositeLayer::new()
///     .rate_limit(LocalRateLimiter::builder("api").rate("50/second".parse()?).build()?)
///     .load_shed(LoadShedder::builder("api").max_requests(500).build()?)
///     .bulkhead(Bulkhead::builder("api").max_concurrent(100).build()?)
///     .circuit_breaker(CircuitBreaker::builder("api").build()?)
///     .timeout(Timeout::new(Duration::from_secs(10))?)
///     .exclude(ExcludePaths::seed_defaults());
/// let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(layer);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CompositeLayer<G = ()> {
    stages: G,
    timeout: Option<HttpTimeoutLayer>,
    exclude: ExcludePaths,
    factory: Option<ResponseFactory>,
    body_idle_timeout: Option<Duration>,
}

impl CompositeLayer {
    /// A composite with no step yet: add the ones you need.
    pub fn new() -> Self {
        Self {
            stages: (),
            timeout: None,
            exclude: ExcludePaths::none(),
            factory: None,
            body_idle_timeout: Some(DEFAULT_BODY_IDLE_TIMEOUT),
        }
    }
}

impl Default for CompositeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<G: Stages> CompositeLayer<G> {
    /// Adds `stage` after the stages added so far: any [`RequestStage`] (every core and Redis
    /// stage is one), or a configured [`HttpStageLayer`] with its own reply, exclusions and
    /// classifier.
    pub fn stage<St: RequestStage>(
        self,
        stage: impl Into<HttpStageLayer<St>>,
    ) -> CompositeLayer<Chain<G, HttpStageLayer<St>>> {
        CompositeLayer {
            stages: Chain::new(self.stages, stage.into()),
            timeout: self.timeout,
            exclude: self.exclude,
            factory: self.factory,
            body_idle_timeout: self.body_idle_timeout,
        }
    }

    /// Step 1: a rate limit per key (by client IP for a bare limiter), 429 when over.
    pub fn rate_limit<L: RateLimiter + 'static>(
        self,
        stage: impl Into<HttpStageLayer<KeyedRateLimit<L>>>,
    ) -> CompositeLayer<Chain<G, HttpStageLayer<KeyedRateLimit<L>>>> {
        self.stage(stage)
    }

    /// Step 2: a load shedder (priority from `X-Priority` for a bare shedder), 503 when shed.
    pub fn load_shed(
        self,
        stage: impl Into<HttpStageLayer<PriorityHeader>>,
    ) -> CompositeLayer<Chain<G, HttpStageLayer<PriorityHeader>>> {
        self.stage(stage)
    }

    /// Step 3: a bulkhead, 503 when full.
    pub fn bulkhead(
        self,
        stage: impl Into<HttpStageLayer<Bulkhead>>,
    ) -> CompositeLayer<Chain<G, HttpStageLayer<Bulkhead>>> {
        self.stage(stage)
    }

    /// Step 4: a circuit breaker (local here; a Redis-shared one goes through
    /// [`stage`](Self::stage)), 503 with the remaining open time when open.
    pub fn circuit_breaker(
        self,
        stage: impl Into<HttpStageLayer<CircuitBreaker>>,
    ) -> CompositeLayer<Chain<G, HttpStageLayer<CircuitBreaker>>> {
        self.stage(stage)
    }

    /// Step 5: a timeout around the service (408 by default), or a configured
    /// [`HttpTimeoutLayer`].
    #[must_use]
    pub fn timeout(mut self, layer: impl Into<HttpTimeoutLayer>) -> Self {
        self.timeout = Some(layer.into());
        self
    }

    setters! {
        /// Lets requests for these paths through every step untouched (each step's own
        /// exclusions apply as well).
        exclude: ExcludePaths;
        /// Gives every permit back when the response body has waited this long for the client
        /// to ask for its next chunk (`None`: never; default
        /// [`DEFAULT_BODY_IDLE_TIMEOUT`](crate::DEFAULT_BODY_IDLE_TIMEOUT), 30 seconds), so a
        /// client that stops reading cannot hold its slots for as long as its connection lives.
        /// See [`HttpStageLayer::body_idle_timeout`]; the stages' own settings are not used here.
        body_idle_timeout: Option<Duration>;
    }

    /// Builds every step's refusal and timeout responses with `factory`, except for steps whose [`Reply`](crate::Reply) has a factory of its own.
    #[must_use]
    pub fn response_factory(mut self, factory: ResponseFactory) -> Self {
        self.factory = Some(factory);
        self
    }
}

impl<S, G: Stages + Clone> Layer<S> for CompositeLayer<G> {
    type Service = StagesService<S, G>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpService::new(inner, Arc::new(Stack::from(self.clone())))
    }
}

/// The composite's steps, each refusal and timeout answered by the composite's
/// [factory](CompositeLayer::response_factory) where the step has none of its own: what its
/// services run, and what another framework's middleware can run (see [`Stack`]).
impl<G: Stages> From<CompositeLayer<G>> for Stack<G> {
    fn from(layer: CompositeLayer<G>) -> Self {
        let CompositeLayer {
            mut stages,
            mut timeout,
            exclude,
            factory,
            body_idle_timeout,
        } = layer;
        if let Some(factory) = &factory {
            stages.default_factory(factory);
            if let Some(timeout) = &mut timeout {
                timeout.reply.default_factory(factory);
            }
        }
        Self::new(stages, timeout, exclude, body_idle_timeout)
    }
}
