//! Timeout and deadline: bound how long an operation, or a group of operations, may take.
//!
//! # When to use it
//!
//! Around every call that waits on something outside the process (a socket, a database, a
//! queue), so a hung dependency costs a bounded amount of time instead of a task, a
//! connection and a caller's patience. Use a [`Timeout`] for a per-call limit, a [`Deadline`]
//! for a budget shared by several calls (everything a request handler does, say), and both
//! together: a timeout inside a deadline's [`scope`](Deadline::scope) waits at most until the
//! deadline.
//!
//! # How it decides
//!
//! Time is the monotonic tokio clock (never the wall clock), so tests drive it with paused
//! time and a clock jump moves no deadline. A call gets the
//! shorter of its own limit and what the [current deadline](Deadline::current) leaves; it is
//! cancelled by dropping its future, so async work really stops. The boundaries are exact: an
//! operation that finishes *at* its limit succeeds; a call that would start *at* or after the
//! deadline is rejected without running ([`Error::Rejected`](crate::Error::Rejected),
//! [`PatternKind::Deadline`](crate::PatternKind),
//! [`DeadlineExpired`](crate::RejectionReason::DeadlineExpired)), because it has no time at all.
//! Only this timeout's own expiry is a timeout: an operation's own error, even one that means
//! "timed out" to it, comes back as [`Error::Inner`](crate::Error::Inner) and is counted in
//! `failed_executions`.
//!
//! While a call runs, its own cancellation point is the current deadline inside it, so
//! nested calls, and code that forwards the remaining time to a remote service, see the
//! tighter budget.
//!
//! Blocking work cannot be cancelled: there is no `call_blocking` here. Run it with
//! `tokio::task::spawn_blocking` and know that a timeout only stops the *waiting*.
//!
//! # Example
//!
//! ```
//! use resilience::timeout::{Deadline, Timeout};
//! use resilience::Error;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let timeout = Timeout::builder("search").limit(Duration::from_secs(2)).build()?;
//!
//! let slow = || async {
//!     tokio::time::sleep(Duration::from_secs(5)).await;
//!     Ok::<_, std::io::Error>("results")
//! };
//! match timeout.call(slow).await {
//!     Err(Error::Timeout { elapsed, limit }) => assert_eq!(elapsed, limit),
//!     other => panic!("expected a timeout, got {other:?}"),
//! }
//!
//! // Under a 500 ms deadline the same timeout waits at most 500 ms.
//! let deadline = Deadline::after(Duration::from_millis(500));
//! let error = deadline.scope(timeout.call(slow)).await.unwrap_err();
//! assert!(matches!(error, Error::Timeout { limit, .. } if limit == Duration::from_millis(500)));
//! assert_eq!(timeout.metrics().timed_out_executions, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Inside the circuit breaker and the rate limiter, outside the bulkhead: a timeout counts
//! as a failure for the breaker around it, and the time spent waiting for a bulkhead slot
//! counts against it. As tower middleware, use [`TimeoutLayer`] (feature `tower`).
//!
//! # Events
//!
//! `timeout_success` when a call ends in time (with its own success or error) and
//! `timeout_exceeded` when one is cancelled; see [`TimeoutEvent`] and
//! [`events`](crate::events). Deadlines emit no events, only `tracing`
//! records at target `resilience::timeout`.
//!
//! # Defaults
//!
//! As aioresilience: a 30 s limit. aioresilience's `raise_on_timeout = false` (return `None`) has
//! no equivalent: match on [`Error::Timeout`](crate::Error::Timeout) instead, or put a
//! [fallback](crate::fallback) around the timeout.

mod builder;
mod config;
mod deadline;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod state;

pub use builder::TimeoutBuilder;
pub use config::TimeoutConfig;
pub use deadline::{Deadline, Scoped};
pub use event::TimeoutEvent;
pub use handle::Timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{ResponseFuture, TimeoutLayer, TimeoutService};
pub use metrics::TimeoutMetrics;
