//! Rate limiting: allow each client, or the whole process, at most so many requests per
//! period.
//!
//! # When to use it
//!
//! To protect a service from clients that send too much (one budget per user, API token or
//! IP: a [`LocalRateLimiter`]), or to keep this process within a limit someone else sets (a
//! partner API's "100 requests per minute": a [`DirectRateLimiter`]). It is about *rates*; to
//! bound how many calls run *at once*, use a bulkhead, and to shed load when the machine is
//! busy, a load shedder. To share one budget between several processes, use the Redis
//! limiters of `resilience-redis`, which implement the same [`RateLimiter`] trait.
//!
//! # How it decides
//!
//! A [`Rate`] is `count` requests per `period`, up to `burst` at once (`count` unless set).
//! The default algorithm, GCRA, keeps one instant per key, the *theoretical arrival time*
//! (TAT): when the key's budget would be whole again. Each allowed request moves it one
//! emission interval (`period / count`) later; a request is allowed if the TAT, after that
//! move, is at most `burst` intervals ahead of now. So a client that has been quiet may send
//! `burst` requests at once, and after that one per interval, never more, with no window edge
//! at which a double burst slips through (as with fixed windows). One number per key gives
//! every answer exactly: the [`Decision`] carries `remaining`, `reset_after` (TAT − now) and,
//! for a denial, `retry_after` to the nanosecond. A denial spends nothing, so a client that
//! keeps retrying is let through as soon as its budget allows.
//!
//! To know how much budget is left without spending any, *peek*:
//! [`LocalRateLimiter::peek`] and [`DirectRateLimiter::peek`] (and `peek_rate` for per-call
//! rates) return the decision the next check would get at this instant, for every algorithm,
//! and count, report and store nothing. The Redis limiters of `resilience-redis` do not
//! offer it.
//!
//! A key whose TAT has passed has a whole budget, exactly like a key never seen: it carries
//! no information. That is how the keyed limiter stays within `max_keys` without a cleanup
//! task and without resetting anyone: when a shard of its table is full, a new key drops a
//! state that is idle in this sense (for the other [algorithms](Algorithm): a full bucket, a
//! log or window with nothing left in it), judged at the rate in force now, so a lowered rate
//! keeps a budget until it is whole at the new rate. A new key examines at most a few dozen
//! states, oldest first, so its cost stays small under any churn. When the states it
//! examines are all still live, the *new* key is denied with [`Denial::KeysExhausted`] and a
//! `retry_after`; a live client's budget is never reset to make room. Size `max_keys` for the number of clients active within one period.
//!
//! Keys are kept as seeded 64-bit hashes, not strings: with GCRA an entry is 16 bytes plus
//! one control byte, and the table is sized to be 7/8 full at `max_keys`, so a million keys
//! take 19.5 bytes each, however long the keys are, plus 8 for the eviction order (`cargo run --release -p
//! resilience-benches --example rate_limit_memory`; governor's keyed limiter, which keeps the
//! key and never evicts, takes 83 bytes per `String` key and 36 per `u64` key). A new key
//! allocates nothing. Each shard of the table has its own share of `max_keys`, so when every
//! key is live, new keys start being refused slightly before `max_keys` (0.24 % early at a
//! million live keys).
//!
//! When even that is too much (millions of client IPs in a flood), the keyed limiter can keep
//! no key at all: with [`Algorithm::SketchedWindow`] (builder:
//! [`sketch(width, depth)`](RateLimiterBuilder::sketch)) every key's sliding-window counts
//! live in one count-min sketch of fixed size, 64 KiB by default, allocated at construction;
//! a check allocates nothing and takes no lock. Its error is one-sided: other keys sharing a
//! key's cells only add to its estimate, so a key may be limited early, never late. With `N`
//! requests allowed in a window over all keys, an estimate is over by more than
//! `e·N / width` with probability at most `e^−depth` ([`SketchSize`]); with the default
//! 1,024 × 4 cells that is 0.27 % of the window's traffic, for at most 1.8 % of keys.
//!
//! ```
//! use resilience::rate_limit::LocalRateLimiter;
//!
//! # fn main() -> Result<(), resilience::ConfigError> {
//! let per_ip = LocalRateLimiter::builder("per-ip")
//!     .rate("100/minute".parse()?)
//!     .sketch(4_096, 4) // 256 KiB, whatever the number of addresses
//!     .build()?;
//! for ip in 0..10_000 {
//!     per_ip.check_now(&format!("10.0.{}.{}", ip / 256, ip % 256));
//! }
//! assert_eq!(per_ip.metrics().active_limiters, 0, "no address is stored");
//! let flood = (0..500).filter(|_| per_ip.check_now("192.0.2.1").is_allowed()).count();
//! assert!(flood <= 100, "never more than its limit");
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! ```
//! use resilience::rate_limit::{Denial, LocalRateLimiter, RateLimiter};
//! use resilience::Rate;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = LocalRateLimiter::builder("api")
//!     .rate("3/second".parse()?)
//!     .max_wait(Duration::from_secs(1))
//!     .build()?;
//!
//! for remaining in [2, 1, 0] {
//!     assert_eq!(limiter.check("ada").await.remaining(), remaining);
//! }
//! let denied = limiter.check("ada").await;
//! assert_eq!(denied.denial(), Some(Denial::RateExceeded));
//! assert_eq!(denied.retry_after(), Some(Duration::from_nanos(333_333_334)));
//!
//! // `acquire` waits until the budget allows, up to `max_wait`.
//! let started = tokio::time::Instant::now();
//! limiter.acquire("ada").await?;
//! assert!(started.elapsed() >= Duration::from_nanos(333_333_334));
//!
//! // Per-call rates, as in aioresilience: each (key, rate) pair has its own budget.
//! assert!(limiter.check_rate("ada", Rate::per_minute(100)).await.is_allowed());
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! Inside the circuit breaker and outside the timeout and bulkhead: a request over its rate
//! is refused before it takes a bulkhead slot or starts a timer, and a breaker outside does
//! not count that refusal as a failure of the dependency. [`DirectRateLimiter`] is an
//! [`Stage`](crate::stage::Stage) for the pipeline and, as tower middleware,
//! [`RateLimitLayer`] (feature `tower`). Refusals are [`Error::Rejected`](crate::Error) with
//! [`RejectionReason::RateLimited`](crate::RejectionReason::RateLimited) and the decision's
//! `retry_after`, for an honest `Retry-After`.
//!
//! # Time
//!
//! A limiter reads the CPU's time-stamp counter (through [`quanta`](https://docs.rs/quanta),
//! which falls back to the monotonic clock on CPUs without an invariant counter): a few
//! nanoseconds per read, where `tokio::time::Instant::now()` costs tens. Built inside a tokio
//! runtime whose clock is paused (`#[tokio::test(start_paused = true)]`, or after
//! `tokio::time::pause()`), it reads tokio's clock instead, so `advance` and auto-advance
//! drive it exactly. The choice is made once, when it is built: in a test, pause the clock
//! first, then build it.
//!
//! # Events
//!
//! `rate_limit_passed` for every allowed request and `rate_limit_exceeded` for every denied
//! one, with the key, the rate and the reason; see [`RateLimiterEvent`] and
//! [`events`](crate::events). Denials are also logged at `DEBUG` under the target
//! `resilience::rate_limit`. A limiter implemented in another crate reports its decisions with
//! [`report_decision`], so its events and logs are the same as these.
//!
//! # Defaults
//!
//! As aioresilience's `LocalRateLimiter`: at most 10,000 keys (its `max_limiters`), a burst of
//! `count` (a quiet client may spend a whole period's allowance at once, like its leaky
//! bucket), `acquire` does not wait (`max_wait` zero). The rate has no default: a limiter
//! without one would be a guess.

mod budget;
mod builder;
mod config;
mod decision;
mod direct;
mod event;
mod gcra;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod limiter;
mod local;
mod metrics;
mod sketch;
mod sliding_log;
mod sliding_window;
mod state;
mod store;
mod token_bucket;

pub use crate::rate::{Rate, RateProblem};
pub use budget::{Budgets, OneBudget, PerKey};
pub use builder::RateLimiterBuilder;
pub use config::{Algorithm, RateLimiterConfig, SketchSize};
pub use decision::{Decision, Denial};
pub use direct::DirectRateLimiter;
pub use event::{report_decision, RateLimiterEvent};
pub use handle::InMemoryRateLimiter;
pub use instruments::RateLimiterInstruments;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{RateLimitLayer, RateLimitService, ResponseFuture};
pub use limiter::{rejection_of, ForKey, RateLimiter};
pub use local::LocalRateLimiter;
pub use metrics::RateLimiterMetrics;
