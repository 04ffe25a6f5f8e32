//! Retry: run an operation again after a failure, waiting longer each time.
//!
//! # When to use it
//!
//! For failures that are likely to pass: a dropped connection, a timeout, a 503 from a
//! dependency that is restarting. Only retry operations that are safe to repeat (reads,
//! idempotent writes, writes with an idempotency key); never retry an answer that will not
//! change, such as "bad request" or "not found" (say so with
//! [`RetryRules::never_retry_if`]). Behind an open circuit breaker a retry is useless, so
//! breaker rejections are not retried by default.
//!
//! # How it decides
//!
//! After each attempt, the caller's [`RetryRules`] (every error by default) say whether the
//! result is a success, a failure to retry, or an error to return as is. A failure is retried
//! while every limit allows it:
//!
//! * **attempts**: at most `max_attempts` in all, the first call included; an error matching
//!   a [`strategy_if`](RetryRules::strategy_if) override counts against that override's own
//!   attempts and uses its own [`Backoff`];
//! * **time**: no retry starts later than `max_elapsed` after the first attempt started;
//! * **budget**: with a [`RetryBudget`], every call deposits a fraction of a retry and every
//!   retry withdraws a whole one, so a fleet of clients cannot multiply the load on a
//!   dependency that is already failing (a per-call limit cannot stop that; a ratio can).
//!
//! The wait before the next attempt comes from the [`Backoff`] (constant, linear,
//! exponential, Fibonacci, decorrelated jitter), then [`Jitter`] (proportional, full, equal),
//! then the `max_delay` cap, applied *after* jitter so no wait exceeds it. A rejection's
//! [`retry_after`](crate::Rejection::retry_after) is honoured when it is longer. Jitter draws
//! from a small generator owned by the policy, seedable with
//! [`seed`](RetryBuilder::seed), and waits use `tokio::time::sleep`, so tests with a paused
//! clock see exact delays.
//!
//! When the limits are reached the call fails with [`Error::RetryExhausted`], carrying the
//! attempt count and the last error, or `last: None` when the last attempt returned a value
//! that [`retry_on_result`](RetryRules::retry_on_result) rejected: such a value is never
//! handed back as a success. Errors of inner patterns passed to
//! [`execute`](Retry::execute): rejections by a circuit breaker, rate limiter or adaptive
//! throttle are returned
//! as is unless [`retry_rejections`](RetryBuilder::retry_rejections) is set; other rejections
//! are retried after at least their `retry_after`; inner timeouts are retried; an exhausted
//! inner retry or a failed fallback is returned as is (retrying a retry multiplies attempts).
//!
//! Dropping the future of a call cancels the running attempt or the wait; no attempt starts
//! after that.
//!
//! # Example
//!
//! ```
//! use resilience::retry::{Backoff, Jitter, Retry, RetryRules};
//! use resilience::Error;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let retry = Retry::builder("payments")
//!     .max_attempts(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
//!     .jitter(Jitter::None)
//!     .build()?;
//!
//! let mut calls = 0;
//! let receipt = retry
//!     .call(|| {
//!         calls += 1;
//!         let attempt = calls;
//!         async move {
//!             if attempt < 3 {
//!                 Err(std::io::Error::other("connection reset"))
//!             } else {
//!                 Ok("paid")
//!             }
//!         }
//!     })
//!     .await?;
//! assert_eq!((receipt, calls), ("paid", 3));
//!
//! // Retry a value: a 503 is not a success.
//! let rules = RetryRules::new().retry_on_result(|status: &u16| *status == 503);
//! let outcome = retry.call_with(&rules, || async { Ok::<_, String>(503) }).await;
//! assert!(matches!(outcome, Err(Error::RetryExhausted { attempts: 3, last: None })));
//! assert_eq!(retry.metrics().total_attempts, 6);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Inside fallback, outside the circuit breaker, rate limiter, timeout and bulkhead: each
//! attempt passes through the breaker (whose rejections end the retrying), and a timeout
//! bounds each attempt rather than the whole call (bound the whole call with `max_elapsed`
//! or an outer timeout). Compose with [`execute`](Retry::execute):
//! `retry.execute(|| breaker.call(|| op()))`. As tower middleware, use [`RetryLayer`]
//! (feature `tower`; requests must be `Clone`).
//!
//! # Events
//!
//! `retry_attempt` before each wait (attempt, max attempts, delay, error), `retry_success`
//! when an attempt succeeds (the first included), `retry_exhausted` when the policy gives up.
//! An error returned as is emits nothing. See [`RetryEvent`] and [`events`](crate::events).
//! `tracing` events go to target `resilience::retry`: debug for attempts, warn when giving up.
//!
//! # Defaults
//!
//! As aioresilience's `RetryPolicies.default()`: 3 attempts, exponential backoff from 1 s
//! with multiplier 2, at most 60 s, 10 % proportional jitter; no time limit, no budget.
//! Presets: [`RetryConfig::aggressive`] (5 attempts, 100 ms ×2, at most 10 s),
//! [`RetryConfig::conservative`] (3 attempts, linear 2 s + 2 s, at most 30 s, 30 % jitter),
//! [`RetryConfig::network`] (4 attempts, 500 ms ×2.5, at most 15 s). A [`BudgetConfig`]
//! defaults to Finagle's: 20 % retries over 10 s, at least 10 retries per second.
//!
//! [`Error::RetryExhausted`]: crate::Error::RetryExhausted

mod backoff;
mod budget;
mod builder;
mod config;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod rules;
mod run;
mod state;

pub use backoff::{Backoff, Jitter};
pub use budget::{BudgetConfig, RetryBudget};
pub use builder::RetryBuilder;
pub use config::RetryConfig;
pub use event::RetryEvent;
pub use handle::Retry;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{ResponseFuture, RetryLayer, RetryService};
pub use metrics::RetryMetrics;
pub use rules::RetryRules;
