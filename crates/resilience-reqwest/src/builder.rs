//! [`ResilientMiddlewareBuilder`]: the front door to a configured middleware.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::StatusCode;
use reqwest::Response;
use resilience::circuit_breaker::KeyedCircuitBreaker;
use resilience::hedge::Hedge;
use resilience::rate_limit::DirectRateLimiter;
use resilience::retry::RetryRules;
use resilience::stage::Stage;
use resilience::{ConfigError, ConfigProblem, Retry, Timeout};
use resilience_http::DeadlinePropagation;

use crate::middleware::{Failure, Settings};
use crate::retry_after::retry_after;
use crate::ResilientMiddleware;

/// The default idempotency header, `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Builds a [`ResilientMiddleware`]; each part is off until added. Nothing is checked until
/// [`build`](Self::build).
///
/// ```
/// use resilience::circuit_breaker::KeyedCircuitBreaker;
/// use resilience::rate_limit::DirectRateLimiter;
/// use resilience::{Rate, Retry, Timeout};
/// use resilience_reqwest::ResilientMiddleware;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let middleware = ResilientMiddleware::builder()
///     .retry(Retry::builder("upstream").max_attempts(3).build()?)
///     .breaker_per_host(KeyedCircuitBreaker::builder("hosts").failure_threshold(5).build()?)
///     .rate_limit(DirectRateLimiter::builder("outgoing").rate(Rate::per_second(100)).build()?)
///     .timeout(Timeout::new(Duration::from_secs(2))?)
///     .max_retry_after(Duration::from_secs(30))
///     .build()?;
/// # let _ = middleware;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Debug)]
pub struct ResilientMiddlewareBuilder<S = ()> {
    retry: Option<Retry>,
    hedge: Option<Hedge>,
    breakers: Option<KeyedCircuitBreaker<String>>,
    stage: S,
    timeout: Option<Timeout>,
    retry_statuses: Vec<StatusCode>,
    idempotency_key: Option<HeaderName>,
    max_retry_after: Duration,
    deadline: Option<DeadlinePropagation>,
}

impl ResilientMiddlewareBuilder {
    pub(crate) fn new() -> Self {
        Self {
            retry: None,
            hedge: None,
            breakers: None,
            stage: (),
            timeout: None,
            retry_statuses: vec![
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
            idempotency_key: Some(IDEMPOTENCY_KEY),
            max_retry_after: Duration::from_secs(60),
            deadline: None,
        }
    }
}

impl<S> ResilientMiddlewareBuilder<S> {
    /// Retries with this policy: its attempts, backoff, jitter, time limit and retry budget,
    /// its events and metrics. Off by default.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Hedges each request with this policy: when the first attempt has no good answer
    /// within the hedge's delay (or fails), another copy is sent, up to the hedge's extra
    /// attempts and within its budget; the first good answer wins and the other attempts
    /// are cancelled at once. Only requests that are safe to send twice are hedged (as for
    /// retries), and each attempt passes the host's breaker, the stages and the timeout on
    /// its own. With a retry policy too, every retry is a new round of hedged attempts, and
    /// [`Attempts`](crate::Attempts) counts every request sent. Off by default.
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.hedge = Some(hedge);
        self
    }

    /// A circuit breaker per host (scheme and authority), from this map. Off by default.
    pub fn breaker_per_host(mut self, breakers: KeyedCircuitBreaker<String>) -> Self {
        self.breakers = Some(breakers);
        self
    }

    /// Adds a stage every attempt must pass after the host's breaker, such as a
    /// [`Bulkhead`](resilience::Bulkhead) or an
    /// [`AdaptiveLimiter`](resilience::AdaptiveLimiter); stages added earlier are passed
    /// first. A stage's rejection ends the request with
    /// [`ClientError::Rejected`](crate::ClientError::Rejected), unless it is retryable for
    /// the retry policy (a rate limiter's and a breaker's are not, by default).
    pub fn stage<T>(self, stage: T) -> ResilientMiddlewareBuilder<(S, T)>
    where
        S: Stage,
        T: Stage + Clone + 'static,
    {
        ResilientMiddlewareBuilder {
            retry: self.retry,
            hedge: self.hedge,
            breakers: self.breakers,
            stage: (self.stage, stage),
            timeout: self.timeout,
            retry_statuses: self.retry_statuses,
            idempotency_key: self.idempotency_key,
            max_retry_after: self.max_retry_after,
            deadline: self.deadline,
        }
    }

    /// A client-side rate limit: each attempt spends one unit of `limiter`'s budget. With
    /// the limiter's `max_wait`, attempts wait for the budget instead of failing at once.
    pub fn rate_limit(
        self,
        limiter: DirectRateLimiter,
    ) -> ResilientMiddlewareBuilder<(S, DirectRateLimiter)>
    where
        S: Stage,
    {
        self.stage(limiter)
    }

    /// Cancels an attempt that has no response head within the timeout's limit (the body is
    /// read later, outside it). Off by default.
    pub fn timeout(mut self, timeout: Timeout) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Passes the current [`Deadline`](resilience::timeout::Deadline) on: every attempt made
    /// inside one carries the time left, less the propagation's margin, in its header (a
    /// service behind a [`DeadlineLayer`](resilience_http::DeadlineLayer) makes it its own
    /// deadline), and an attempt with nothing left is not sent
    /// ([`ClientError::Rejected`](crate::ClientError::Rejected), never retried). Off by
    /// default.
    pub fn deadline(mut self, propagation: DeadlinePropagation) -> Self {
        self.deadline = Some(propagation);
        self
    }

    /// The answers to retry (429, 502, 503, 504).
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.retry_statuses = statuses.into_iter().collect();
        self
    }

    /// Treats requests carrying header `name` as idempotent whatever their method
    /// (`Idempotency-Key` by default); `None` trusts methods only.
    pub fn idempotency_key(mut self, name: Option<HeaderName>) -> Self {
        self.idempotency_key = name;
        self
    }

    /// The longest `Retry-After` honoured (60 s). An answer asking for a longer wait is not
    /// retried: it comes back at once, rather than after a wait the caller did not allow, or
    /// a retry sooner than the server asked.
    pub fn max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after = limit;
        self
    }

    /// Validates and builds the middleware.
    pub fn build(self) -> Result<ResilientMiddleware<S>, ConfigError> {
        if self.max_retry_after > resilience::MAX_DURATION {
            return Err(ConfigError::new(
                "max_retry_after",
                ConfigProblem::TooLarge {
                    max: resilience::MAX_DURATION.as_secs_f64(),
                },
            ));
        }
        Ok(ResilientMiddleware {
            settings: Arc::new(Settings {
                rules: rules(self.max_retry_after),
                retry: self.retry,
                hedge: self.hedge,
                breakers: self.breakers,
                stage: self.stage,
                timeout: self.timeout,
                retry_statuses: self.retry_statuses.into(),
                idempotency_key: self.idempotency_key,
                deadline: self.deadline,
            }),
        })
    }
}

/// What the retry policy retries: every retryable answer whose `Retry-After` (if any) is
/// within `cap`, waiting at least that long; transport failures of reqwest; nothing else.
///
/// All of it is one `never_retry_if` rather than a `retry_if`: the retry then hands every
/// response that is not a retryable answer (those come as errors) straight back, without
/// judging it.
fn rules(cap: Duration) -> RetryRules<Response, Failure> {
    RetryRules::new()
        .never_retry_if(move |failure| match failure {
            Failure::Answer(response) => {
                retry_after(response.headers()).is_some_and(|wait| wait > cap)
            }
            Failure::Sent(reqwest_middleware::Error::Reqwest(error)) => {
                !(error.is_connect() || error.is_timeout() || error.is_request())
            }
            Failure::Sent(reqwest_middleware::Error::Middleware(_)) | Failure::NotCloneable => true,
        })
        .retry_after(|result| match result {
            Err(Failure::Answer(response)) => retry_after(response.headers()),
            _ => None,
        })
}
