//! Circuit breaker: stop calling a dependency that keeps failing, and find out when it is back.
//!
//! # When to use it
//!
//! Around calls to a remote dependency (a database, an HTTP API) whose failures tend to come in
//! runs. While the dependency is down, an open circuit fails calls at once instead of letting
//! each one wait for a timeout, which protects both the caller's latency and the dependency's
//! chance to recover. It is not a rate limiter and not a retry: compose it with those
//! (see [`Pipeline` order](crate#composing-patterns)).
//!
//! # How it decides
//!
//! * **Closed**: calls run; a [failure detector](FailureDetector) watches their outcomes and
//!   decides when to open. The default opens after 5 failures in a row; others count failures in
//!   a time window, or a failure rate or slow-call rate over the last N calls or the last period
//!   ([`DetectorConfig`]), or combine several.
//! * **Open** for `open_duration` (60 s by default), counted on the monotonic clock from the
//!   moment it opened, not from the last failure, so a slow failing call cannot keep a
//!   circuit open. Rejections carry the remaining open time as
//!   [`retry_after`](crate::Rejection::retry_after). With
//!   [`open_duration_backoff`](CircuitBreakerBuilder::open_duration_backoff) each consecutive
//!   trip lengthens it.
//! * **Half-open**: at most `half_open_max_calls` probes (1) run at once, each admitted and
//!   counted in one step, so no burst of callers can slip through.
//!   `success_threshold` (2) successful probes close the circuit; any counted failure reopens
//!   it. A probe whose error is *ignored* by the [classifier](crate::classify), or whose future
//!   is dropped, gives its slot back, so the circuit can never get stuck half-open.
//!
//! [`state()`](CircuitBreaker::state) and [`metrics()`](CircuitBreaker::metrics) are never
//! stale: when the open duration has passed they report (and perform) the move to half-open.
//! Operators can [`trip`](CircuitBreaker::trip), [`force_open`](CircuitBreaker::force_open),
//! [`disable`](CircuitBreaker::disable) (admit everything, keep metrics) and
//! [`reset`](CircuitBreaker::reset).
//!
//! In the closed state a successful call takes no lock and allocates nothing when the detector
//! allows it (the default detector does): admission is one atomic load, the outcome a few
//! atomic increments.
//!
//! Callers that run the call themselves take a permit:
//! [`try_acquire`](CircuitBreaker::try_acquire) hands out a [`Permit`] that borrows the
//! breaker (no reference count is taken), [`try_acquire_owned`](CircuitBreaker::try_acquire_owned)
//! an [`OwnedPermit`] to move into a task. Either records the outcome it is given, and a
//! permit dropped without one counts as ignored.
//!
//! # Example
//!
//! ```
//! use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
//! use resilience::Error;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = CircuitBreaker::builder("payments")
//!     .failure_threshold(2)
//!     .open_duration(Duration::from_secs(30))
//!     .build()?;
//!
//! for _ in 0..2 {
//!     let _ = breaker.call(|| async { Err::<(), _>("connection refused") }).await;
//! }
//! assert_eq!(breaker.state(), CircuitState::Open);
//!
//! match breaker.call(|| async { Ok::<_, &str>("never runs") }).await {
//!     Err(Error::Rejected(rejection)) => {
//!         assert_eq!(rejection.retry_after(), Some(Duration::from_secs(30)));
//!     }
//!     other => panic!("expected a rejection, got {other:?}"),
//! }
//!
//! tokio::time::advance(Duration::from_secs(30)).await;
//! assert_eq!(breaker.state(), CircuitState::HalfOpen);
//! # Ok(())
//! # }
//! ```
//!
//! # One breaker per key
//!
//! A client of many upstream hosts wants one circuit per host, so one failing host does not
//! cut off the others. [`KeyedCircuitBreaker`] makes a breaker per key on first use, from one
//! config, in a map bounded by `max_keys` that evicts only idle, closed breakers nobody
//! holds (`resilience-reqwest` keys it by scheme and authority).
//!
//! # In the pipeline
//!
//! Inside retry and fallback, outside the rate limiter, timeout and bulkhead: a timeout inside
//! the breaker counts as a failure, and a retry outside it sees its rejections as
//! non-retryable. As tower middleware, use [`CircuitBreakerLayer`] (feature `tower`).
//!
//! # Time
//!
//! A breaker reads the CPU's time-stamp counter (through [`quanta`](https://docs.rs/quanta),
//! which falls back to the monotonic clock on CPUs without an invariant counter): a few
//! nanoseconds per read, where `tokio::time::Instant::now()` costs tens. Built inside a tokio
//! runtime whose clock is paused (`#[tokio::test(start_paused = true)]`, or after
//! `tokio::time::pause()`), it reads tokio's clock instead, so `advance` and auto-advance
//! drive it exactly. The choice is made once, when it is built: in a test, pause the clock
//! first, then build it.
//!
//! # Events
//!
//! `state_change` on every transition, followed by `circuit_opened`, `circuit_half_open` or
//! `circuit_closed`; `call_success`, `call_failure`, `call_rejected`; `circuit_reset`. See
//! [`CircuitBreakerEvent`] and [`events`](crate::events).
//!
//! # Defaults
//!
//! As aioresilience: 5 consecutive failures, open for 60 s, 2 successes to close, 1 probe at
//! a time, no call timeout. c-breaker's detectors are [`DetectorConfig::FailureCount`]
//! (5 in 60 s) and [`DetectorConfig::FailureRate`] (50 % of the last 10, at least 5 calls).

mod builder;
mod config;
mod detector;
mod event;
mod handle;
mod instruments;
mod keyed;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod permit;
mod registry;
mod state;
mod transition;

pub use builder::CircuitBreakerBuilder;
pub use config::{CircuitBreakerConfig, Combine, CustomDetector, DetectorConfig, Window};
pub use detector::{CallGroup, CallRecord, DetectorState, FailureDetector, RestoreError};
pub use event::{CircuitBreakerEvent, CircuitState};
pub use handle::CircuitBreaker;
pub use keyed::{KeyedCircuitBreaker, KeyedCircuitBreakerBuilder};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{CircuitBreakerLayer, CircuitBreakerService, ResponseFuture};
pub use metrics::CircuitBreakerMetrics;
pub use permit::{OwnedPermit, Permit};
pub use transition::StateTransition;
