//! Distributed rate limiting and shared circuit-breaker state for
//! [`resilience`], on Redis.
//!
//! When several processes serve one API, a limit of "100 requests per minute per user" or a
//! breaker around one upstream only means something if they share it. This crate keeps that
//! state in the Redis users already run:
//!
//! * [`RedisRateLimiter`]: GCRA or sliding-window log, behind the core's
//!   [`RateLimiter`](resilience::rate_limit::RateLimiter) trait, one Lua script per decision
//!   (atomic, on the server's clock). See [`rate_limit`].
//! * [`RedisCircuitBreaker`]: a core [`CircuitBreaker`](resilience::CircuitBreaker) whose
//!   state (trips, half-open probes, resets) is shared through Redis with compare-and-set
//!   scripts, with no Redis call on the hot path. See [`breaker_store`].
//! * [`RedisBackend`]: the connection they share, with a timeout on every call and health
//!   tracking, so a Redis outage switches to the [`FailurePolicy`] at once and back by itself.
//!
//! # Example
//!
//! `crates/resilience-redis/examples/redis_rate_limit.rs` is a complete program that starts
//! a private `redis-server` (`cargo run -p resilience-redis --example redis_rate_limit`); in
//! short:
//!
//! ```no_run
//! use resilience::rate_limit::RateLimiter;
//! use resilience_redis::{FailurePolicy, RedisBackend, RedisRateLimiter};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = RedisBackend::builder("redis://127.0.0.1:6379/")
//!     .call_timeout(Duration::from_millis(50))
//!     .connect()
//!     .await?;
//! let limiter = RedisRateLimiter::builder("api", &backend)
//!     .rate("100/minute".parse()?)
//!     .failure_policy(FailurePolicy::Local)
//!     .build()?;
//!
//! let decision = limiter.check("user-42").await;
//! if !decision.is_allowed() {
//!     println!("429, retry after {:?}", decision.retry_after());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Failure policies
//!
//! Every call to Redis has a timeout (50 ms by default). When a call fails or times out, the
//! component decides by its [`FailurePolicy`]: [`FailOpen`](FailurePolicy::FailOpen) (the
//! default) allows, claiming no remaining budget it cannot read,
//! [`FailClosed`](FailurePolicy::FailClosed) denies as *backend unavailable* (an HTTP
//! integration answers 503, not 429), [`Local`](FailurePolicy::Local) decides with the
//! in-memory algorithm of this process.
//! The backend is then marked unhealthy, so later calls apply the policy at once instead
//! of waiting for the timeout, until a background health check sees Redis answer (every
//! 100 ms by default). Then Redis decides again, with no restart; scripts flushed by the
//! restart are loaded again on their first `NOSCRIPT`. Metrics count backend errors,
//! timeouts and the decisions of each policy; a limiter's `events()` report every decision
//! (`rate_limit_passed`, `rate_limit_exceeded`, as the in-memory limiters do) and every
//! decision its policy made instead of Redis (`rate_limit_backend_unavailable`).
//!
//! # Key layout
//!
//! `{prefix}:{kind}:{name}:{<key>}`: the logical key is a Redis Cluster hash tag, escaped so
//! that no user key can break out of it or collide with another limiter's or rate's keys,
//! and hashed (SHA-1) past 128 bytes. Every key has a TTL. See [`keys`].
//!
//! # Staleness of shared breaker state
//!
//! The instance whose breaker trips rejects on its next call; every other instance hears of
//! the trip by pub/sub (about a millisecond on loopback), and at worst, when a message is
//! lost, within `sync_interval` (100 ms by default) plus the call timeout. Half-open probes
//! are limited across all instances at once, through Redis. See [`breaker_store`].
//!
//! # Deployments
//!
//! One server ([`RedisBackend::builder`]), a Redis Cluster ([`RedisBackend::cluster`]) or a
//! primary found through Sentinel ([`RedisBackend::sentinel`]), with the same limiters and
//! breakers on top. Every script touches keys of one hash slot only, so on a cluster each
//! decision is one round trip to the node that owns the key; while a node fails over,
//! components follow their failure policy and return to Redis by themselves afterwards.
//! Tested with `redis-server` and `redis-sentinel` 7.0.15; Redis 6 or later is required
//! (the connection speaks RESP3).
//!
//! # Time
//!
//! Decisions take their time from the Redis server (`TIME` inside the scripts), so the
//! application hosts' clocks do not matter; durations on the client (timeouts, intervals)
//! use Tokio's clock. Test against a real `redis-server` in real time (the workspace's
//! `resilience-testkit` starts one per test): a paused Tokio clock would fire the short
//! call timeouts spuriously.
//!
//! # Features
//!
//! * `serde`: `Serialize` for the metric snapshots.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend_metrics;
pub mod breaker_store;
mod client;
mod connection;
mod deployment;
mod error;
pub mod keys;
mod policy;
pub mod rate_limit;
mod subscriptions;

pub use breaker_store::{
    RedisCircuitBreaker, RedisCircuitBreakerBuilder, RedisCircuitBreakerMetrics, SharedPermit,
    SharedState,
};
pub use client::{
    RedisBackend, RedisBackendBuilder, DEFAULT_CALL_TIMEOUT, DEFAULT_HEALTH_CHECK_INTERVAL,
};
pub use connection::RedisConnection;
pub use error::BackendError;
pub use policy::FailurePolicy;
pub use rate_limit::{RedisRateLimiter, RedisRateLimiterBuilder, RedisRateLimiterMetrics};
/// The `redis` crate this one is built on, re-exported so that code using
/// [`RedisBackend::connection`] names the very version this crate links (a second `redis` in
/// the dependency tree would make its connection type a different type). Upgrading it is a
/// breaking change of this crate.
pub use redis;
