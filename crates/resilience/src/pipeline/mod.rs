//! Pipeline: several patterns around one operation, composed in the documented order.
//!
//! # The order, and why
//!
//! Outermost first:
//!
//! ```text
//! fallback → retry → hedge → circuit breaker → rate limiter → timeout → bulkhead → chaos → operation
//! ```
//!
//! * **Fallback outside everything**, so it answers for any failure inside: an exhausted
//!   retry, an open circuit, a rate-limit or bulkhead rejection, a timeout. Inside the retry it
//!   would swallow the errors the retry needs to see.
//! * **Retry outside the circuit breaker**, so each attempt asks the breaker again: once the
//!   circuit opens, the remaining attempts are rejected at once and, by default, not retried at
//!   all (a retry never retries an inner circuit-breaker or rate-limiter rejection), instead of
//!   hammering a dependency that is known to be down. Inside the breaker, a whole retry
//!   sequence would count as one call and the breaker could not stop it.
//! * **Hedge inside the retry, outside the circuit breaker**, so each hedged attempt asks the
//!   breaker, the rate limiter and the bulkhead on its own and the timeout bounds each
//!   attempt rather than the race; the retry starts a new race only when every attempt of
//!   the last one failed. Outside the retry, one slow attempt of a retry sequence would be
//!   hedged with a whole new sequence.
//! * **Circuit breaker outside the rate limiter and timeout**, so a timeout counts as a
//!   failure of the dependency (it is judged as one), while a rejection by the rate limiter or
//!   bulkhead is ignored: being refused a slot says nothing about the dependency's health.
//! * **Rate limiter outside the timeout**, so waiting for a token does not eat into the call's
//!   time budget, and a call that never ran does not count as timed out. An
//!   [`AdaptiveThrottle`](crate::throttle::AdaptiveThrottle) goes in this slot too (alone, or
//!   paired with a limiter as `(limiter, throttle)`): there it learns from every attempt,
//!   a timeout counts as a refusal by the backend, and a throttled attempt is a rejection
//!   the retry does not retry.
//! * **Timeout outside the bulkhead**, so the time spent queueing for a slot counts against
//!   the budget: a caller never waits longer than its timeout in total.
//! * **Bulkhead innermost** of the admitting patterns, so a slot is held only while the
//!   operation really runs.
//! * **Chaos around the operation itself**, so an injected fault, outcome or delay reaches
//!   every pattern above as the dependency's own would: the timeout counts injected latency,
//!   the breaker counts injected faults, the retry retries them.
//!
//! Request [coalescing](crate::coalesce) and the cache (feature `cache`) have no slot: each
//! needs a key, which the pipeline's `call` does not take, and each belongs outside the whole
//! pipeline (a cache hit and a coalesced follower take no slot, token or attempt of their
//! own), so wrap the pipeline's `call` in theirs:
//! `cache.get_or_fetch(&key, || pipeline.call(op))`, inside a fallback if there is one, so a
//! fallback value is never cached as the real answer.
//!
//! Reordering changes meaning, not just cost: a retry inside the breaker hides failures from
//! it; a timeout inside the bulkhead lets queueing exceed the budget; a fallback inside the
//! retry turns every failure into a success and the retry never fires. For another order,
//! nest the patterns by hand (each has `execute`, which takes an inner pattern's result without
//! nesting errors) or stack their tower layers in the order you want.
//!
//! Each slot is optional; an empty pipeline just calls the operation. The rate-limiter and
//! bulkhead slots take any [`Stage`](crate::stage::Stage): a pair fills one slot
//! with two limiters (for example a bulkhead and an adaptive limiter, or a rate limiter and
//! an adaptive throttle).
//!
//! # Example
//!
//! ```
//! use resilience::circuit_breaker::CircuitBreaker;
//! use resilience::pipeline::Pipeline;
//! use resilience::{Fallback, Retry, Timeout};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::<&str, std::io::Error>::builder("inventory")
//!     .fallback(Fallback::builder("inventory").value("cached").build()?)
//!     .retry(Retry::builder("inventory").max_attempts(3).build()?)
//!     .circuit_breaker(CircuitBreaker::builder("inventory").build()?)
//!     .timeout(Timeout::new(Duration::from_millis(100))?)
//!     .build()?;
//!
//! let attempts = AtomicU32::new(0);
//! let stock = pipeline
//!     .call(|| async {
//!         match attempts.fetch_add(1, Ordering::SeqCst) {
//!             0 => Err(std::io::Error::other("connection reset")),
//!             _ => Ok("42 in stock"),
//!         }
//!     })
//!     .await?;
//! assert_eq!(stock, "42 in stock");
//! assert_eq!(attempts.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # With tower
//!
//! The same stack as tower middleware is `ServiceBuilder::new()` with, in this order,
//! `FallbackLayer`, `RetryLayer`, `CircuitBreakerLayer`, the rate-limit layer, `TimeoutLayer`
//! and the bulkhead layer. Each layer wraps its inner service's error in [`Error`](crate::Error);
//! [`Error::flatten`](crate::Error::flatten) (through `ServiceBuilder::map_err`) undoes the
//! nesting where an outer layer should see the inner one's error as its own. A retry layer sees
//! inner rejections as its operation's errors, so give it
//! `RetryRules::new().never_retry_if(Error::is_rejected)` to keep circuit-open rejections
//! non-retryable, as the pipeline does by default (the test `the_same_stack_as_tower_layers`
//! in `tests/pipeline.rs` builds exactly this stack).

mod builder;
mod handle;

pub use builder::PipelineBuilder;
pub use handle::Pipeline;
