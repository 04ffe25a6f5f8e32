//! [`Problem`], what a refusal or a timeout is, and the [`ResponseFactory`] that answers it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use resilience::rate_limit::Decision;
use resilience::{PatternKind, Rejection, RejectionReason};

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

    /// Answers as a gRPC server does, for layers in front of a gRPC service (tonic): a
    /// "trailers-only" response, HTTP 200 with `content-type: application/grpc`,
    /// `grpc-status` and `grpc-message` (the layer's message) and, when the client should come
    /// back later, `grpc-retry-pushback-ms`.
    ///
    /// | refused by | gRPC status |
    /// |---|---|
    /// | rate limiter, load shedder, bulkhead, backpressure, adaptive limiter | `RESOURCE_EXHAUSTED` (8), with pushback |
    /// | circuit breaker, a backend unreachable under a fail-closed policy | `UNAVAILABLE` (14), with pushback |
    /// | timeout, an expired deadline | `DEADLINE_EXCEEDED` (4) |
    ///
    /// ```
    /// use resilience_http::{Reply, ResponseFactory};
    ///
    /// let grpc = Reply::new().factory(ResponseFactory::grpc());
    /// # let _ = grpc;
    /// ```
    pub fn grpc() -> Self {
        Self::new(|problem| {
            let code = grpc_code(problem.cause());
            let mut response = Response::new(Bytes::new());
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(GRPC_STATUS, HeaderValue::from(u16::from(code)));
            if let Ok(message) = HeaderValue::from_str(&grpc_message(problem.message())) {
                headers.insert(GRPC_MESSAGE, message);
            }
            if let (Some(after), GRPC_RESOURCE_EXHAUSTED | GRPC_UNAVAILABLE) =
                (problem.retry_after(), code)
            {
                let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                headers.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from(millis));
            }
            response
        })
    }
}

/// `grpc-status`.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-retry-pushback-ms`: when the client may try again, in milliseconds.
pub const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

const GRPC_DEADLINE_EXCEEDED: u8 = 4;
const GRPC_RESOURCE_EXHAUSTED: u8 = 8;
const GRPC_UNAVAILABLE: u8 = 14;

/// The gRPC status code for why a layer answers.
fn grpc_code(cause: Cause<'_>) -> u8 {
    let Cause::Rejected(rejection) = cause else {
        return GRPC_DEADLINE_EXCEEDED;
    };
    match (rejection.pattern(), rejection.reason()) {
        (_, RejectionReason::DeadlineExpired)
        | (PatternKind::Deadline | PatternKind::Timeout, _) => GRPC_DEADLINE_EXCEEDED,
        (_, RejectionReason::BackendUnavailable) | (PatternKind::CircuitBreaker, _) => {
            GRPC_UNAVAILABLE
        }
        (
            PatternKind::RateLimiter
            | PatternKind::LoadShedder
            | PatternKind::Bulkhead
            | PatternKind::Backpressure
            | PatternKind::AdaptiveConcurrency,
            _,
        ) => GRPC_RESOURCE_EXHAUSTED,
        _ => GRPC_UNAVAILABLE,
    }
}

/// `message` percent-encoded as `grpc-message` wants: printable ASCII but `%` as is.
fn grpc_message(message: &str) -> String {
    use std::fmt::Write as _;
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

impl fmt::Debug for ResponseFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFactory(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded_outside_printable_ascii() {
        assert_eq!(grpc_message("Rate limit exceeded"), "Rate limit exceeded");
        assert_eq!(grpc_message("100% busy"), "100%25 busy");
        assert_eq!(grpc_message("naïve\n"), "na%C3%AFve%0A");
    }
}
