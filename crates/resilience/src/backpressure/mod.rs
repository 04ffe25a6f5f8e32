//! Backpressure: slow producers down when too much work is pending.
//!
//! # When to use it
//!
//! Between producers and consumers of queued work (a job queue, a stream of messages, an
//! ingest endpoint feeding a slower writer), so that when consumers fall behind, producers
//! wait instead of piling up unbounded work, and resume once the backlog has drained. Use it
//! where waiting is the right answer; where it is not, a [bulkhead](crate::bulkhead) or
//! [load shedding](crate::load_shed) rejects instead.
//!
//! # How it decides
//!
//! Each admitted item is *pending* until its permit is dropped. Two water marks give
//! hysteresis, so the switch does not flap around one threshold:
//!
//! * Below the **high water mark** producers are admitted at once. Reaching it turns
//!   backpressure **on** ([`should_apply_backpressure`](Backpressure::should_apply_backpressure)).
//! * While it is on, every producer waits, in arrival order, for up to `wait_timeout`;
//!   newcomers queue behind earlier waiters whatever the pending count, never overtaking
//!   them.
//! * When pending work falls to the **low water mark**, backpressure turns **off** and the
//!   waiters are admitted in order *while pending stays below the high water mark*; if it is
//!   reached again, the rest keep waiting (no thundering herd of up to `max_pending` released
//!   at once).
//! * `max_pending` bounds pending plus waiting work: past it a producer is rejected at once
//!   rather than queued ([`is_overloaded`](Backpressure::is_overloaded)).
//!
//! Refusals are typed: [`Backpressure`](crate::RejectionReason::Backpressure) for a producer
//! turned away at once (overloaded, or [`try_acquire`](Backpressure::try_acquire) while on);
//! [`WaitTimeout`](crate::RejectionReason::WaitTimeout) for one that waited the whole
//! `wait_timeout`, exactly at it. Neither
//! carries a `retry_after`: when the backlog drains depends on consumers, not on a clock.
//!
//! Admission is an RAII permit; there is no `release()` that could be called without an
//! admission. [`try_acquire`](Backpressure::try_acquire) hands out a [`Permit`] that borrows
//! the controller; [`try_acquire_owned`](Backpressure::try_acquire_owned) an [`OwnedPermit`]
//! holding a reference to it, for a permit moved into a task, as
//! [`acquire`](Backpressure::acquire), the stream adapter and the tower layer hand out. A
//! dropped wait leaves the queue, and a slot granted to a waiter at the very moment it gave
//! up is handed on to the next one, never lost.
//!
//! While backpressure is off and an admission would not turn it on, admitting and releasing
//! are one compare-exchange on an atomic word, without the lock; switching, waiting and
//! reconfiguring take it.
//! [`Backpressure::stream`] applies the controller to a [`Stream`](futures_core::Stream) of
//! work.
//!
//! # Example
//!
//! ```
//! use resilience::backpressure::Backpressure;
//! use resilience::RejectionReason;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backpressure = Backpressure::builder("ingest")
//!     .max_pending(10)
//!     .water_marks(3, 1)
//!     .wait_timeout(Duration::from_secs(1))
//!     .build()?;
//!
//! let mut batch: Vec<_> = (0..3).map(|_| backpressure.try_acquire()).collect::<Result<_, _>>()?;
//! assert!(backpressure.should_apply_backpressure(), "on at the high water mark");
//!
//! // A producer waits while it is on, and gives up after the wait timeout.
//! let refused = backpressure.acquire().await.unwrap_err();
//! assert_eq!(refused.reason(), RejectionReason::WaitTimeout);
//!
//! batch.truncate(1); // consumers finish two items: down to the low water mark
//! assert!(!backpressure.should_apply_backpressure());
//! let _next = backpressure.acquire().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! At the boundary where work enters the system, outside the patterns that run each item:
//! hold the permit for as long as the item is being worked on. As tower middleware, use
//! [`BackpressureLayer`] (feature `tower`); any pipeline can also take it as a
//! [`Stage`](crate::stage::Stage).
//!
//! # Events
//!
//! `backpressure_high` when it turns on and `backpressure_low` when it turns off, each with
//! the pending count and the mark, emitted after the controller's lock is released. See
//! [`BackpressureEvent`] and [`events`](crate::events).
//!
//! # Defaults
//!
//! As aioresilience: `max_pending` 1000, high water mark 800, low water mark 200, and a 5 s
//! wait (aioresilience's implicit `acquire` default, explicit here as `wait_timeout`).

mod builder;
mod config;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod permit;
mod shared;
mod state;
mod stream;

pub use builder::BackpressureBuilder;
pub use config::BackpressureConfig;
pub use event::BackpressureEvent;
pub use handle::Backpressure;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{BackpressureLayer, BackpressureService, ResponseFuture};
pub use metrics::BackpressureMetrics;
pub use permit::{OwnedPermit, Permit};
pub use stream::BackpressureStream;
