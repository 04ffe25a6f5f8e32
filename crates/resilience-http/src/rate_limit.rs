//! [`RateLimitLayer`]: a keyed rate limit in front of an HTTP service.
//!
//! # What it does
//!
//! Each request spends one unit of the budget of its [key](RateLimitKey) (by default the
//! client IP, believed from `X-Forwarded-For` only behind [trusted proxies](crate::key)). A
//! request over its rate never reaches the service: it gets a 429 whose `Retry-After` is the
//! limiter's exact wait rounded up to whole seconds, with `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset`. Admitted responses carry the same
//! `RateLimit-*` headers, so well-behaved clients can pace themselves (turn that off with
//! [`headers_on_success`](RateLimitLayer::headers_on_success)).
//!
//! Any [`RateLimiter`] works: the in-memory keyed [`LocalRateLimiter`], the single-budget
//! [`DirectRateLimiter`](resilience::rate_limit::DirectRateLimiter), or a Redis limiter
//! sharing budgets across instances. The layer decides with `check`, never waiting: over
//! HTTP the honest answer to "too fast" is a 429 that says when to come back, and waiting
//! belongs to a bulkhead or load shedder queue. The limiter's `max_wait` is not used here.
//!
//! With [`rate`](RateLimitLayer::rate), the layer spends the `(key, rate)` budget instead of
//! the limiter's configured rate: one limiter can then serve several routes with different
//! rates (the seed's `rate_limit_dependency(limiter, "100/minute")`).
//!
//! ```
//! use axum::{routing::get, Router};
//! use resilience::rate_limit::LocalRateLimiter;
//! use resilience_http::{RateLimitKey, RateLimitLayer, TrustedProxies};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = LocalRateLimiter::builder("api").rate("100/minute".parse()?).build()?;
//! let key = RateLimitKey::client_ip().trusted_proxies(TrustedProxies::new(["10.0.0.0/8"])?);
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(RateLimitLayer::new(limiter).key(key));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use resilience::rate_limit::{Decision, LocalRateLimiter, RateLimiter};
use resilience::Rate;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::response::rate_limit_headers;
use crate::service::{made, passthrough, take_ready, ResponseFuture};
use crate::{ExcludePaths, RateLimitKey, Reply};

/// Rate limits HTTP requests by key; see the [module docs](self).
///
/// Clones share the limiter (one budget per key however many clones axum makes).
#[derive(Debug, Clone)]
pub struct RateLimitLayer<L = LocalRateLimiter> {
    pub(crate) limiter: L,
    key: RateLimitKey,
    rate: Option<Rate>,
    headers_on_success: bool,
    pub(crate) reply: Reply,
    pub(crate) exclude: ExcludePaths,
}

impl<L: RateLimiter> RateLimitLayer<L> {
    /// A layer spending `limiter`'s budget, keyed by client IP.
    pub fn new(limiter: L) -> Self {
        Self {
            limiter,
            key: RateLimitKey::client_ip(),
            rate: None,
            headers_on_success: true,
            reply: Reply::new(),
            exclude: ExcludePaths::none(),
        }
    }

    /// Decides one request: its decision, or the 429 to send.
    pub(crate) async fn decide(&self, request: &Parts) -> Result<Decision, Response<Bytes>> {
        let key = self.key.key(request);
        let decision = match self.rate {
            Some(rate) => self.limiter.check_rate(&key, rate).await,
            None => self.limiter.check(&key).await,
        };
        if decision.is_allowed() {
            Ok(decision)
        } else {
            let rejection = self.limiter.rejection(&decision);
            Err(self.reply.reject(&rejection, Some(&decision)))
        }
    }

    /// Adds the `RateLimit-*` headers of an admitted request, if enabled.
    pub(crate) fn annotate<B>(&self, response: &mut Response<B>, decision: &Decision) {
        if self.headers_on_success {
            rate_limit_headers(response.headers_mut(), decision);
        }
    }
}

impl<L> RateLimitLayer<L> {
    /// Keys requests with `key` instead of by client IP.
    #[must_use]
    pub fn key(mut self, key: RateLimitKey) -> Self {
        self.key = key;
        self
    }

    /// Spends the budget of `(key, rate)` instead of the limiter's configured rate.
    #[must_use]
    pub fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Whether admitted responses carry the `RateLimit-*` headers (default `true`).
    #[must_use]
    pub fn headers_on_success(mut self, enabled: bool) -> Self {
        self.headers_on_success = enabled;
        self
    }

    /// Answers rate-limited requests as `reply` says (429 by default).
    #[must_use]
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Lets requests for these paths through untouched, spending nothing.
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.exclude = exclude;
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.limiter
    }
}

impl<L: RateLimiter> From<L> for RateLimitLayer<L> {
    fn from(limiter: L) -> Self {
        Self::new(limiter)
    }
}

impl<S, L: Clone> Layer<S> for RateLimitLayer<L> {
    type Service = RateLimitService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: Arc::new(self.clone()),
        }
    }
}

/// An HTTP service behind a rate limiter; made by [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitService<S, L = LocalRateLimiter> {
    inner: S,
    shared: Arc<RateLimitLayer<L>>,
}

impl<S, L> RateLimitService<S, L> {
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

impl<S, L, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, L>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    L: RateLimiter + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
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
            let (parts, body) = request.into_parts();
            let decision = match shared.decide(&parts).await {
                Ok(decision) => decision,
                Err(limited) => return Ok(made(limited)),
            };
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            shared.annotate(&mut response, &decision);
            Ok(passthrough(response))
        })
    }
}
