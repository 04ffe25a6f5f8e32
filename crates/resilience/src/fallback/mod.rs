//! Fallback: answer with something else when an operation fails.
//!
//! # When to use it
//!
//! When a degraded answer beats an error: a cached or default value when the dependency is
//! down, a secondary source when the primary is slow, an empty list instead of a failed page.
//! Not when the caller must know that the real operation failed (a payment, a write): there,
//! let the error through.
//!
//! # How it decides
//!
//! The operation runs; its success is returned as is. Its error, an [`Error`](crate::Error)
//! (the operation's own error, or a rejection, timeout or exhausted retry from an inner
//! pattern), is *selected* for fallback when its [class](ErrorClass) is in `fallback_on`
//! (default: all) and the optional [`when`](FallbackBuilder::when) predicate holds. A
//! selected error goes down the chain: values, functions and async functions of the error,
//! tried in order, the first success wins. If all fail, the caller gets
//! [`Error::FallbackFailed`](crate::Error::FallbackFailed) with both the primary error and
//! the last fallback's error: nothing is lost, and no error is mistaken for the other. An
//! error that is not selected comes back untouched.
//!
//! Unlike the Python libraries' fallbacks, these never receive the operation's arguments:
//! they receive the error, and capture whatever else they need. A value is never called, even when
//! it is a function: values and functions are added by different builder methods. Fallbacks are
//! typed by what they return, `Fallback<T, E>`, so a fallback can only produce what the
//! operation would have.
//!
//! # Example
//!
//! ```
//! use resilience::fallback::{ErrorClass, Fallback};
//! use resilience::Error;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let recommendations = Fallback::builder("recommendations")
//!     .with_async(|_: &Error<std::io::Error>| async { Err(std::io::Error::other("cache cold")) })
//!     .value(vec!["bestsellers"])
//!     .build()?;
//!
//! let down = || async { Err(std::io::Error::other("connection refused")) };
//! assert_eq!(recommendations.call(down).await?, ["bestsellers"]);
//!
//! let metrics = recommendations.metrics();
//! assert_eq!((metrics.total_executions, metrics.fallback_executions), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Outermost: it answers for everything inside it (retries exhausted, circuits open,
//! timeouts), through [`execute`](Fallback::execute). Use
//! [`fallback_on`](FallbackBuilder::fallback_on) to answer only some of them, for example
//! only [rejections](ErrorClass::Rejected) of an open circuit. As tower middleware, use
//! [`FallbackLayer`] (feature `tower`).
//!
//! # Events
//!
//! `fallback_triggered` when a fallback answers (with its index in the chain and the primary
//! error), `fallback_failed` when every fallback failed; see
//! [`FallbackEvent`] and [`events`](crate::events). `tracing` records go to target
//! `resilience::fallback`.
//!
//! # Defaults
//!
//! Every error falls back, as in aioresilience (`fallback_on_exceptions = (Exception,)`).
//! There is no default fallback value: at least one fallback is required, as aioresilience's
//! `ChainedFallback` requires. aioresilience's `reraise_on_fallback_failure = false` (return
//! `None`) has no equivalent: add a final [`value`](FallbackBuilder::value) instead.

mod builder;
mod chain;
mod config;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod state;

pub use builder::FallbackBuilder;
pub use config::{ErrorClass, FallbackConfig};
pub use event::FallbackEvent;
pub use handle::Fallback;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{FallbackLayer, FallbackService, ResponseFuture};
pub use metrics::FallbackMetrics;
