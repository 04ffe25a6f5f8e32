//! Request coalescing (single-flight): concurrent calls with the same key share one execution.
//!
//! # When to use it
//!
//! In front of an expensive, idempotent read whose result is the same for everyone asking
//! at the same moment: a cache fill after a miss (the "thundering herd" on a cold key), a
//! configuration or token fetch, a profile loaded by a hundred concurrent requests. One
//! caller runs the operation; the others wait and receive a clone of its result. Not for
//! writes, nor for calls whose result depends on who asks: everyone with the same key gets
//! the same answer.
//!
//! # How it decides
//!
//! A call looks its key up in a sharded map (a std `Mutex` per shard, never held across an
//! await). If the key is idle the caller becomes its *leader* and runs its operation; if the
//! key is in flight the caller becomes a *follower* and waits, never calling its own
//! operation. When the leader finishes, the key leaves the map and every follower gets a
//! clone of the result, `Ok` or `Err` alike, so `T` and `E` are `Clone`: wrap a result that
//! is not in an `Arc` (`Coalescer<K, Arc<Report>, Arc<MyError>>`). The next call for the key
//! starts a new execution: results are shared, never cached. [`Coalescer::call_shared`] also
//! says whether a result was shared, like Go's `shared` flag, and [`Coalescer::forget`] makes
//! the next call start afresh even while an execution is in flight, like Go's `Forget`.
//!
//! The key is removed on every exit path: success, error, panic, and a dropped future. A
//! call that nobody joins allocates nothing: the shared slot a follower waits on is made
//! when the first follower arrives.
//!
//! ## Cancellation
//!
//! Dropping a follower's future just stops its wait. Dropping the *leader's* future
//! (a timeout, a client gone away) does not fail its followers: **a waiting follower takes
//! over** and runs its own operation, and the others keep waiting for that one. The take-over
//! happens only after the leader's future is gone, so two executions for one key never run
//! at once, and the work is never detached from its callers (no task is spawned, nothing
//! needs to be `'static`, and work nobody waits for anymore stops). When the last caller of
//! a key goes away, the key is removed.
//!
//! ## Panics
//!
//! If the operation panics, the panic continues in the caller that ran it, as it would
//! without coalescing, and every follower gets
//! [`Error::Rejected`](crate::Error::Rejected) with
//! [`LeaderPanicked`](crate::RejectionReason::LeaderPanicked): a typed error, never a hang,
//! and the key is removed. (The same happens if the leader's task unwinds for a panic
//! elsewhere while the operation is still running.)
//!
//! ## Bounded
//!
//! At most `max_keys` keys are in flight; a call for a new key beyond that is refused with
//! [`CapacityFull`](crate::RejectionReason::CapacityFull) without running. Joining a key in
//! flight is never refused: it adds no key.
//!
//! # Example
//!
//! ```
//! use resilience::coalesce::Coalescer;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `io::Error` is not `Clone`: an `Arc` shares it with every caller.
//! let profiles = Coalescer::<u64, String, Arc<std::io::Error>>::builder("profiles").build()?;
//! let loads = AtomicU32::new(0);
//! let load = |user: u64| {
//!     let (profiles, loads) = (&profiles, &loads);
//!     async move {
//!         profiles
//!             .call(user, || async {
//!                 loads.fetch_add(1, Ordering::Relaxed);
//!                 tokio::time::sleep(Duration::from_millis(50)).await;
//!                 Ok(format!("profile {user}"))
//!             })
//!             .await
//!     }
//! };
//!
//! // Three concurrent requests for user 7: one load.
//! let (a, b, c) = tokio::join!(load(7), load(7), load(7));
//! assert_eq!((a?, b?, c?), ("profile 7".into(), "profile 7".into(), "profile 7".into()));
//! assert_eq!(loads.load(Ordering::Relaxed), 1);
//! assert_eq!(profiles.metrics().coalesced_calls, 2);
//! assert_eq!(profiles.in_flight(), 0);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Outside everything: a coalesced call should share the *final* answer, after retries and
//! fallback, and followers should not take slots, tokens or breaker probes of their own. It
//! needs a key, which [`Pipeline::call`](crate::Pipeline::call) does not have, so wrap the
//! pipeline by hand: `coalescer.call(key, || pipeline.call(op))`. As tower middleware, use
//! [`CoalesceLayer`] (feature `tower`) with a function from the request to its key.
//!
//! # Events
//!
//! `coalesce_leader_started`, `coalesce_follower_joined`, `coalesce_leader_taken_over`,
//! `coalesce_completed` (with the number of followers and the outcome, `panicked`
//! included) and `coalesce_rejected`; see [`CoalesceEvent`] and [`events`](crate::events).
//!
//! # Defaults
//!
//! `max_keys` = 10,000.

mod builder;
mod config;
mod event;
mod handle;
#[cfg(feature = "tower")]
mod layer;
mod map;
mod metrics;
mod state;

pub use builder::CoalesceBuilder;
pub use config::CoalesceConfig;
pub use event::CoalesceEvent;
pub use handle::Coalescer;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{CoalesceLayer, CoalesceService, ResponseFuture};
pub use metrics::CoalesceMetrics;
