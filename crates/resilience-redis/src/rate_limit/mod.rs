//! Rate limiters whose budgets live in Redis, so every process shares them.
//!
//! [`RedisRateLimiter`] implements the core's [`RateLimiter`] trait, so code written against
//! the trait works unchanged with a [`LocalRateLimiter`]
//! in tests and a Redis limiter in production.
//!
//! # How it decides
//!
//! Each decision is **one round trip**: one `EVALSHA` of a Lua script (`src/scripts/*.lua`),
//! which Redis runs atomically, so concurrent requests from any number of processes can
//! neither both take the last unit of budget nor overwrite each other. The script reads the
//! time from the Redis server (`TIME`), never from the client, so clock skew between
//! application hosts does not matter. The scripts are sent by hash; after a `SCRIPT FLUSH` or
//! a server restart, the `NOSCRIPT` reply makes the client load the script and retry, once,
//! within the same call.
//!
//! * [`Algorithm::Gcra`] (default) keeps one string per key, the theoretical arrival time in
//!   microseconds, set to expire when the key's budget is whole again. Exactly the core's
//!   GCRA, at a microsecond's resolution (an emission interval is rounded up to the
//!   microsecond, so rates above a million per second are capped there).
//! * [`Algorithm::SlidingLog`] keeps a sorted set of the requests allowed in the last
//!   window. Each member is the request's time *and* a suffix unique to the request (the
//!   limiter instance's random id and a sequence number), so requests in the same
//!   microsecond are separate entries: six requests in one millisecond at 3/second allow
//!   exactly three. Denied requests are **not recorded**, so a client that keeps retrying
//!   gets through as the window slides and is never locked out. The set expires one window
//!   after its newest entry.
//!
//! Keys follow `{prefix}:{kind}:{name}:{<key>}`, see [`keys`].
//!
//! # When Redis cannot answer
//!
//! A call that fails, or has not answered within the backend's call timeout, is decided by
//! the limiter's [`FailurePolicy`], and marks the backend unhealthy: later checks apply the
//! policy at once, without calling Redis, until the backend's health check sees Redis answer
//! again (see [`RedisBackend`]). [`metrics`](RedisRateLimiter::metrics) counts the errors,
//! the timeouts and the fallbacks of each policy.
//!
//! # Example
//!
//! A complete program against a private `redis-server` is
//! `crates/resilience-redis/examples/redis_rate_limit.rs`:
//!
//! ```no_run
//! use resilience::rate_limit::RateLimiter;
//! use resilience_redis::{RedisBackend, RedisRateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = RedisBackend::connect("redis://127.0.0.1:6379/").await?;
//! let limiter = RedisRateLimiter::builder("api", &backend)
//!     .rate("3/second".parse()?)
//!     .build()?;
//! for remaining in [2, 1, 0] {
//!     assert_eq!(limiter.check("ada").await.remaining(), remaining);
//! }
//! assert!(!limiter.check("ada").await.is_allowed());
//! # Ok(())
//! # }
//! ```
//!
//! # Events
//!
//! The core's event emitter is private to the core crate, so this limiter does not emit
//! `rate_limit_passed` / `rate_limit_exceeded` itself; the in-memory limiter used by
//! [`FailurePolicy::Local`] does, under the same name. Backend outages and recoveries are
//! logged under the `resilience::redis` target.

mod builder;
mod metrics;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use resilience::events::{Emitter, EventBus};
use resilience::rate_limit::{
    rejection_of, report_decision, Algorithm, Decision, Denial, LocalRateLimiter, RateLimiter,
    RateLimiterEvent, RateLimiterInstruments,
};
use resilience::{Rate, Rejection};

pub use builder::RedisRateLimiterBuilder;
pub use metrics::RedisRateLimiterMetrics;

use crate::backend_metrics::BackendMetrics;
use crate::keys;
use crate::{BackendError, FailurePolicy, RedisBackend};

const GCRA_LUA: &str = include_str!("../scripts/gcra.lua");
const SLIDING_LOG_LUA: &str = include_str!("../scripts/sliding_log.lua");

/// A rate limiter whose budgets live in Redis: one budget per key, shared by every process
/// that uses the same Redis, prefix, algorithm and name. See the [module docs](self).
///
/// Cheap to clone; clones share the connection and the counters.
#[derive(Clone)]
pub struct RedisRateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    backend: RedisBackend,
    rate: Rate,
    algorithm: Algorithm,
    max_wait: Duration,
    policy: FailurePolicy,
    /// `{prefix}:{kind}:{name}:`, the start of every key.
    base: String,
    script: Script,
    /// Random per limiter instance; with `sequence`, makes sliding-log members unique
    /// across every process and every request.
    instance: u64,
    sequence: AtomicU64,
    /// The in-memory limiter of `FailurePolicy::Local`.
    local: Option<LocalRateLimiter>,
    counters: Counters,
    /// `rate_limit_passed` / `rate_limit_exceeded`, as the in-memory limiters emit them.
    emitter: Emitter,
    /// The same decision series as the in-memory limiters, plus backend health (feature
    /// `metrics`; zero-sized without it).
    instruments: RateLimiterInstruments,
    backend_metrics: BackendMetrics,
}

#[derive(Default)]
struct Counters {
    allowed: AtomicU64,
    rejected: AtomicU64,
    backend_errors: AtomicU64,
    timeouts: AtomicU64,
    fallbacks_allowed: AtomicU64,
    fallbacks_denied: AtomicU64,
    fallbacks_local: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl RedisRateLimiter {
    /// Starts building a limiter named `name` on `backend`.
    pub fn builder(name: impl Into<String>, backend: &RedisBackend) -> RedisRateLimiterBuilder {
        RedisRateLimiterBuilder::new(name.into(), backend.clone())
    }

    #[expect(clippy::too_many_arguments, reason = "called only by the builder")]
    fn new(
        name: &str,
        backend: RedisBackend,
        rate: Rate,
        algorithm: Algorithm,
        prefix: &str,
        policy: FailurePolicy,
        max_wait: Duration,
        local: Option<LocalRateLimiter>,
    ) -> Self {
        let script = match algorithm {
            Algorithm::SlidingLog => SLIDING_LOG_LUA,
            _ => GCRA_LUA,
        };
        let shared_name: Arc<str> = Arc::from(name);
        Self {
            inner: Arc::new(Inner {
                name: Arc::clone(&shared_name),
                backend,
                rate,
                algorithm,
                max_wait,
                policy,
                base: keys::base(prefix, algorithm.as_str(), name),
                script: Script::new(script),
                instance: fastrand::u64(..),
                sequence: AtomicU64::new(0),
                local,
                counters: Counters::default(),
                emitter: Emitter::new(Arc::clone(&shared_name)),
                instruments: RateLimiterInstruments::new(&shared_name),
                backend_metrics: BackendMetrics::new(&shared_name, policy),
            }),
        }
    }

    /// The Redis key holding `key`'s budget at the configured rate (for inspection and
    /// tests; see [`keys`] for the layout).
    pub fn redis_key(&self, key: &str) -> String {
        keys::tagged(&self.inner.base, key)
    }

    /// The Redis key holding the budget of `(key, rate)` used by
    /// [`check_rate`](RateLimiter::check_rate).
    pub fn redis_key_for_rate(&self, key: &str, rate: Rate) -> String {
        keys::tagged_with_rate(&self.inner.base, key, &rate)
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.policy
    }

    /// The algorithm the script runs.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// The backend this limiter calls.
    pub fn backend(&self) -> &RedisBackend {
        &self.inner.backend
    }

    /// This limiter's own listeners (every event also reaches the global bus): the same
    /// `rate_limit_passed` and `rate_limit_exceeded` events as an in-memory limiter's.
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> RedisRateLimiterMetrics {
        let inner = &*self.inner;
        let c = &inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (allowed, rejected) = (load(&c.allowed), load(&c.rejected));
        RedisRateLimiterMetrics {
            name: inner.name.to_string(),
            kind: "redis",
            algorithm: inner.algorithm,
            rate: inner.rate,
            failure_policy: inner.policy,
            backend_healthy: inner.backend.is_healthy(),
            total_checks: allowed + rejected,
            total_allowed: allowed,
            total_rejected: rejected,
            backend_errors: load(&c.backend_errors),
            timeouts: load(&c.timeouts),
            fallbacks_allowed: load(&c.fallbacks_allowed),
            fallbacks_denied: load(&c.fallbacks_denied),
            fallbacks_local: load(&c.fallbacks_local),
        }
    }
}

impl Inner {
    /// One decision, counted and reported.
    async fn decide(&self, key: &str, rate: Option<Rate>) -> Decision {
        let decision = self.decide_unreported(key, rate).await;
        self.report(key, rate, &decision);
        decision
    }

    /// One decision: Redis if the backend is healthy, else (or if the call fails) the policy.
    /// Not counted in allowed/rejected nor reported: see [`report`](Self::report).
    async fn decide_unreported(&self, key: &str, rate: Option<Rate>) -> Decision {
        match self.remote(key, rate).await {
            Some(decision) => {
                self.backend_metrics.answered();
                decision
            }
            None => {
                self.backend_metrics.failed();
                let healthy = self.backend.is_healthy();
                self.emitter.emit(|| RateLimiterEvent::BackendUnavailable {
                    key: Some(key.to_owned()),
                    policy: self.policy.as_str(),
                    error: if healthy {
                        "the call failed or timed out".to_owned()
                    } else {
                        "the backend is unhealthy".to_owned()
                    },
                });
                self.fallback(key, rate)
            }
        }
    }

    /// Counts a decision and emits its event.
    fn report(&self, key: &str, rate: Option<Rate>, decision: &Decision) {
        bump(if decision.is_allowed() {
            &self.counters.allowed
        } else {
            &self.counters.rejected
        });
        let rate = rate.unwrap_or(self.rate);
        self.instruments.record(decision);
        report_decision(&self.emitter, &self.name, Some(key), rate, decision);
    }

    /// Runs the script; `None` when Redis could not decide.
    async fn remote(&self, key: &str, per_call: Option<Rate>) -> Option<Decision> {
        if !self.backend.is_healthy() {
            return None;
        }
        let rate = per_call.unwrap_or(self.rate);
        let redis_key = match per_call {
            Some(rate) => keys::tagged_with_rate(&self.base, key, &rate),
            None => keys::tagged(&self.base, key),
        };
        let mut invocation = self.script.key(&redis_key);
        match self.algorithm {
            Algorithm::SlidingLog => {
                let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                invocation
                    .arg(window_micros(&rate))
                    .arg(rate.burst())
                    .arg(format!("{:016x}-{sequence:x}", self.instance));
            }
            _ => {
                invocation.arg(interval_micros(&rate)).arg(rate.burst());
            }
        }
        match self.backend.run::<Vec<i64>>(&invocation).await {
            Ok(reply) => match to_decision(&reply, rate.burst()) {
                Some(decision) => Some(decision),
                None => {
                    self.failed(&BackendError::unexpected(format!(
                        "rate limit script answered {reply:?}"
                    )));
                    None
                }
            },
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    fn failed(&self, error: &BackendError) {
        bump(if error.is_timeout() {
            &self.counters.timeouts
        } else {
            &self.counters.backend_errors
        });
        tracing::debug!(target: "resilience::redis", limiter = %self.name, %error, policy = %self.policy, "redis rate limit call failed");
    }

    /// The decision of the failure policy.
    fn fallback(&self, key: &str, per_call: Option<Rate>) -> Decision {
        let rate = per_call.unwrap_or(self.rate);
        let limit = rate.burst();
        match (&self.local, self.policy) {
            (Some(local), _) => {
                bump(&self.counters.fallbacks_local);
                match per_call {
                    Some(rate) => local.check_rate_now(key, rate),
                    None => local.check_now(key),
                }
            }
            // Neither answer knows the budget: a refusal is the backend's fault, not the
            // client's, and an admission must not invent a `remaining` for it.
            (None, FailurePolicy::FailClosed) => {
                bump(&self.counters.fallbacks_denied);
                Decision::denied(Denial::BackendUnavailable, limit, Duration::ZERO, None)
            }
            (None, _) => {
                bump(&self.counters.fallbacks_allowed);
                Decision::allowed_unmetered(limit)
            }
        }
    }
}

/// The emission interval in whole microseconds, rounded up, at least 1.
fn interval_micros(rate: &Rate) -> u64 {
    let nanos = rate.emission_interval().as_nanos();
    u64::try_from(nanos.div_ceil(1_000).max(1)).unwrap_or(u64::MAX)
}

/// The window holding `burst` requests, `period * burst / count`, in whole microseconds,
/// rounded up.
fn window_micros(rate: &Rate) -> u64 {
    let nanos = rate.period().as_nanos() * u128::from(rate.burst());
    let micros = nanos.div_ceil(u128::from(rate.count()) * 1_000).max(1);
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// `{allowed, remaining, reset_after_us, retry_after_us}` → a decision.
fn to_decision(reply: &[i64], limit: u32) -> Option<Decision> {
    let &[allowed, remaining, reset, retry] = reply else {
        return None;
    };
    let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
    Some(if allowed == 1 {
        let remaining = u32::try_from(remaining).unwrap_or(0).min(limit);
        Decision::allowed(limit, remaining, micros(reset))
    } else {
        Decision::denied(
            Denial::RateExceeded,
            limit,
            micros(reset),
            Some(micros(retry)),
        )
    })
}

impl RateLimiter for RedisRateLimiter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn rate(&self) -> Rate {
        self.inner.rate
    }

    fn max_wait(&self) -> Duration {
        self.inner.max_wait
    }

    fn check(&self, key: &str) -> impl Future<Output = Decision> + Send {
        self.inner.decide(key, None)
    }

    fn check_rate(&self, key: &str, rate: Rate) -> impl Future<Output = Decision> + Send {
        self.inner.decide(key, Some(rate))
    }

    fn check_unreported(
        &self,
        key: &str,
        rate: Option<Rate>,
    ) -> impl Future<Output = Decision> + Send {
        self.inner.decide_unreported(key, rate)
    }

    fn report(&self, key: &str, rate: Option<Rate>, decision: &Decision) {
        self.inner.report(key, rate, decision);
    }

    fn rejection(&self, decision: &Decision) -> Rejection {
        rejection_of(Arc::clone(&self.inner.name), decision)
    }
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisRateLimiter")
            .field("name", &inner.name)
            .field("rate", &inner.rate)
            .field("algorithm", &inner.algorithm)
            .field("failure_policy", &inner.policy)
            .field("key_base", &inner.base)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_windows_round_up_to_the_microsecond() {
        assert_eq!(interval_micros(&Rate::per_second(3)), 333_334);
        assert_eq!(interval_micros(&Rate::per_second(10_000_000)), 1);
        assert_eq!(window_micros(&Rate::per_second(3)), 1_000_000);
        assert_eq!(
            window_micros(&Rate::per_second(10).with_burst(25)),
            2_500_000
        );
        assert_eq!(window_micros(&Rate::per_second(3).with_burst(1)), 333_334);
    }

    #[test]
    fn replies_become_decisions() {
        assert_eq!(
            to_decision(&[1, 2, 333_334, 0], 3),
            Some(Decision::allowed(3, 2, Duration::from_micros(333_334)))
        );
        assert_eq!(
            to_decision(&[0, 0, 1_000, 10], 3),
            Some(Decision::denied(
                Denial::RateExceeded,
                3,
                Duration::from_millis(1),
                Some(Duration::from_micros(10)),
            ))
        );
        assert_eq!(to_decision(&[1, 2], 3), None);
    }
}
