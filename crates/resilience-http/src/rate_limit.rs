//! [`KeyedRateLimit`]: a rate limit per key (client IP by default) in front of an HTTP

use http::request::Parts;
use http::HeaderMap;
use resilience::rate_limit::{Decision, RateLimiter};
use resilience::stage::StagePermit;
use resilience::Rate;

use crate::response::{rate_limit_headers, ReadyValues};
use crate::stage::{Admission, Refusal, RequestStage};
use crate::{HttpStageLayer, RateLimitKey};

/// A [`RateLimiter`] spending one unit of each request's key's budget. Put it in an [`HttpStageLayer`] or a
/// [`CompositeLayer`](crate::CompositeLayer).
///
/// Clones share the limiter (one budget per key however many clones axum makes).
///
/// # What it does
///
/// Each request spends one unit of the budget of its [key](RateLimitKey) (by default the
/// client IP, believed from `X-Forwarded-For` only behind [trusted proxies](crate::TrustedProxies)). A
/// request over its rate never reaches the service: it gets a 429 whose `Retry-After` is the
/// limiter's exact wait rounded up to whole seconds, with `RateLimit-Limit`,
/// `RateLimit-Remaining` and `RateLimit-Reset`. Admitted responses carry the same
/// `RateLimit-*` headers, so well-behaved clients can pace themselves (turn that off with
/// [`headers_on_success`](KeyedRateLimit::headers_on_success)).
///
/// Any [`RateLimiter`] works: the in-memory keyed [`LocalRateLimiter`](resilience::rate_limit::LocalRateLimiter), the single-budget
/// [`DirectRateLimiter`](resilience::rate_limit::DirectRateLimiter), or a Redis limiter
/// sharing budgets across instances. It decides with `check`, never waiting: over
/// HTTP the honest answer to "too fast" is a 429 that says when to come back, and waiting
/// belongs to a bulkhead or load shedder queue. The limiter's `max_wait` is not used here.
///
/// With [`rate`](KeyedRateLimit::rate), the layer spends the `(key, rate)` budget instead of
/// the limiter's configured rate: one limiter can then serve several routes with different
/// rates (aioresilience's `rate_limit_dependency(limiter, "100/minute")`).
///
/// ```
/// use axum::{routing::get, Router};
/// use resilience::rate_limit::LocalRateLimiter;
/// use resilience_http::{HttpStageLayer, KeyedRateLimit, RateLimitKey, TrustedProxies};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = LocalRateLimiter::builder("api").rate("100/minute".parse()?).build()?;
/// let key = RateLimitKey::client_ip().trusted_proxies(TrustedProxies::new(["10.0.0.0/8"])?);
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(HttpStageLayer::new(KeyedRateLimit::new(limiter).key(key)));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KeyedRateLimit<L> {
    limiter: L,
    key: RateLimitKey,
    rate: Option<Rate>,
    headers_on_success: bool,
    /// The header values of the rate's limit, made once.
    ready: ReadyValues,
}

impl<L: RateLimiter> KeyedRateLimit<L> {
    /// Spends `limiter`'s budget, keyed by client IP.
    pub fn new(limiter: L) -> Self {
        Self {
            ready: ReadyValues::new(limiter.rate().burst()),
            limiter,
            key: RateLimitKey::client_ip(),
            rate: None,
            headers_on_success: true,
        }
    }
}

impl<L> KeyedRateLimit<L> {
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
        self.ready = ReadyValues::new(rate.burst());
        self
    }

    /// Whether admitted responses carry the `RateLimit-*` headers (default `true`).
    #[must_use]
    pub fn headers_on_success(mut self, enabled: bool) -> Self {
        self.headers_on_success = enabled;
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.limiter
    }
}

/// The decision that admitted a request: its numbers become the `RateLimit-*` headers. The
/// budget was spent on admission, so there is nothing to release.
#[derive(Debug)]
pub struct Allowed(Decision);

impl StagePermit for Allowed {}

impl<L: RateLimiter + 'static> RequestStage for KeyedRateLimit<L> {
    type Permit = Allowed;

    async fn admit_request(&self, request: &Parts) -> Result<Allowed, Refusal> {
        let key = self.key.request_key(request);
        let decision = match self.rate {
            Some(rate) => self.limiter.check_rate(key.as_str(), rate).await,
            None => self.limiter.check(key.as_str()).await,
        };
        self.answer(decision)
    }

    fn admit_now(&self, request: &Parts) -> Admission<Allowed> {
        let key = self.key.request_key(request);
        match self.limiter.check_at_once(key.as_str(), self.rate) {
            Some(decision) => Admission::Now(self.answer(decision)),
            None => Admission::Later,
        }
    }

    fn annotate(&self, Allowed(decision): &Allowed, headers: &mut HeaderMap) {
        if self.headers_on_success {
            rate_limit_headers(headers, decision, Some(&self.ready));
        }
    }
}

impl<L: RateLimiter> KeyedRateLimit<L> {
    /// Admits a request the limiter allowed; refuses one it denied.
    #[expect(
        clippy::result_large_err,
        reason = "the answer of `admit_request`, whose refusal carries the decision for the headers"
    )]
    fn answer(&self, decision: Decision) -> Result<Allowed, Refusal> {
        if decision.is_allowed() {
            Ok(Allowed(decision))
        } else {
            let rejection = self.limiter.rejection(&decision);
            Err(Refusal::rate_limited(rejection, decision))
        }
    }
}

/// A keyed rate limit by client IP, as [`KeyedRateLimit::new`].
impl<L: RateLimiter + 'static> From<L> for HttpStageLayer<KeyedRateLimit<L>> {
    fn from(limiter: L) -> Self {
        Self::new(KeyedRateLimit::new(limiter))
    }
}
