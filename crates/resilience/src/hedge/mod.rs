//! Hedging: when an attempt is slow, start another, take the first good answer, cancel the
//! rest.
//!
//! # When to use it
//!
//! For idempotent reads from a replicated dependency whose latency has a long tail: one
//! replica in a hundred stalls on a GC pause or a cold cache, and a second request to
//! another replica answers long before the first. Hedging trades a little extra load for a
//! much shorter tail. Do not hedge writes that are not idempotent, and do not hedge a
//! dependency that is slow because it is overloaded (the budget limits the damage, a
//! [circuit breaker](crate::circuit_breaker) or [rate limiter](crate::rate_limit) inside
//! each attempt prevents it).
//!
//! # How it decides
//!
//! The primary attempt starts at once. The next one starts when the [`HedgeDelay`] passes
//! without an acceptable answer, or at once when a running attempt fails, up to
//! `max_hedged_attempts` extra ones:
//!
//! * [`HedgeDelay::Latency`]: after a fixed delay (each extra attempt one delay after the
//!   one before);
//! * [`HedgeDelay::Parallel`]: every attempt at once;
//! * [`HedgeDelay::Fallback`]: only after a failure, never on time;
//! * [`HedgeDelay::Percentile`]: after a percentile of recent latencies, measured in a
//!   histogram with sub-millisecond buckets and recomputed periodically, never per call.
//!   Until enough calls are measured it behaves as fallback. (tokio's timers tick in whole
//!   milliseconds, so a measured delay of 200 µs starts the next attempt at the first tick
//!   after it: late by less than a millisecond, never at once as a histogram of whole
//!   milliseconds would make it.)
//!
//! The first result that is acceptable wins, and every other attempt is cancelled (its future
//! dropped) at once. Acceptable means anything the [`Classifier`](crate::classify::Classifier)
//! of the call does not count as a failure: every `Ok` by default, and an *ignored* error
//! such as "not found" too, since another replica would say the same. Through
//! [`execute`](Hedge::execute), an inner pattern's timeout or rejection fails only its own
//! attempt, so a timeout inside one attempt never cancels the whole hedge. When every attempt
//! failed and no other may start, the call returns the last failure.
//!
//! Extra attempts are drawn from a [`RetryBudget`](crate::retry::RetryBudget): every call
//! deposits a fraction of an attempt, every extra attempt withdraws a whole one, so a slow
//! dependency sees at most that fraction of extra load. When the budget says no, the call
//! goes on with the attempts it has. One budget may be shared with a retry policy, to bound
//! the extra load of both.
//!
//! The operation receives the attempt number (the primary is 1), so an extra attempt can be
//! sent elsewhere, to another replica or another region.
//!
//! Attempts run concurrently inside the caller's task: nothing is spawned, and dropping the
//! call's future cancels every attempt. A call answered before its delay reads no clock
//! (except in percentile mode, which measures it), arms no timer and allocates nothing.
//!
//! # Example
//!
//! ```
//! use resilience::hedge::Hedge;
//! use std::time::Duration;
//! use tokio::time::{sleep, Instant};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hedge = Hedge::builder("search")
//!     .delay(Duration::from_millis(20))
//!     .build()?;
//!
//! let replicas = ["slow-replica", "fast-replica"];
//! let start = Instant::now();
//! let answer = hedge
//!     .call(|attempt| async move {
//!         let replica = replicas[attempt as usize - 1];
//!         let latency = if attempt == 1 { 500 } else { 5 };
//!         sleep(Duration::from_millis(latency)).await;
//!         Ok::<_, std::io::Error>(replica)
//!     })
//!     .await?;
//! assert_eq!(answer, "fast-replica");
//! assert_eq!(start.elapsed(), Duration::from_millis(25), "20 ms delay + 5 ms");
//! assert_eq!(hedge.metrics().hedge_wins, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Inside retry, outside the circuit breaker: every attempt passes through the breaker, rate
//! limiter, timeout and bulkhead on its own (so the timeout bounds each attempt, not the
//! race), and a retry starts a new race only when every attempt of the last one failed. By
//! hand: `retry.execute(|| hedge.execute(|_| breaker.call(|| op())))`. As tower middleware,
//! use [`HedgeLayer`] (feature `tower`): each extra attempt needs a copy of the request, made
//! by a [`HedgeRequest`] policy; a request that cannot be copied is refused up front.
//!
//! # Events
//!
//! `hedge_attempt` when an extra attempt starts (its number, the time since the call started,
//! and what triggered it), `hedge_skipped` when the budget refuses one, `hedge_success` with
//! the winning attempt, `hedge_failure` when every attempt failed. See [`HedgeEvent`] and
//! [`events`](crate::events). `tracing` events go to target `resilience::hedge` (debug).
//!
//! # Defaults
//!
//! As Polly's hedging strategy: one extra attempt after 2 s. Plus a budget of 10 % extra
//! attempts over 10 s, at least 10 per second (Polly has none; tower's hedge has none
//! either).

mod builder;
mod config;
mod event;
mod handle;
mod latency;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod race;
mod state;

pub use builder::HedgeBuilder;
pub use config::{HedgeConfig, HedgeDelay, MAX_HEDGED_ATTEMPTS};
pub use event::{HedgeEvent, HedgeTrigger};
pub use handle::Hedge;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{CloneRequest, HedgeLayer, HedgeRequest, HedgeService, ResponseFuture};
pub use metrics::HedgeMetrics;
