//! Load shedding: refuse work early when the service is overloaded, least important first.
//!
//! # When to use it
//!
//! At the entrance of a service (an HTTP server, a queue consumer) that would rather answer
//! "busy, retry later" at once than let every request slow down under overload. It protects
//! *this* service; to protect a dependency, use a circuit breaker or adaptive concurrency. It
//! is not a rate limiter: it counts requests in flight, not requests per second.
//!
//! # How it decides
//!
//! A request asks for a slot with a [`Priority`]. Utilisation is `active / max_requests`.
//!
//! * **Priorities**: a [`Low`](Priority::Low) request is shed while utilisation is above
//!   `low_threshold` (60 %), a [`Normal`](Priority::Normal) one above `normal_threshold`
//!   (75 %), a [`High`](Priority::High) one above `high_threshold` (90 %); the comparisons
//!   are strict, so at exactly 60 % a low request still runs. The defaults are where the
//!   [`LoadLevel`] becomes elevated, high and critical, so "low requests are shed from load
//!   level elevated on". [`Critical`](Priority::Critical) requests are only held back by the
//!   hard cap. Shedding the least important work first keeps headroom for the rest, which is
//!   the point of shedding rather than queueing.
//! * **Hard cap and queue**: at `max_requests` (1000) a request that was not shed waits in a
//!   FIFO queue of at most `max_queue_depth` (500) for up to `wait_timeout` (1 s); a released
//!   slot goes straight to the oldest waiter, and newcomers never overtake it. A full queue
//!   sheds with [`QueueFull`](crate::RejectionReason::QueueFull), a wait that runs out with
//!   [`WaitTimeout`](crate::RejectionReason::WaitTimeout). The queue depth is tracked and
//!   reported. With the default thresholds only
//!   critical requests reach the queue; a threshold of 1.0 lets a priority queue too.
//! * **System load** (feature `system`): low and normal requests are also shed while CPU or
//!   memory use is above its threshold (85 %, strict), high ones only above 90 %, critical
//!   ones never. A background task samples every `check_interval` (1 s), from the host or from
//!   the container's cgroup v2 limits ([`SysinfoSource`]); requests only read two atomics. The
//!   task stops when the last handle is dropped. Tests inject a [`SystemMetricsSource`].
//!
//! Every slot is a permit released on drop: there is no `release()` to call without an
//! `acquire()`, and a future dropped while queued gives its place up.
//! [`try_acquire`](LoadShedder::try_acquire) hands out a [`Permit`] that borrows the shedder;
//! [`try_acquire_owned`](LoadShedder::try_acquire_owned), [`acquire`](LoadShedder::acquire)
//! and the tower layer an [`OwnedPermit`] holding a reference to it, for a slot held across
//! a task. The uncontended path
//! is one compare-exchange on a word holding both counts, with no lock and no allocation.
//!
//! # Example
//!
//! ```
//! use resilience::load_shed::{LoadShedder, Priority};
//! use resilience::RejectionReason;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let shedder = LoadShedder::builder("api").max_requests(10).build()?;
//!
//! // Six requests in flight: 60 % is not above the low threshold yet.
//! let running: Vec<_> = (0..6).map(|_| shedder.try_acquire(Priority::Normal)).collect();
//! let low = shedder.try_acquire(Priority::Low)?;
//! // Seven in flight now (70 %, above 60 %): the next low request is shed.
//! let shed = shedder.try_acquire(Priority::Low).unwrap_err();
//! assert_eq!(shed.reason(), RejectionReason::LoadShed);
//! // Normal requests still run, through `call`.
//! let answer = shedder.call(Priority::Normal, || async { Ok::<_, std::io::Error>(42) }).await?;
//! assert_eq!(answer, 42);
//! drop(running);
//! assert_eq!(shedder.metrics().active_requests, 1);
//! drop(low);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Outermost among the admission patterns: shed before spending anything on a request. As
//! tower middleware, use [`LoadShedderLayer`] (feature `tower`) with a fixed priority or one
//! read from the request. As a [`Stage`](crate::stage::Stage), the shedder admits
//! at normal priority and [`LoadShedder::prioritized`] at any other.
//!
//! # Events
//!
//! `request_accepted` (with the priority and the load level after accepting) and
//! `request_shed` (with the priority, the load level and the reason: `utilization`,
//! `max_requests`, `queue_full`, `wait_timeout`, `cpu` or `memory`). See
//! [`LoadShedderEvent`]. Logs go to target `resilience::load_shed`.
//!
//! # Defaults
//!
//! As aioresilience: `max_requests` 1000, `max_queue_depth` 500, CPU and memory thresholds
//! 85 %, sampled every second. Added: thresholds 60 / 75 / 90 % for low / normal / high, and a
//! 1 s `wait_timeout` for queued requests.

mod builder;
mod config;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod monitor;
mod permit;
mod priority;
mod queue;
mod state;
#[cfg(feature = "system")]
mod system;

pub use builder::LoadShedderBuilder;
pub use config::LoadShedderConfig;
pub use event::LoadShedderEvent;
pub use handle::LoadShedder;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{LoadShedderLayer, LoadShedderService, PriorityOf, ResponseFuture};
pub use metrics::LoadShedderMetrics;
pub use permit::{Acquire, OwnedPermit, Permit, Prioritized};
pub use priority::{LoadLevel, ParsePriorityError, Priority};
pub use state::ShedReason;
#[cfg(feature = "system")]
#[cfg_attr(docsrs, doc(cfg(feature = "system")))]
pub use system::{SysinfoSource, SystemConfig, SystemMetricsSource, SystemSample};
