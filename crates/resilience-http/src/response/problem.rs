//! [`Problem`], what a refusal or a timeout is, and the [`ResponseFactory`] that answers it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use resilience::rate_limit::Decision;
use resilience::Rejection;

use super::seconds_up;

/// A request ran out of time; carried in the extensions of the response made for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimedOut {
    /// How long the request had run when it was cancelled.
    pub elapsed: Duration,
    /// The limit it exceeded.
    pub limit: Duration,
}

/// Why a layer is answering instead of the service.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Cause<'a> {
    /// A pattern refused the request.
    Rejected(&'a Rejection),
    /// The request ran out of time.
    TimedOut(TimedOut),
}

/// Everything a [`ResponseFactory`] needs to build its answer.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    pub(super) status: StatusCode,
    pub(super) message: &'a str,
    pub(super) cause: Cause<'a>,
    pub(super) retry_after: Option<Duration>,
    pub(super) rate_limit: Option<&'a Decision>,
}

impl<'a> Problem<'a> {
    /// The status the layer would send: its default, or the one set on its
    /// [`Reply`](crate::Reply).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The layer's message, the default body's `detail`.
    pub fn message(&self) -> &'a str {
        self.message
    }

    /// Why the layer answers.
    pub fn cause(&self) -> Cause<'a> {
        self.cause
    }

    /// The rejection, if a pattern refused the request.
    pub fn rejection(&self) -> Option<&'a Rejection> {
        match self.cause {
            Cause::Rejected(rejection) => Some(rejection),
            Cause::TimedOut(_) => None,
        }
    }

    /// The timeout, if the request ran out of time.
    pub fn timed_out(&self) -> Option<TimedOut> {
        match self.cause {
            Cause::TimedOut(timed_out) => Some(timed_out),
            Cause::Rejected(_) => None,
        }
    }

    /// When the client may try again: the rejection's own estimate, else the layer's hint.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// [`retry_after`](Self::retry_after) as the `Retry-After` header says it: whole seconds,
    /// rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|after| seconds_up(after).max(1))
    }

    /// The rate limiter's decision, for a rate-limited request.
    pub fn rate_limit(&self) -> Option<&'a Decision> {
        self.rate_limit
    }

    /// A stable name for the cause: the rejection reason (`rate_limited`, `circuit_open`,
    /// ...) or `timeout`.
    pub fn reason(&self) -> &'static str {
        match self.cause {
            Cause::Rejected(rejection) => rejection.reason().as_str(),
            Cause::TimedOut(_) => "timeout",
        }
    }

    /// The default body: a JSON problem document (see [`Reply`](crate::Reply)).
    pub fn to_json(&self) -> Bytes {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), "about:blank".into());
        body.insert(
            "title".into(),
            self.status.canonical_reason().unwrap_or("Error").into(),
        );
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.message.into());
        body.insert("reason".into(), self.reason().into());
        if let Some(secs) = self.retry_after_secs() {
            body.insert("retry_after".into(), secs.into());
        }
        Bytes::from(serde_json::Value::Object(body).to_string())
    }
}

type Factory = dyn Fn(&Problem<'_>) -> Response<Bytes> + Send + Sync;

/// Builds the whole response for a refused or timed-out request, replacing the default JSON
/// body (aioresilience's `response_factory`).
///
/// `Retry-After` and the `RateLimit-*` headers are added to its response unless it set them;
/// the status is the factory's choice ([`Problem::status`] is the layer's).
///
/// ```
/// use bytes::Bytes;
/// use http::{Response, StatusCode};
/// use resilience_http::{Reply, ResponseFactory};
///
/// let plain_text = ResponseFactory::new(|problem| {
///     Response::builder()
///         .status(problem.status())
///         .header("content-type", "text/plain")
///         .body(Bytes::from(format!("sorry: {}", problem.message())))
///         .unwrap()
/// });
/// let reply = Reply::new().factory(plain_text).status(StatusCode::SERVICE_UNAVAILABLE);
/// # let _ = reply;
/// ```
#[derive(Clone)]
pub struct ResponseFactory(pub(super) Arc<Factory>);

impl ResponseFactory {
    /// A factory calling `build` for every refused or timed-out request.
    pub fn new<F>(build: F) -> Self
    where
        F: Fn(&Problem<'_>) -> Response<Bytes> + Send + Sync + 'static,
    {
        Self(Arc::new(build))
    }
}

impl fmt::Debug for ResponseFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFactory(..)")
    }
}
