//! Test support for the `resilience` workspace: the pieces every crate's tests and examples
//! need to exercise fault tolerance against something real.
//!
//! - [`RedisServer`]: a private `redis-server` process per test, on its own loopback port,
//!   that a fault test can [`stop`](RedisServer::stop) and [`restart`](RedisServer::restart).
//!   The Redis-backed patterns are always tested against a real server, never a mock: the
//!   behaviour that matters (Lua scripts, `TIME`, connection loss mid-call) is exactly what a
//!   mock would get wrong. `redis-server` must be on `PATH` (`scripts/test` installs it).
//! - [`RedisCluster`]: a private Redis Cluster (three primaries, three replicas) whose
//!   primaries a test can kill to watch the replicas take over; [`RedisSentinel`]: a
//!   primary, a replica and `redis-sentinel`, for failover through Sentinel. Both need
//!   `redis-cli` and `redis-sentinel` on `PATH` (`scripts/test` installs them).
//! - [`Flaky`]: a scriptable flaky upstream (fail the first n calls, fail at random with a
//!   fixed seed, add latency, fail everything on demand) that is also a
//!   `tower_service::Service`, so tower layers can be tested against it.
//!
//! - [`PrometheusServer`]: a private `prometheus` process scraping loopback targets, with
//!   a query helper that polls its HTTP API; and `promtool check metrics`
//!   ([`prometheus_server::check_metrics`]). Both from Debian's `prometheus` package.
//!
//! - [`EventRecorder`]: collects a pattern's events in order, so a test can assert the exact
//!   sequence (`["call_failure", "state_change", "circuit_opened"]`).
//!
//! - [`eventually`] and [`eventually_async`]: wait in real time, bounded, for something a
//!   real server does by itself.
//!
//! Tests that use [`RedisServer`] run in real time; tests that use [`Flaky`] alone are meant
//! for `#[tokio::test(start_paused = true)]`, where its latency is exact.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use resilience_testkit::Flaky;
//!
//! let upstream = Flaky::builder().fail_with_probability(0.3).seed(7).build();
//! let mut passed = 0;
//! for _ in 0..10 {
//!     passed += u64::from(upstream.call().await.is_ok());
//! }
//! // The same seed gives the same sequence on every run, so this count never changes.
//! assert_eq!(upstream.successes(), passed);
//! # }
//! ```

pub mod events;
pub mod flaky;
pub mod prometheus_server;
pub mod recorder;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
mod resp;
mod scratch;
pub mod wait;

pub use events::EventRecorder;
pub use flaky::{Flaky, FlakyBuilder, FlakyError};
pub use prometheus_server::PrometheusServer;
pub use recorder::Recorder;
pub use redis_cluster::{RedisCluster, SlotMove};
pub use redis_sentinel::RedisSentinel;
pub use redis_server::RedisServer;
pub use wait::{eventually, eventually_async};
