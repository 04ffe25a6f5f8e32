//! Bulkhead: bound how many calls run at once, and how many may wait.
//!
//! # When to use it
//!
//! Around a resource with a fixed capacity (a connection pool, a CPU-heavy library, a
//! downstream service that degrades past N concurrent requests), so that one slow dependency
//! can hold at most `max_concurrent` tasks instead of all of them, and the rest of the
//! service stays responsive. It limits concurrency, not rate: use a rate limiter for "N per
//! second", [load shedding](crate::load_shed) to drop work by priority under load, and
//! [backpressure](crate::backpressure) to slow producers of queued work.
//!
//! # How it decides
//!
//! A call takes a free slot if there is one (one atomic compare-exchange, no lock, no
//! allocation). Otherwise it may wait, in arrival order, if fewer than `max_waiting` calls
//! already wait; a queued call gets a slot the moment one is given back, before any
//! newcomer, or is rejected when `wait_timeout` has passed (exactly at it, on the monotonic
//! clock). The three refusals are kept apart, because they call for different fixes:
//!
//! * [`CapacityFull`](crate::RejectionReason::CapacityFull): every slot is taken and there is
//!   no queue (`max_waiting = 0`);
//! * [`QueueFull`](crate::RejectionReason::QueueFull): the queue is full too;
//! * [`WaitTimeout`](crate::RejectionReason::WaitTimeout): the call waited too long.
//!
//! Rejections carry no `retry_after`: when
//! a slot frees depends on calls still running, and no honest estimate exists.
//!
//! Every slot is an RAII permit, given back on drop: when the call succeeds, fails,
//! panics or is cancelled at any await point; a wait that is dropped leaves the queue. There
//! is no `release()` to forget or to call twice, and a cancelled call never leaks a slot. The
//! queue is FIFO (a slot given back goes to the longest waiting call) and cancellation-safe:
//! a place in it is an RAII guard too, so no counter drifts. A free slot is taken and given
//! back with one compare-exchange each, without a lock.
//! [`set_config`](Bulkhead::set_config) resizes a live bulkhead.
//!
//! [`try_acquire`](Bulkhead::try_acquire) and [`acquire`](Bulkhead::acquire) hand out a
//! [`Permit`] that borrows the bulkhead (no reference count is taken);
//! [`try_acquire_owned`](Bulkhead::try_acquire_owned) and
//! [`acquire_owned`](Bulkhead::acquire_owned) an [`OwnedPermit`] to move into a task.
//!
//! # Example
//!
//! ```
//! use resilience::bulkhead::Bulkhead;
//! use resilience::{Error, RejectionReason};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bulkhead = Bulkhead::builder("reports")
//!     .max_concurrent(2)
//!     .max_waiting(1)
//!     .wait_timeout(Duration::from_secs(1))
//!     .build()?;
//!
//! let report = bulkhead.call(|| async { Ok::<_, std::io::Error>("report") }).await?;
//! assert_eq!(report, "report");
//!
//! // Two slots taken, one call queued: the next one is refused at once.
//! let (first, second) = (bulkhead.try_acquire()?, bulkhead.try_acquire()?);
//! let queued = tokio::spawn({
//!     let bulkhead = bulkhead.clone();
//!     async move { bulkhead.call(|| async { Ok::<_, std::io::Error>(()) }).await }
//! });
//! tokio::task::yield_now().await;
//! match bulkhead.call(|| async { Ok::<_, std::io::Error>(()) }).await {
//!     Err(Error::Rejected(rejection)) => {
//!         assert_eq!(rejection.reason(), RejectionReason::QueueFull);
//!     }
//!     other => panic!("expected a rejection, got {other:?}"),
//! }
//! drop(first); // the queued call gets this slot
//! queued.await??;
//! drop(second);
//! assert_eq!(bulkhead.metrics().rejected_queue_full, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Innermost, right around the call and inside the timeout, so the timeout bounds the wait
//! for a slot as well as the call, and a slot is held only while the call really runs. As
//! tower middleware, use [`BulkheadLayer`] (feature `tower`); any pipeline can also take it as
//! a [`Stage`](crate::stage::Stage).
//!
//! # Events
//!
//! `bulkhead_accepted` when a call gets a slot (with how long it waited),
//! `bulkhead_rejected` with the reason, and `bulkhead_released` when the slot is given back,
//! whatever the outcome: success, failure or cancellation. See [`BulkheadEvent`] and
//! [`events`](crate::events).
//!
//! # Defaults
//!
//! As aioresilience: 10 concurrent calls, no queue (`max_waiting = 0`), no wait timeout.
//! Instances are found by name in [`get_bulkhead`] or any [`Registry`](crate::registry::Registry).

mod builder;
mod config;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod permit;
mod slots;
mod state;

pub use builder::BulkheadBuilder;
pub use config::BulkheadConfig;
pub use event::BulkheadEvent;
pub use handle::{get_bulkhead, Bulkhead};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{BulkheadLayer, BulkheadService, ResponseFuture};
pub use metrics::BulkheadMetrics;
pub use permit::{OwnedPermit, Permit};
