//! Chaos: inject faults, outcomes, latency and behaviours into a share of calls.
//!
//! # When to use it
//!
//! To find out, before production does, how a service copes when a dependency fails, answers
//! wrongly, or slows down: in tests, in a staging environment, or in production behind a
//! switch that is off by default. Put it where the dependency is called, inside the patterns
//! that protect the call, so that retries, circuit breakers, timeouts and fallbacks see the
//! injected trouble exactly as they would see the real thing.
//!
//! # How it decides
//!
//! Four injections, each with its own rate (the share of calls it hits, 0.0 to 1.0, checked
//! at construction):
//!
//! * **latency**: a delay before the call (tokio's clock, so paused-time tests are exact);
//! * **behaviour**: a user async hook run before the call (the call then runs);
//! * **fault**: an error from a user function *instead of* the call, returned as the
//!   operation's own error ([`Error::Inner`](crate::Error::Inner));
//! * **outcome**: a response from a user function *instead of* the call.
//!
//! Each call takes one draw in `[0, 1)` per configured injection, in that order; an injection
//! fires when its draw is below its rate, so rate 0 never fires and rate 1 always does. A
//! fault wins over an outcome when both fire. Draws come from a small splitmix64 generator
//! owned by the instance and seeded from the config (the same seed gives the same sequence of
//! decisions; random when unset), or from the caller with [`Chaos::roll_with`], for decisions
//! that depend on the call itself rather than on the order calls arrive in.
//!
//! A switch turns it all on and off at run time ([`Chaos::set_enabled`], shared by every
//! clone). Off, a call costs one relaxed atomic load and a branch, with nothing counted and
//! no event: chaos can stay compiled into production code.
//!
//! # Example
//!
//! ```
//! use resilience::chaos::Chaos;
//! use resilience::Error;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chaos = Chaos::<&str, std::io::Error>::builder("inventory")
//!     .fault(1.0, || std::io::ErrorKind::ConnectionReset.into())
//!     .latency(1.0, Duration::from_millis(200))
//!     .seed(7)
//!     .build()?;
//!
//! let started = tokio::time::Instant::now();
//! let answer = chaos.call(|| async { Ok("42 in stock") }).await;
//! assert!(matches!(answer, Err(Error::Inner(e)) if e.kind() == std::io::ErrorKind::ConnectionReset));
//! assert_eq!(started.elapsed(), Duration::from_millis(200));
//!
//! chaos.set_enabled(false);
//! assert_eq!(chaos.call(|| async { Ok("42 in stock") }).await?, "42 in stock");
//! assert_eq!(chaos.metrics().faults_injected, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Innermost, right around the operation and inside the bulkhead, so every pattern of the
//! pipeline sees an injected fault or delay as the dependency's own:
//! [`PipelineBuilder::chaos`](crate::pipeline::PipelineBuilder::chaos). As tower
//! middleware, use [`ChaosLayer`] (feature `tower`), innermost too.
//!
//! # Events
//!
//! `chaos_fault_injected`, `chaos_outcome_injected`, `chaos_latency_injected` (with the
//! delay) and `chaos_behavior_injected`; see [`ChaosEvent`] and [`events`](crate::events).
//!
//! # Defaults
//!
//! Every rate 0 (nothing injected until configured), enabled, a random seed.

mod builder;
mod config;
mod event;
mod handle;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod state;

pub use builder::ChaosBuilder;
pub use config::ChaosConfig;
pub use event::ChaosEvent;
pub use handle::{Call, Chaos};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{ChaosLayer, ChaosService, ResponseFuture};
pub use metrics::ChaosMetrics;
pub use state::Injections;
