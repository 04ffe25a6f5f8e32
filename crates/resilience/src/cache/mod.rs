//! Cache: answer a call from a recent result for the same key instead of running it again,
//! and fall back on an older one when the call fails.
//!
//! # When to use it
//!
//! For reads whose answer may be a little old: configuration, profiles, prices refreshed
//! every minute, a token valid for an hour. A hit costs a hash lookup and a clone of the
//! value, so put large values behind an `Arc`. Do not cache answers that must be current, or
//! calls with side effects.
//!
//! # How it decides
//!
//! Each call names its key. A *fresh* entry for the key answers the call and the operation
//! does not run. An entry is fresh until its time to live (`ttl`) has passed since it was
//! stored and, with a `time_to_idle`, until that long has passed since it was last read:
//! whichever comes first. Otherwise the operation runs, and a result that the call's
//! [`Classifier`](crate::classify::Classifier) counts as a success (every `Ok` by default) is
//! stored, fresh from then.
//!
//! With `stale_if_error`, an entry that stopped being fresh less than that long ago is kept
//! as a last resort: if the operation fails, the call gets the stale value instead of the
//! error (checked when the failure arrives, so a slow failure cannot stretch the bound).
//! Past the bound, the error is returned as is. Only failures fall back: an ignored error,
//! such as "not found", is an answer.
//!
//! The store is [`quick_cache`](https://docs.rs/quick_cache), bounded by entries or by a
//! total weight (a weigher you give, say bytes), evicting what is least likely to be read
//! again. Expiry times live with each value (see [Time](#time) for the clock they are read
//! on; tests run under a paused tokio clock, exactly). Entries past every use are removed when a lookup finds
//! them, or evicted when room is needed; nothing runs in the background.
//!
//! Concurrent calls that miss the same key are **not** coalesced: each runs the operation,
//! and the last to finish leaves its value. Where a miss is expensive, run the operation
//! through request coalescing inside the cache.
//!
//! # Example
//!
//! ```
//! use resilience::cache::Cache;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prices = Cache::<&str, u32>::builder("prices")
//!     .ttl(Duration::from_secs(60))
//!     .stale_if_error(Duration::from_secs(600))
//!     .build()?;
//!
//! let fetched = prices.get_or_fetch(&"apple", || async { Ok::<_, std::io::Error>(120) }).await?;
//! let cached = prices.get_or_fetch(&"apple", || async { Ok::<_, std::io::Error>(999) }).await?;
//! assert_eq!((fetched, cached), (120, 120), "the second call never ran");
//!
//! // Two minutes later the entry is stale; the price service is down: the old price answers.
//! tokio::time::advance(Duration::from_secs(120)).await;
//! let stale = prices
//!     .get_or_fetch(&"apple", || async { Err(std::io::Error::other("unavailable")) })
//!     .await?;
//! assert_eq!(stale, 120);
//! assert_eq!(prices.metrics().stale_hits, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Outside retry, inside fallback, by hand: `fallback.execute(|| cache.get_or_fetch(&key,
//! || pipeline.call(op)))` (the [`Pipeline`](crate::Pipeline) takes no key, so the cache is
//! not one of its slots). Outside retry, a hit skips every other pattern and a miss is
//! retried as a whole; inside fallback, a stale entry answers before a fallback value, and a
//! fallback value is never stored as if it were the real answer. As tower middleware, use
//! [`CacheLayer`] (feature `tower`) with a function from request to key.
//!
//! # Time
//!
//! A cache reads the CPU's time-stamp counter (through [`quanta`](https://docs.rs/quanta),
//! which falls back to the monotonic clock on CPUs without an invariant counter): a few
//! nanoseconds per read, where `tokio::time::Instant::now()` costs tens. Built inside a tokio
//! runtime whose clock is paused (`#[tokio::test(start_paused = true)]`, or after
//! `tokio::time::pause()`), it reads tokio's clock instead, so `advance` and auto-advance
//! drive it exactly. The choice is made once, when it is built: in a test, pause the clock
//! first, then build it.
//!
//! On the counter, ages are kept in the counter's own ticks, and the time to live, time to
//! idle and stale-if-error bound are converted to ticks once, when the cache is built,
//! rounding up to a whole tick: an entry is fresh for at least its time to live, and for
//! less than one tick more (a fraction of a nanosecond on x86, tens of nanoseconds on
//! ARM's slower counter). A cache with neither a time to live nor a time to idle never reads the
//! clock.
//!
//! # Events
//!
//! `cache_hit`, `cache_miss`, and `cache_stale` when a stale entry answers a failed call
//! (with how long ago it expired). See [`CacheEvent`] and [`events`](crate::events).
//!
//! # Defaults
//!
//! 10,000 entries, fresh for 60 s, no time-to-idle, no stale-if-error.

mod builder;
mod config;
mod event;
mod handle;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod state;

pub use builder::CacheBuilder;
pub use config::CacheConfig;
pub use event::CacheEvent;
pub use handle::Cache;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{CacheLayer, CacheService, ResponseFuture};
pub use metrics::CacheMetrics;
