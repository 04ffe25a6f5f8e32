//! Retry, a circuit breaker per host, a client-side rate limit and a timeout for
//! [`reqwest`], as one [`reqwest-middleware`](reqwest_middleware) middleware built on the
//! patterns of [`resilience`].
//!
//! ```no_run
//! use resilience::circuit_breaker::KeyedCircuitBreaker;
//! use resilience::retry::{Backoff, BudgetConfig};
//! use resilience::{Retry, Timeout};
//! use resilience_reqwest::{ClientError, ResilientMiddleware};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let middleware = ResilientMiddleware::builder()
//!     .retry(
//!         Retry::builder("upstream")
//!             .max_attempts(3)
//!             .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
//!             .budget(BudgetConfig::default())
//!             .build()?,
//!     )
//!     .breaker_per_host(KeyedCircuitBreaker::builder("hosts").failure_threshold(5).build()?)
//!     .timeout(Timeout::new(Duration::from_secs(2))?)
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(middleware)
//!     .build();
//!
//! match client.get("http://127.0.0.1:8080/items").send().await.map_err(ClientError::from) {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(ClientError::Rejected(rejection)) => println!("not sent: {rejection}"),
//!     Err(ClientError::Timeout { limit, .. }) => println!("no answer within {limit:?}"),
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What each part does
//!
//! Every part is off until added to the [builder](ResilientMiddlewareBuilder). For each
//! request, in this order (DESIGN's pipeline order: retry outside, breaker, rate limit,
//! timeout inside):
//!
//! * **Retry** ([`Retry`](resilience::Retry), the core's policy: backoff, jitter, attempts,
//!   total time, retry budget, events). Only requests that are safe to send twice are
//!   retried: idempotent methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`) and
//!   requests carrying an `Idempotency-Key` header (configurable). Retried: answers 429,
//!   502, 503 and 504 (configurable) and transport failures (connection refused or reset,
//!   reqwest's timeouts), and this middleware's own timeouts. A `Retry-After` in seconds or
//!   as an HTTP date makes the wait at least that long; one longer than
//!   [`max_retry_after`](ResilientMiddlewareBuilder::max_retry_after) (60 s) ends the
//!   retrying. When the retries run out the caller gets the **last answer**, as it came (a
//!   503 is a response, not an error), with [`Attempts`] in its extensions; after a transport
//!   failure, [`ClientError::RetryExhausted`].
//! * **A circuit breaker per host** ([`KeyedCircuitBreaker`](resilience::circuit_breaker::KeyedCircuitBreaker),
//!   keyed by `scheme://host:port`): a host whose calls keep failing (5xx, connection
//!   errors, timeouts) gets its circuit opened, and requests to it fail at once with
//!   [`ClientError::Rejected`] without reaching the network, while other hosts are served.
//!   A 429 counts neither way (it is about this client's pace, not the host's health). The
//!   map is bounded and evicts only idle, closed breakers. Breaker rejections are not
//!   retried.
//! * **Stages**: a client-side [rate limit](ResilientMiddlewareBuilder::rate_limit)
//!   ([`DirectRateLimiter`](resilience::rate_limit::DirectRateLimiter)) or [any
//!   stage](ResilientMiddlewareBuilder::stage), passed by every attempt.
//! * **Timeout** ([`Timeout`](resilience::Timeout)) on each attempt, until the response head
//!   arrives. Bound the whole call with the retry's `max_elapsed`.
//!
//! # Errors
//!
//! `reqwest-middleware` returns its own error type;
//! [`ClientError::from`](ClientError) turns it into one flat enum to match on:
//! [`Rejected`](ClientError::Rejected), [`Timeout`](ClientError::Timeout),
//! [`RetryExhausted`](ClientError::RetryExhausted),
//! [`BodyNotCloneable`](ClientError::BodyNotCloneable), [`Request`](ClientError::Request)
//! (reqwest's own error) and [`Middleware`](ClientError::Middleware) (another middleware's).
//!
//! # Bodies that cannot be sent twice
//!
//! A request with a streaming body ([`reqwest::Body::wrap_stream`]) cannot be cloned, so it
//! cannot be retried. When retries are on and the request may be retried, it is refused
//! **before anything is sent**, with [`ClientError::BodyNotCloneable`], instead of being sent
//! once and failing later for want of a copy; a streaming `POST` without an idempotency key is
//! never retried and is sent as usual.
//!
//! # Cost
//!
//! The whole stack is one middleware, so a request pays for one boxed future (the
//! `async_trait` of `reqwest-middleware`'s trait), whichever parts are on; the breaker's and
//! the stage's admissions are answered without allocating, and the timeout runs inline.
//! Without retries, or for a request that may not be retried, the request is not cloned;
//! with retries, each attempt sends its own copy (bodies of bytes are shared, not copied).
//! `reqwest-middleware` itself boxes the inner client call once per attempt.

mod builder;
mod error;
mod host;
mod middleware;
mod retry_after;

pub use builder::{ResilientMiddlewareBuilder, IDEMPOTENCY_KEY};
pub use error::ClientError;
pub use middleware::{Attempts, ResilientMiddleware};
