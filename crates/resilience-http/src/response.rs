//! What a refused or timed-out request gets back: status, headers and body.

mod problem;

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{Entry, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use resilience::rate_limit::Decision;
use resilience::{PatternKind, Rejection, RejectionReason};

use crate::decimal;

pub use problem::{Cause, Problem, ResponseFactory, TimedOut, GRPC_RETRY_PUSHBACK_MS};

/// `RateLimit-Limit`: the most requests the client may make at once.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests the client may still make now.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the client's whole budget is back.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// How one layer answers the requests it refuses or times out: status, message,
/// `Retry-After` hint and, optionally, a [`ResponseFactory`].
///
/// Anything left unset takes the default for the pattern that refused (see
/// below), so `Reply::new()` answers as aioresilience's middlewares do.
///
/// ```
/// use http::StatusCode;
/// use resilience_http::Reply;
/// use std::time::Duration;
///
/// // A custom circuit-breaker answer: 429 and its own words.
/// let reply = Reply::new()
///    .status(StatusCode::TOO_MANY_REQUESTS)
///    .message("Upstream is resting")
///    .retry_after(Duration::from_secs(30));
/// # let _ = reply;
/// ```
///
/// One function turns a [`Rejection`] (or a timeout) into a response, so every layer answers
/// the same way and an axum service stays `Infallible`:
///
/// | refused by | status | headers |
/// |---|---|---|
/// | rate limiter | 429 | `Retry-After`, `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` |
/// | circuit breaker, load shedder, bulkhead, backpressure, adaptive limiter, adaptive throttle | 503 | `Retry-After` |
/// | a backend unreachable under a fail-closed policy ([`RejectionReason::BackendUnavailable`]) | 503 | `Retry-After` |
/// | timeout (and an expired deadline) | 408 | |
///
/// **`Retry-After`** is the rejection's own [`retry_after`](Rejection::retry_after), computed by
/// the pattern from its real state (the circuit's remaining open time, the rate limiter's next
/// free token), in whole seconds rounded up and at least 1. Patterns that cannot know when a
/// slot frees up (a bulkhead waits on calls still running) send the layer's hint instead, by
/// default aioresilience's numbers: load shedder 5 s, bulkhead 10 s (5 s when its queue is full,
/// 15 s after a wait timeout), backpressure 5 s, adaptive limiter and adaptive throttle 1 s, an unreachable backend
/// 5 s, rate limiter 60 s (only when a distributed limiter cannot tell). A rate limiter that
/// admitted a request without reading its budget (a Redis limiter failing open) adds no
/// `RateLimit-*` headers. `RateLimit-Reset` is the time until the client's
/// whole budget is back, rounded up; it can be 0.
///
/// **The body** is a JSON problem document ([RFC 9457], `application/problem+json`) whose
/// `detail` is the layer's message, as in aioresilience's `{"detail": ...}`, plus the HTTP title,
/// the status, a stable `reason` (`rate_limited`, `circuit_open`, `capacity_full`, `timeout`, ...)
/// and `retry_after` in seconds when sent:
///
/// ```json
/// {"type":"about:blank","title":"Too Many Requests","status":429,
///  "detail":"Rate limit exceeded","reason":"rate_limited","retry_after":2}
/// ```
///
/// Each layer takes a [`Reply`] to change its status, message and hint, or to build the whole
/// response with a [`ResponseFactory`]; the headers above are added to a factory's response
/// unless it set them itself. Every response made here carries the [`Rejection`] or the
/// [`TimedOut`] in its extensions, so outer layers know it is not the service's own answer: an
/// outer circuit breaker ignores an inner bulkhead's refusal and counts an inner timeout as a
/// failure.
///
/// [RFC 9457]: https://www.rfc-editor.org/rfc/rfc9457
#[derive(Debug, Clone, Default)]
pub struct Reply {
    status: Option<StatusCode>,
    message: Option<Cow<'static, str>>,
    retry_after: Option<Duration>,
    factory: Option<ResponseFactory>,
}

impl Reply {
    /// The defaults of whichever pattern refuses.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers with `status` (for example 504 instead of 408 for timeouts).
    #[must_use]
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Answers with `message` as the body's `detail`.
    #[must_use]
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sends `Retry-After: hint` when the pattern cannot compute when to come back. A
    /// computed value always wins: it is the truth, the hint a guess.
    #[must_use]
    pub fn retry_after(mut self, hint: Duration) -> Self {
        self.retry_after = Some(hint);
        self
    }

    /// Builds the whole response with `factory`.
    #[must_use]
    pub fn factory(mut self, factory: ResponseFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Uses `factory` unless a factory is set already.
    pub(crate) fn default_factory(&mut self, factory: &ResponseFactory) {
        self.factory.get_or_insert_with(|| factory.clone());
    }

    /// The response for a request `rejection` refused; `decision` for a rate limit.
    pub(crate) fn reject(
        &self,
        rejection: &Rejection,
        decision: Option<&Decision>,
    ) -> Response<Bytes> {
        let defaults = Defaults::of_rejection(rejection);
        let retry_after = rejection
            .retry_after()
            .or(self.retry_after)
            .or(defaults.retry_after);
        let mut response =
            self.respond(defaults, Cause::Rejected(rejection), retry_after, decision);
        if let Some(decision) = decision {
            rate_limit_headers(response.headers_mut(), decision, None);
        }
        response.extensions_mut().insert(rejection.clone());
        response
    }

    /// The response for a request that ran out of time.
    pub(crate) fn time_out(&self, timed_out: TimedOut) -> Response<Bytes> {
        let mut response = self.respond(Defaults::TIMEOUT, Cause::TimedOut(timed_out), None, None);
        response.extensions_mut().insert(timed_out);
        response
    }

    fn respond(
        &self,
        defaults: Defaults,
        cause: Cause<'_>,
        retry_after: Option<Duration>,
        rate_limit: Option<&Decision>,
    ) -> Response<Bytes> {
        let problem = Problem {
            status: self.status.unwrap_or(defaults.status),
            message: self.message.as_deref().unwrap_or(defaults.message),
            cause,
            retry_after,
            rate_limit,
        };
        let mut response = match &self.factory {
            Some(factory) => (factory.0)(&problem),
            None => {
                let mut response = Response::new(problem.to_json());
                *response.status_mut() = problem.status;
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                response
            }
        };
        if let Some(secs) = problem.retry_after_secs() {
            insert_absent(response.headers_mut(), RETRY_AFTER, || {
                decimal::header_value(secs)
            });
        }
        response
    }
}

/// A pattern's answer when its [`Reply`] leaves something unset: aioresilience's status
/// codes, messages and `Retry-After` numbers.
#[derive(Debug, Clone, Copy)]
struct Defaults {
    status: StatusCode,
    message: &'static str,
    retry_after: Option<Duration>,
}

impl Defaults {
    const TIMEOUT: Self = Self::new(
        StatusCode::REQUEST_TIMEOUT,
        "Request exceeded timeout",
        None,
    );

    const fn new(status: StatusCode, message: &'static str, retry_after: Option<u64>) -> Self {
        let retry_after = match retry_after {
            Some(secs) => Some(Duration::from_secs(secs)),
            None => None,
        };
        Self {
            status,
            message,
            retry_after,
        }
    }

    fn of_rejection(rejection: &Rejection) -> Self {
        const UNAVAILABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
        match (rejection.pattern(), rejection.reason()) {
            // The backend's outage, not the client's rate: no 429.
            (_, RejectionReason::BackendUnavailable) => {
                Self::new(UNAVAILABLE, "Service temporarily unavailable", Some(5))
            }
            (PatternKind::RateLimiter, _) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded",
                Some(60),
            ),
            (PatternKind::CircuitBreaker, _) => Self::new(
                UNAVAILABLE,
                "Service temporarily unavailable due to circuit breaker",
                None,
            ),
            (PatternKind::LoadShedder, _) => Self::new(
                UNAVAILABLE,
                "Service temporarily overloaded. Please retry later.",
                Some(5),
            ),
            (PatternKind::Bulkhead, RejectionReason::QueueFull) => {
                Self::new(UNAVAILABLE, "Service at capacity", Some(5))
            }
            (PatternKind::Bulkhead, RejectionReason::WaitTimeout) => {
                Self::new(UNAVAILABLE, "Service at capacity", Some(15))
            }
            (PatternKind::Bulkhead, _) => Self::new(UNAVAILABLE, "Service at capacity", Some(10)),
            (PatternKind::Backpressure, _) => {
                Self::new(UNAVAILABLE, "System under backpressure", Some(5))
            }
            (PatternKind::AdaptiveConcurrency, _) => {
                Self::new(UNAVAILABLE, "Concurrency limit reached", Some(1))
            }
            // The dependency behind this service is refusing work: pass the overload on.
            (PatternKind::Throttle, _) => Self::new(
                UNAVAILABLE,
                "Upstream overloaded. Please retry later.",
                Some(1),
            ),
            (PatternKind::Deadline, _) => Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "Request deadline expired",
                None,
            ),
            _ => Self::new(UNAVAILABLE, "Service unavailable", None),
        }
    }
}

/// Whole seconds, rounded up.
pub(crate) fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` unless present (an
/// inner, closer limiter's figures win), and only for a decision that read the budget: a
/// limiter that decided by its failure policy knows no figures, and none are invented. Values
/// `ready` made in advance are used when they fit.
pub(crate) fn rate_limit_headers(
    headers: &mut HeaderMap,
    decision: &Decision,
    ready: Option<&ReadyValues>,
) {
    if !decision.budget_known() {
        return;
    }
    insert_absent(headers, RATELIMIT_LIMIT, || {
        ReadyNumber::value_of(ready.map(|ready| &ready.limit), decision.limit())
    });
    insert_absent(headers, RATELIMIT_REMAINING, || {
        ReadyNumber::value_of(
            ready.map(|ready| &ready.whole_remaining),
            decision.remaining(),
        )
    });
    insert_absent(headers, RATELIMIT_RESET, || {
        decimal::header_value(seconds_up(decision.reset_after()))
    });
}

/// The `RateLimit-*` values a rate limit can make once, before any request, because its limit
/// is fixed: `RateLimit-Limit`, and the `RateLimit-Remaining` of a client whose budget was
/// whole (`limit - 1`, what a client well under its rate sees on every request). Handing out
/// a clone is cheaper than formatting the number or finding it in a cache.
#[derive(Debug, Clone)]
pub(crate) struct ReadyValues {
    limit: ReadyNumber,
    whole_remaining: ReadyNumber,
}

impl ReadyValues {
    /// The values for a limit of `limit` requests.
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            limit: ReadyNumber::new(limit),
            whole_remaining: ReadyNumber::new(limit.saturating_sub(1)),
        }
    }
}

/// A number and its header value, made in advance.
#[derive(Debug, Clone)]
struct ReadyNumber {
    number: u32,
    value: HeaderValue,
}

impl ReadyNumber {
    fn new(number: u32) -> Self {
        Self {
            number,
            value: decimal::header_value(u64::from(number)),
        }
    }

    /// `number`'s header value: a clone of the ready one when it is that number.
    #[inline]
    fn value_of(ready: Option<&Self>, number: u32) -> HeaderValue {
        match ready {
            Some(ready) if ready.number == number => ready.value.clone(),
            _ => decimal::header_value(u64::from(number)),
        }
    }
}

/// Inserts `value()` under `name` unless the name is present, hashing the name once.
fn insert_absent(headers: &mut HeaderMap, name: HeaderName, value: impl FnOnce() -> HeaderValue) {
    if let Entry::Vacant(vacant) = headers.entry(name) {
        vacant.insert(value());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use resilience::rate_limit::Denial;

    use super::*;

    fn rejection(pattern: PatternKind, reason: RejectionReason, after: Option<u64>) -> Rejection {
        Rejection::new(
            pattern,
            Arc::from("api"),
            reason,
            after.map(Duration::from_millis),
        )
    }

    fn json(response: &Response<Bytes>) -> serde_json::Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_nanos(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(seconds_up(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn a_rate_limit_is_429_with_every_header() {
        let decision = Decision::denied(
            Denial::RateExceeded,
            3,
            Duration::from_millis(2500),
            Some(Duration::from_millis(400)),
        );
        let limited = rejection(
            PatternKind::RateLimiter,
            RejectionReason::RateLimited,
            Some(400),
        );
        let response = Reply::new().reject(&limited, Some(&decision));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let headers = response.headers();
        assert_eq!(headers[RETRY_AFTER], "1");
        assert_eq!(headers["ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-reset"], "3");
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
        let body = json(&response);
        assert_eq!(body["detail"], "Rate limit exceeded");
        assert_eq!(body["reason"], "rate_limited");
        assert_eq!(body["status"], 429);
        assert_eq!(body["retry_after"], 1);
        assert_eq!(response.extensions().get::<Rejection>(), Some(&limited));
    }

    /// The three headers `rate_limit_headers` writes into an empty map.
    fn figures(decision: &Decision, ready: Option<&ReadyValues>) -> [String; 3] {
        let mut headers = HeaderMap::new();
        rate_limit_headers(&mut headers, decision, ready);
        [RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET]
            .map(|name| headers[name].to_str().unwrap().to_owned())
    }

    #[test]
    fn admitted_figures_are_the_decisions_with_or_without_ready_values() {
        let second = Duration::from_secs(1);
        let cases = [
            // (limit, remaining, reset_after) -> (limit, remaining, reset)
            ((3, 2, Duration::from_millis(334)), ["3", "2", "1"]),
            ((3, 0, Duration::from_millis(2000)), ["3", "0", "2"]),
            ((100, 99, Duration::ZERO), ["100", "99", "0"]),
            (
                (1_000_000_000, 999_999_999, Duration::from_nanos(1)),
                ["1000000000", "999999999", "1"],
            ),
            (
                (
                    1_000_000_000,
                    123_456_789,
                    second * 3600 + Duration::from_nanos(1),
                ),
                ["1000000000", "123456789", "3601"],
            ),
            (
                (u32::MAX, u32::MAX - 1, second * 5000),
                ["4294967295", "4294967294", "5000"],
            ),
            ((1, 0, second), ["1", "0", "1"]),
        ];
        let ready = [1, 3, 100, 1_000_000_000, u32::MAX].map(ReadyValues::new);
        for ((limit, remaining, reset), expected) in cases {
            let decision = Decision::allowed(limit, remaining, reset);
            assert_eq!(figures(&decision, None), expected, "{decision:?}");
            for ready in &ready {
                assert_eq!(
                    figures(&decision, Some(ready)),
                    expected,
                    "{decision:?} {ready:?}"
                );
            }
        }
    }

    #[test]
    fn an_inner_limiters_headers_win() {
        let mut headers = HeaderMap::new();
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from_static("7"));
        let decision = Decision::allowed(1_000, 999, Duration::from_secs(2));
        rate_limit_headers(&mut headers, &decision, Some(&ReadyValues::new(1_000)));
        assert_eq!(headers[RATELIMIT_LIMIT], "1000");
        assert_eq!(headers[RATELIMIT_REMAINING], "7");
        assert_eq!(headers[RATELIMIT_RESET], "2");
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn an_unreachable_backend_is_503_without_rate_limit_headers() {
        let decision = Decision::denied(Denial::BackendUnavailable, 3, Duration::ZERO, None);
        let down = rejection(
            PatternKind::RateLimiter,
            RejectionReason::BackendUnavailable,
            None,
        );
        let response = Reply::new().reject(&down, Some(&decision));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert!(!response.headers().contains_key(RATELIMIT_LIMIT));
        assert!(!response.headers().contains_key(RATELIMIT_REMAINING));
        assert_eq!(json(&response)["reason"], "backend_unavailable");

        let mut headers = HeaderMap::new();
        rate_limit_headers(&mut headers, &Decision::allowed_unmetered(3), None);
        assert!(headers.is_empty(), "no figures for an unmetered admission");
    }

    #[test]
    fn a_computed_wait_beats_the_hint_and_the_hint_fills_in() {
        let open = rejection(
            PatternKind::CircuitBreaker,
            RejectionReason::CircuitOpen,
            Some(12_300),
        );
        let reply = Reply::new().retry_after(Duration::from_secs(99));
        let response = reply.reject(&open, None);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "13");

        let full = rejection(PatternKind::Bulkhead, RejectionReason::CapacityFull, None);
        assert_eq!(
            Reply::new().reject(&full, None).headers()[RETRY_AFTER],
            "10"
        );
        assert_eq!(reply.reject(&full, None).headers()[RETRY_AFTER], "99");

        let forced = rejection(
            PatternKind::CircuitBreaker,
            RejectionReason::CircuitForcedOpen,
            None,
        );
        assert!(!Reply::new()
            .reject(&forced, None)
            .headers()
            .contains_key(RETRY_AFTER));
    }

    #[test]
    fn timeouts_are_408_by_default_and_configurable() {
        let timed_out = TimedOut {
            elapsed: Duration::from_millis(100),
            limit: Duration::from_millis(100),
        };
        let response = Reply::new().time_out(timed_out);
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(!response.headers().contains_key(RETRY_AFTER));
        assert_eq!(json(&response)["reason"], "timeout");
        assert_eq!(response.extensions().get::<TimedOut>(), Some(&timed_out));

        let gateway = Reply::new()
            .status(StatusCode::GATEWAY_TIMEOUT)
            .message("Too slow");
        let response = gateway.time_out(timed_out);
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(json(&response)["detail"], "Too slow");
    }

    #[test]
    fn a_throttled_call_is_503_with_a_short_hint() {
        let throttled = rejection(PatternKind::Throttle, RejectionReason::Throttled, None);
        let response = Reply::new().reject(&throttled, None);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(
            json(&response)["detail"],
            "Upstream overloaded. Please retry later."
        );
    }

    #[test]
    fn a_factory_builds_the_body_and_keeps_the_computed_headers() {
        let factory = ResponseFactory::new(|problem| {
            let mut response = Response::new(Bytes::from(problem.reason()));
            *response.status_mut() = StatusCode::IM_A_TEAPOT;
            response
        });
        let shed = rejection(PatternKind::LoadShedder, RejectionReason::LoadShed, None);
        let response = Reply::new().factory(factory).reject(&shed, None);
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(&response.body()[..], b"load_shed");
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert_eq!(response.extensions().get::<Rejection>(), Some(&shed));
    }
}
