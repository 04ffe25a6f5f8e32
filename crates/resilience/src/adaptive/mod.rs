//! Adaptive concurrency: find the concurrency a dependency can take, and keep to it.
//!
//! # When to use it
//!
//! Around calls to a dependency whose capacity you do not know or which changes (other
//! tenants, autoscaling, garbage collection): a fixed bulkhead is either too small and wastes
//! capacity, or too large and lets a queue build up at the dependency. An adaptive limiter
//! moves its limit with what the calls say. It is not a rate limiter, and it does not protect
//! this service from its own callers (that is load shedding).
//!
//! # How it decides
//!
//! A call is admitted while fewer than `limit` calls are in flight (one compare-exchange, no
//! lock); at the limit [`try_acquire`](AdaptiveLimiter::try_acquire) refuses at once (as
//! aioresilience's `acquire` does) and [`acquire`](AdaptiveLimiter::acquire) waits up to a timeout.
//! Every call ends with a [`Permit`] reporting its outcome, and its latency to an algorithm
//! that learns from it, to a [`LimitAlgorithm`]:
//!
//! * [`Aimd`] (the default, aioresilience's): per window of 100 calls *or* 10 s, whichever
//!   comes first (so a quiet service still adapts), +1 above
//!   95 % success, × 0.9 (truncated) below 80 %, both strict; integer limits within 10..=1000.
//!   Outcomes alone: its calls are not timed (the clock is read once, when a call ends, for
//!   the windows' time bound), and a call that neither opens nor closes a window is counted
//!   with one compare-exchange, without the algorithm's lock.
//! * [`Vegas`] (Netflix's `VegasLimit`): estimates the queue at the dependency from latency
//!   over the no-load latency and keeps it between `alpha` and `beta`; slow start, and a
//!   periodic re-probe of the no-load latency that discards calls admitted before it.
//! * [`Gradient2`] (Netflix's `Gradient2Limit`): shrinks the limit when latency rises above a
//!   long-term baseline by more than a tolerance, grows it by a fixed headroom otherwise.
//!
//! Both latency algorithms update once per window of samples (1 s by default), as Netflix's
//! `WindowedLimit` does, and clamp to `min_limit..=max_limit`. In a deterministic simulation
//! of a server with a fixed capacity whose latency grows linearly beyond it, Vegas settles a
//! few calls above the capacity and Gradient2 (tolerance 1.0) within its `queue_size` of it;
//! see `tests/adaptive.rs`.
//!
//! [`try_acquire`](AdaptiveLimiter::try_acquire) hands out a [`Permit`] that borrows the
//! limiter; [`try_acquire_owned`](AdaptiveLimiter::try_acquire_owned),
//! [`acquire`](AdaptiveLimiter::acquire) and the tower layer an [`OwnedPermit`] holding a
//! reference to it, for a slot held across a task. Either is RAII: dropping it without an
//! outcome counts as ignored, and the in-flight count is released either way (there is no
//! `release()` to call unmatched). A limit lowered below the calls in flight lets them finish
//! and admits nobody until they have.
//!
//! # Example
//!
//! ```
//! use resilience::adaptive::{AdaptiveLimiter, AimdConfig};
//! use resilience::RejectionReason;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = AdaptiveLimiter::builder("search")
//!     .aimd(AimdConfig { initial_limit: 2, min_limit: 1, measurement_window: 4, ..AimdConfig::default() })
//!     .build()?;
//!
//! let first = limiter.try_acquire()?;
//! let second = limiter.try_acquire()?;
//! let refused = limiter.try_acquire().unwrap_err();
//! assert_eq!(refused.reason(), RejectionReason::ConcurrencyLimit);
//! first.failure();
//! second.failure();
//! // Two more failures close a window of 4 at 0 % success: 2 * 0.9 truncates to 1.
//! for _ in 0..2 {
//!     let _ = limiter.call(|| async { Err::<(), _>("unavailable") }).await;
//! }
//! assert_eq!(limiter.limit(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Innermost, next to the call, inside timeout and retry: it should measure the dependency,
//! not the time spent in retries. As tower middleware, use [`AdaptiveLayer`] (feature
//! `tower`); as a [`Stage`](crate::stage::Stage), the permit's
//! [`record`](crate::stage::StagePermit::record) feeds the outcome.
//!
//! # Events
//!
//! `load_level_change` whenever the limit moves, with the old and new limit and the
//! algorithm. See [`AdaptiveEvent`]. Logs go to target `resilience::adaptive`.
//!
//! # Defaults
//!
//! As aioresilience: AIMD from 100 within 10..=1000, +1.0, × 0.9, windows of 100 calls,
//! thresholds 95 % and 80 %, no waiting. Added: windows also close after 10 s. Vegas and
//! Gradient2 take Netflix's defaults (see [`VegasConfig`], [`Gradient2Config`]).

mod aimd;
mod algorithm;
mod builder;
mod config;
mod event;
mod gradient2;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod permit;
mod state;
mod vegas;
mod window;

pub use aimd::{Aimd, AimdConfig};
pub use algorithm::{LimitAlgorithm, Sample};
pub use builder::AdaptiveLimiterBuilder;
pub use config::{AdaptiveConfig, AlgorithmConfig, CustomAlgorithm};
pub use event::AdaptiveEvent;
pub use gradient2::{Gradient2, Gradient2Config};
pub use handle::AdaptiveLimiter;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{AdaptiveLayer, AdaptiveService, ResponseFuture};
pub use metrics::AdaptiveMetrics;
pub use permit::{OwnedPermit, Permit};
pub use vegas::{Vegas, VegasConfig};
