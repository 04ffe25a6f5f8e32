//! [`CircuitBreakerLayer`]: stop sending requests to a service that keeps failing.
//!
//! # What it does
//!
//! Each request asks the [`CircuitBreaker`] for admission. While the circuit is open the
//! service is not called: the client gets a 503 whose `Retry-After` is the circuit's
//! remaining open time, rounded up. Admitted requests run, and their responses are judged by
//! a [`ResponseClassifier`]: by default every 5xx is a failure (and inner timeouts too), and
//! it **reaches the client unchanged**, status and body: the seed turned a 502 into a generic
//! 500 (bug B17), and its composite and aiohttp middleware never counted 5xx at all.
//!
//! The outcome is reported when the response body ends, not when the headers are ready: a
//! half-open probe is over when its answer has been sent, and a body that fails midway is a
//! failure. A request whose client goes away before the answer is ready is ignored (it says
//! nothing about the service) and gives its probe slot back.
//!
//! The breaker's own `timeout` setting is not applied here; put a
//! [`TimeoutLayer`](crate::TimeoutLayer) inside the breaker (the
//! [composite](crate::CompositeLayer) does), whose timeouts the breaker counts as failures.
//!
//! ```
//! use axum::{routing::get, Router};
//! use resilience::CircuitBreaker;
//! use resilience_http::CircuitBreakerLayer;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = CircuitBreaker::builder("upstream")
//!     .failure_threshold(5)
//!     .open_duration(Duration::from_secs(30))
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(CircuitBreakerLayer::new(breaker));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{response, Method, Request, Response};
use http_body::Body;
use resilience::circuit_breaker::Permit;
use resilience::classify::Outcome;
use resilience::{CircuitBreaker, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BodyEnd, Guard, ResponseBody};
use crate::service::{guarded, made, passthrough, take_ready, ResponseFuture};
use crate::{ExcludePaths, Reply, ResponseClassifier};

/// A circuit breaker's permit held by a response body, recording the outcome when the body
/// ends.
pub struct Probe {
    permit: Permit,
    head: Outcome,
}

impl Probe {
    pub(crate) fn new(permit: Permit, head: Outcome) -> Self {
        Self { permit, head }
    }
}

impl Guard for Probe {
    fn finish(self, end: BodyEnd) {
        self.permit.record(end.outcome(self.head));
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("permit", &self.permit)
            .field("head", &self.head)
            .finish()
    }
}

/// Guards an HTTP service with a [`CircuitBreaker`]; see the [module docs](self).
///
/// Clones share the breaker: cloning never creates a new circuit.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    pub(crate) breaker: CircuitBreaker,
    pub(crate) reply: Reply,
    pub(crate) exclude: ExcludePaths,
    pub(crate) classifier: ResponseClassifier,
}

impl CircuitBreakerLayer {
    /// A layer admitting requests through `breaker`.
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self {
            breaker,
            reply: Reply::new(),
            exclude: ExcludePaths::none(),
            classifier: ResponseClassifier::server_errors(),
        }
    }

    /// Answers requests refused by the open circuit as `reply` says (503 by default).
    #[must_use]
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Lets requests for these paths through untouched and uncounted.
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.exclude = exclude;
        self
    }

    /// Judges responses with `classifier` (5xx are failures by default).
    #[must_use]
    pub fn classifier(mut self, classifier: ResponseClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The answer for a request the circuit refused.
    pub(crate) fn refuse(&self, rejection: &Rejection) -> Response<Bytes> {
        self.reply.reject(rejection, None)
    }

    /// The guard of an admitted request whose response has this head.
    pub(crate) fn probe(&self, permit: Permit, head: &response::Parts) -> Probe {
        Probe::new(permit, self.classifier.classify(head))
    }
}

impl From<CircuitBreaker> for CircuitBreakerLayer {
    fn from(breaker: CircuitBreaker) -> Self {
        Self::new(breaker)
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            shared: Arc::new(self.clone()),
        }
    }
}

/// An HTTP service behind a circuit breaker; made by [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    shared: Arc<CircuitBreakerLayer>,
}

impl<S> CircuitBreakerService<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CircuitBreakerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody, Probe>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            if shared.exclude.matches(request.uri().path()) {
                return inner.call(request).await.map(passthrough);
            }
            let permit = match shared.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(open) => return Ok(made(shared.refuse(&open))),
            };
            let head_request = request.method() == Method::HEAD;
            match inner.call(request).await {
                Ok(response) => Ok(guarded(response, head_request, |head| {
                    shared.probe(permit, head)
                })),
                Err(error) => {
                    permit.failure();
                    Err(error)
                }
            }
        })
    }
}
