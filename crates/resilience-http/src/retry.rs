//! [`HttpRetryLayer`]: send an idempotent request again when the answer says it may work next time.

mod service;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{response, Method, Response, StatusCode};
use resilience::{PatternKind, Rejection, Retry};
use tower_layer::Layer;

pub use crate::replay::{Replay, RetryBody};
use crate::service::HttpService;
use crate::{ExcludePaths, TimedOut};
pub use service::HttpRetryService;

/// `X-Retry-Skipped`: why a request with a retryable answer was not retried.
pub const X_RETRY_SKIPPED: HeaderName = HeaderName::from_static("x-retry-skipped");

/// The default idempotency header, `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Why a request whose answer was retryable was sent only once; in the response's extensions
/// and its `x-retry-skipped` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRetried {
    /// The method is not idempotent (`POST`, `PATCH`, ...) and no idempotency key was sent.
    NonIdempotentMethod,
    /// The body is larger than `max_body_bytes`, or of unknown length and grew past it.
    BodyTooLarge,
    /// Reading the body failed before it could be buffered.
    BodyUnreadable,
}

impl NotRetried {
    /// The reason as the header spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NonIdempotentMethod => "non-idempotent-method",
            Self::BodyTooLarge => "body-too-large",
            Self::BodyUnreadable => "body-unreadable",
        }
    }
}

impl fmt::Display for NotRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many times a retried request was sent; in the extensions of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempts(pub u32);

type Retryable = dyn Fn(&response::Parts) -> bool + Send + Sync;

/// Retries idempotent requests with replayable bodies.
///
/// `T` says which request body the inner service takes ([`RetryBody`]): the default suits
/// services generic over their body; under axum's `Router::layer`, use
/// [`request_body::<axum::body::Body>()`](Self::request_body).
///
/// Clones share the [`Retry`] policy (its budget and metrics).
///
/// # What it does
///
/// A request is retried only when sending it twice is safe and possible:
///
/// * **safe**: its method is idempotent (`GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`,
///   `DELETE`), or it carries an `Idempotency-Key` header (configurable, or off);
/// * **possible**: its body can be sent again. Bodies up to
///   [`max_body_bytes`](HttpRetryLayer::max_body_bytes) (64 KiB by default) are read into memory
///   once and every attempt gets the same bytes. A body declared larger is not read; one of
///   unknown length is read until it passes the limit, then sent once, what was read first.
///
/// A retryable answer is a 500, 502, 503 or 504 by default ([`retry_statuses`]), a timeout
/// made by an inner [`HttpTimeoutLayer`](crate::HttpTimeoutLayer), or an error of the inner service.
/// A refusal by an inner circuit breaker or rate limiter of this crate is never retried (the
/// breaker is open for a reason; the limiter said when to come back), as in the core's retry.
/// How many attempts, how long to wait between them, jitter, total time and retry budgets
/// are the core [`Retry`]'s: its events and metrics count HTTP attempts.
///
/// When the attempts run out the client gets the **last answer** unchanged, the upstream's
/// 503 and its body, not a made-up error. A request that got a retryable answer but could not
/// be retried says why, in a header and a typed extension ([`NotRetried`]):
///
/// ```text
/// x-retry-skipped: non-idempotent-method      (or body-too-large, body-unreadable)
/// ```
///
/// Retrying on a server re-runs the handler; the natural home of this layer is an HTTP
/// *client* (a hyper-util `Client` is a tower service) calling an upstream, as the
/// [`axum_gateway` example] does. Under axum's `Router::layer`, whose routes take only
/// `axum::body::Body`, add it as `HttpRetryLayer::new(policy).request_body::<axum::body::Body>()`
/// (feature `axum`; see [`RetryBody`]).
///
/// ```
/// use resilience::retry::{Backoff, Retry};
/// use resilience_http::HttpRetryLayer;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let retry = Retry::builder("upstream")
///     .max_attempts(3)
///     .backoff(Backoff::exponential(Duration::from_millis(50), 2.0))
///     .build()?;
/// let layer = HttpRetryLayer::new(retry).max_body_bytes(16 * 1024);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// [`retry_statuses`]: HttpRetryLayer::retry_statuses
/// [`axum_gateway` example]: https://github.com/resilience-rs/resilience/blob/main/crates/resilience-http/examples/axum_gateway.rs
pub struct HttpRetryLayer<T = Replay> {
    settings: Settings,
    body: PhantomData<fn() -> T>,
}

#[derive(Clone)]
struct Settings {
    retry: Retry,
    max_body_bytes: usize,
    statuses: Arc<[StatusCode]>,
    retry_if: Option<Arc<Retryable>>,
    idempotency_key: Option<HeaderName>,
    exclude: ExcludePaths,
}

impl HttpRetryLayer {
    /// Retries with `retry`'s attempts and backoff.
    pub fn new(retry: Retry) -> Self {
        Self {
            settings: Settings {
                retry,
                max_body_bytes: 64 * 1024,
                statuses: Arc::new([
                    StatusCode::INTERNAL_SERVER_ERROR,
                    StatusCode::BAD_GATEWAY,
                    StatusCode::SERVICE_UNAVAILABLE,
                    StatusCode::GATEWAY_TIMEOUT,
                ]),
                retry_if: None,
                idempotency_key: Some(IDEMPOTENCY_KEY),
                exclude: ExcludePaths::none(),
            },
            body: PhantomData,
        }
    }
}

impl<T> HttpRetryLayer<T> {
    /// Hands the inner service request bodies of type `U` (see [`RetryBody`]).
    pub fn request_body<U>(self) -> HttpRetryLayer<U> {
        HttpRetryLayer {
            settings: self.settings,
            body: PhantomData,
        }
    }

    /// Buffers request bodies up to `limit` bytes (64 KiB by default); larger ones are sent
    /// once.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.settings.max_body_bytes = limit;
        self
    }

    /// Retries answers with these statuses (default 500, 502, 503, 504).
    #[must_use]
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.settings.statuses = statuses.into_iter().collect();
        self
    }

    /// Retries the answers for which `retryable` holds, instead of judging by status.
    #[must_use]
    pub fn retry_if<F>(mut self, retryable: F) -> Self
    where
        F: Fn(&response::Parts) -> bool + Send + Sync + 'static,
    {
        self.settings.retry_if = Some(Arc::new(retryable));
        self
    }

    /// Treats requests carrying header `name` as idempotent whatever their method
    /// (`Idempotency-Key` by default); `None` trusts methods only.
    #[must_use]
    pub fn idempotency_key(mut self, name: Option<HeaderName>) -> Self {
        self.settings.idempotency_key = name;
        self
    }

    /// Sends requests for these paths once, untouched.
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.settings.exclude = exclude;
        self
    }

    /// The retry policy.
    pub fn retry(&self) -> &Retry {
        &self.settings.retry
    }
}

/// Whether a request may be sent twice: its method is idempotent (RFC 9110 §9.2.2: `GET`,
/// `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`), or it carries the `idempotency_key` header,
/// when one is named. What both the server-side retry and `resilience-reqwest` retry.
pub fn safe_to_repeat(
    method: &Method,
    headers: &http::HeaderMap,
    idempotency_key: Option<&http::HeaderName>,
) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || idempotency_key.is_some_and(|name| headers.contains_key(name))
}

impl Settings {
    /// Whether the request may be sent twice.
    fn idempotent(&self, request: &http::request::Parts) -> bool {
        safe_to_repeat(
            &request.method,
            &request.headers,
            self.idempotency_key.as_ref(),
        )
    }

    /// Whether an answer is worth another attempt.
    fn retryable(&self, head: &response::Parts) -> bool {
        if let Some(retryable) = &self.retry_if {
            return retryable(head);
        }
        if let Some(rejection) = head.extensions.get::<Rejection>() {
            return !matches!(
                rejection.pattern(),
                PatternKind::CircuitBreaker | PatternKind::RateLimiter
            );
        }
        head.extensions.get::<TimedOut>().is_some() || self.statuses.contains(&head.status)
    }

    /// Marks an answer that would have been retried but could not be.
    fn skipped<B>(&self, response: Response<B>, reason: NotRetried) -> Response<B> {
        let (mut head, body) = response.into_parts();
        if self.retryable(&head) {
            tracing::debug!(target: "resilience::retry", retry = %self.retry.name(), %reason, status = %head.status, "retryable answer not retried");
            head.headers
                .insert(X_RETRY_SKIPPED, HeaderValue::from_static(reason.as_str()));
            head.extensions.insert(reason);
        }
        Response::from_parts(head, body)
    }
}

impl<T> Clone for HttpRetryLayer<T> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            body: PhantomData,
        }
    }
}

impl<T> fmt::Debug for HttpRetryLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRetryLayer")
            .field("settings", &self.settings)
            .field("body", &std::any::type_name::<T>())
            .finish()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("retry", &self.retry)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("statuses", &self.statuses)
            .field("retry_if", &self.retry_if.is_some())
            .field("idempotency_key", &self.idempotency_key)
            .field("exclude", &self.exclude)
            .finish()
    }
}

impl<S, T> Layer<S> for HttpRetryLayer<T> {
    type Service = HttpRetryService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpService::new(
            inner,
            Arc::new(Self {
                settings: self.settings.clone(),
                body: PhantomData,
            }),
        )
    }
}
