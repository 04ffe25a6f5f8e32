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

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{response, Request, Response};
use http_body::Body;
use resilience::admission::AdmissionPermit;
use resilience::bulkhead;
use resilience::circuit_breaker::Permit as BreakerPermit;
use resilience::classify::Outcome;
use resilience::load_shed;
use resilience::rate_limit::{LocalRateLimiter, RateLimiter};
use tower_layer::Layer;
use tower_service::Service;

use crate::admission::{RequestAdmission, Slot};
use crate::body::{BodyEnd, Guard, ResponseBody};
use crate::service::{guarded, made, passthrough, take_ready, ResponseFuture};
use crate::{
    BulkheadLayer, CircuitBreakerLayer, ExcludePaths, LoadShedLayer, Probe, RateLimitLayer,
    ResponseFactory, TimeoutLayer,
};

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
            layer.rate_limit.iter_mut().for_each(|l| apply(&mut l.reply));
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
        CompositeService {
            inner,
            shared: Arc::new(self.resolved()),
        }
    }
}

/// What a request admitted by the composite holds until its response body has been sent:
/// the probe, the bulkhead slot and the load-shedder slot, given back in that order.
pub struct CompositeGuard {
    probe: Option<Probe>,
    bulkhead: Option<Slot<bulkhead::Permit>>,
    shed: Option<Slot<load_shed::Permit>>,
}

impl Guard for CompositeGuard {
    fn finish(self, end: BodyEnd) {
        if let Some(probe) = self.probe {
            probe.finish(end);
        }
        if let Some(slot) = self.bulkhead {
            slot.finish(end);
        }
        if let Some(slot) = self.shed {
            slot.finish(end);
        }
    }
}

impl fmt::Debug for CompositeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositeGuard")
            .field("probe", &self.probe)
            .field("bulkhead", &self.bulkhead.is_some())
            .field("shed", &self.shed.is_some())
            .finish()
    }
}

/// The permits of a request between admission and its response head.
struct Admitted<'a> {
    shed: Option<(&'a LoadShedLayer, load_shed::Permit)>,
    bulkhead: Option<(&'a BulkheadLayer, bulkhead::Permit)>,
    probe: Option<(&'a CircuitBreakerLayer, BreakerPermit)>,
}

impl Admitted<'_> {
    /// The guard for a response with this head; every permit judges it with its own
    /// step's classifier.
    fn guard(self, head: &response::Parts) -> CompositeGuard {
        CompositeGuard {
            probe: self.probe.map(|(layer, permit)| layer.probe(permit, head)),
            bulkhead: self
                .bulkhead
                .map(|(layer, permit)| Slot::new(permit, layer.classifier.classify(head))),
            shed: self
                .shed
                .map(|(layer, permit)| Slot::new(permit, layer.classifier.classify(head))),
        }
    }

    /// The service failed without a response.
    fn fail(self) {
        if let Some((_, permit)) = self.probe {
            permit.failure();
        }
        if let Some((_, permit)) = self.bulkhead {
            permit.complete(Outcome::Failure);
        }
        if let Some((_, permit)) = self.shed {
            permit.complete(Outcome::Failure);
        }
    }
}

/// An HTTP service behind the composite; made by [`CompositeLayer`].
#[derive(Debug, Clone)]
pub struct CompositeService<S, L = LocalRateLimiter> {
    inner: S,
    shared: Arc<CompositeLayer<L>>,
}

impl<S, L> CompositeService<S, L> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, L, ReqBody, ResBody> Service<Request<ReqBody>> for CompositeService<S, L>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    L: RateLimiter + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody, CompositeGuard>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let inner = take_ready(&mut self.inner);
        Box::pin(async move { serve(&shared, inner, request).await })
    }
}

/// One request through every step.
async fn serve<S, L, ReqBody, ResBody>(
    layer: &CompositeLayer<L>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody, CompositeGuard>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    L: RateLimiter,
    ResBody: Body<Data = Bytes>,
{
    let path = request.uri().path();
    if layer.exclude.matches(path) {
        return inner.call(request).await.map(passthrough);
    }
    let applies = |exclude: &ExcludePaths| !exclude.matches(path);
    let rate_limit = layer.rate_limit.as_ref().filter(|l| applies(&l.exclude));
    let load_shed = layer.load_shed.as_ref().filter(|l| applies(&l.exclude));
    let bulkhead = layer.bulkhead.as_ref().filter(|l| applies(&l.exclude));
    let breaker = layer.breaker.as_ref().filter(|l| applies(&l.exclude));
    let timeout = layer.timeout.as_ref().filter(|l| applies(&l.exclude));
    let (parts, body) = request.into_parts();

    let decision = match rate_limit {
        Some(rate_limit) => match rate_limit.decide(&parts).await {
            Ok(decision) => Some((rate_limit, decision)),
            Err(limited) => return Ok(made(limited)),
        },
        None => None,
    };
    let result = 'steps: {
        let shed = match load_shed {
            Some(shed) => match shed.admission.admit_request(&parts).await {
                Ok(permit) => Some((shed, permit)),
                Err(rejection) => break 'steps Ok(made(shed.reply.reject(&rejection, None))),
            },
            None => None,
        };
        let bulkhead = match bulkhead {
            Some(bulkhead) => match bulkhead.admission.admit_request(&parts).await {
                Ok(permit) => Some((bulkhead, permit)),
                Err(rejection) => break 'steps Ok(made(bulkhead.reply.reject(&rejection, None))),
            },
            None => None,
        };
        let probe = match breaker {
            Some(breaker) => match breaker.breaker.try_acquire() {
                Ok(permit) => Some((breaker, permit)),
                Err(open) => break 'steps Ok(made(breaker.refuse(&open))),
            },
            None => None,
        };
        let admitted = Admitted {
            shed,
            bulkhead,
            probe,
        };
        let request = Request::from_parts(parts, body);
        let answer = match timeout {
            Some(timeout) => timeout.run(|| inner.call(request)).await,
            None => Ok(inner.call(request).await),
        };
        match answer {
            Ok(Ok(response)) => Ok(guarded(response, |head| admitted.guard(head))),
            Ok(Err(error)) => {
                admitted.fail();
                Err(error)
            }
            Err(timed_out) => {
                // Made in memory: judged (a failure, by default) and released at once.
                let (head, bytes) = timed_out.into_parts();
                admitted.guard(&head).finish(BodyEnd::Complete);
                Ok(made(Response::from_parts(head, bytes)))
            }
        }
    };
    match (result, decision) {
        (Ok(mut response), Some((rate_limit, decision))) => {
            rate_limit.annotate(&mut response, &decision);
            Ok(response)
        }
        (result, _) => result,
    }
}
