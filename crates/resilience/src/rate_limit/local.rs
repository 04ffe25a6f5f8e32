//! [`LocalRateLimiter`]: a keyed rate limiter in memory, bounded by `max_keys`.

use std::fmt;
use std::future::{ready, Future};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::event::report_decision;
use super::state::as_nanos;
use super::store::{RateCell, Stores};
use super::{Decision, RateLimiter, RateLimiterBuilder, RateLimiterConfig, RateLimiterMetrics};
use crate::config::{ConfigError, ConfigProblem};
use crate::events::{Emitter, EventBus};
use crate::registry::Registered;
use crate::{PatternKind, Rate, Rejection, RejectionReason};

/// A keyed rate limiter in memory: one budget per key (per user, per client IP, per API
/// token), at most `max_keys` of them at once.
///
/// Cheap to clone; clones share every budget, so a limiter built once can be handed to every
/// task and service. See the [module docs](super) for how it decides and what it does when
/// the keys run out.
///
/// ```
/// use resilience::rate_limit::LocalRateLimiter;
/// use resilience::Rate;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let limiter = LocalRateLimiter::builder("login").rate("3/minute".parse()?).build()?;
/// for _ in 0..3 {
///     assert!(limiter.check_now("ada").is_allowed());
/// }
/// assert!(!limiter.check_now("ada").is_allowed());
/// assert!(limiter.check_now("bob").is_allowed(), "each key has its own budget");
///
/// // The seed's style: the rate given per call, each (key, rate) pair its own budget.
/// assert!(limiter.check_rate_limit("ada", Rate::per_hour(100)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LocalRateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    /// Time zero of every state, so states are plain nanosecond counts.
    epoch: Instant,
    /// Seeded per limiter, so nobody can choose keys that collide.
    hasher: RandomState,
    rate: RateCell,
    max_wait: AtomicU64,
    /// The current config; also serialises reconfiguration.
    config: Mutex<RateLimiterConfig>,
    stores: Stores,
    emitter: Emitter,
}

impl LocalRateLimiter {
    /// Starts building a keyed limiter named `name`.
    pub fn builder(name: impl Into<String>) -> RateLimiterBuilder<Self> {
        RateLimiterBuilder::new(name.into())
    }

    /// A limiter from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: RateLimiterConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: RateLimiterConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                epoch: Instant::now(),
                hasher: RandomState::new(),
                rate: RateCell::new(config.rate),
                max_wait: AtomicU64::new(as_nanos(config.max_wait)),
                stores: Stores::new(config.algorithm, config.max_keys),
                config: Mutex::new(config),
            }),
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The rate [`check_now`](Self::check_now) applies.
    pub fn rate(&self) -> Rate {
        self.inner.rate.load()
    }

    /// Decides one request for `key` at the configured rate, now.
    pub fn check_now(&self, key: &str) -> Decision {
        let inner = &*self.inner;
        let rate = inner.rate.load();
        inner.decide(key, inner.hasher.hash_one(key), rate)
    }

    /// Decides one request for `key` at `rate`, now; `(key, rate)` has a budget of its own,
    /// separate from the one [`check_now`](Self::check_now) uses.
    pub fn check_rate_now(&self, key: &str, rate: Rate) -> Decision {
        let inner = &*self.inner;
        inner.decide(key, inner.hasher.hash_one((key, rate)), rate)
    }

    /// The seed's `check_rate_limit(key, rate)`: whether a request for `key` fits `rate`.
    /// Unlike the seed, a bad rate cannot reach this point (a [`Rate`] is valid by
    /// construction), so nothing ever fails open.
    pub fn check_rate_limit(&self, key: &str, rate: Rate) -> bool {
        self.check_rate_now(key, rate).is_allowed()
    }

    /// A snapshot of the counters, with the seed's field names.
    pub fn metrics(&self) -> RateLimiterMetrics {
        let inner = &*self.inner;
        let config = *inner.lock();
        let counters = inner.stores.counters();
        let rejected = counters.rate_exceeded + counters.refused;
        RateLimiterMetrics {
            name: inner.name.to_string(),
            kind: "local",
            algorithm: config.algorithm,
            rate: config.rate,
            active_limiters: inner.stores.len(),
            max_keys: config.max_keys,
            total_checks: counters.allowed + rejected,
            total_allowed: counters.allowed,
            total_rejected: rejected,
            rejected_new_keys: counters.refused,
            evicted_keys: counters.evicted,
        }
    }

    /// The current configuration.
    pub fn config(&self) -> RateLimiterConfig {
        *self.inner.lock()
    }

    /// Changes the configured rate at run time. Budgets are kept: a key that spent its
    /// budget under the old rate carries that debt into the new one.
    pub fn set_rate(&self, rate: Rate) {
        let mut config = self.inner.lock();
        self.inner.rate.store(rate);
        config.rate = rate;
    }

    /// Replaces the configuration at run time, keeping every budget, listener and counter.
    /// The rate and `max_wait` can change; the algorithm and `max_keys` shape the stored state
    /// and cannot (build a new limiter for those).
    pub fn set_config(&self, config: RateLimiterConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let mut current = self.inner.lock();
        check_fixed(&current, &config)?;
        self.inner.rate.store(config.rate);
        self.inner
            .max_wait
            .store(as_nanos(config.max_wait), Ordering::Relaxed);
        *current = config;
        Ok(())
    }

    /// This limiter's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

/// Refuses changes to the fields that shape stored state.
pub(super) fn check_fixed(
    current: &RateLimiterConfig,
    new: &RateLimiterConfig,
) -> Result<(), ConfigError> {
    let fixed = |field| {
        ConfigError::new(
            field,
            ConfigProblem::Invalid("cannot change on a running limiter; build a new one".into()),
        )
    };
    if new.algorithm != current.algorithm {
        return Err(fixed("algorithm"));
    }
    if new.max_keys != current.max_keys {
        return Err(fixed("max_keys"));
    }
    Ok(())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, RateLimiterConfig> {
        self.config
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn decide(&self, key: &str, hash: u64, rate: Rate) -> Decision {
        let now = as_nanos(Instant::now().saturating_duration_since(self.epoch));
        let decision = self.stores.check(hash, now, &rate);
        report_decision(&self.emitter, &self.name, Some(key), rate, &decision);
        decision
    }
}

impl RateLimiter for LocalRateLimiter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn rate(&self) -> Rate {
        self.inner.rate.load()
    }

    fn max_wait(&self) -> Duration {
        Duration::from_nanos(self.inner.max_wait.load(Ordering::Relaxed))
    }

    fn check(&self, key: &str) -> impl Future<Output = Decision> + Send {
        ready(self.check_now(key))
    }

    fn check_rate(&self, key: &str, rate: Rate) -> impl Future<Output = Decision> + Send {
        ready(self.check_rate_now(key, rate))
    }

    fn rejection(&self, decision: &Decision) -> Rejection {
        Rejection::new(
            PatternKind::RateLimiter,
            Arc::clone(&self.inner.name),
            RejectionReason::RateLimited,
            decision.retry_after(),
        )
    }
}

impl Registered for LocalRateLimiter {
    type Config = RateLimiterConfig;
    type Metrics = RateLimiterMetrics;

    fn create(name: &str, config: RateLimiterConfig) -> Result<Self, ConfigError> {
        Self::from_config(name, config)
    }

    fn registered_name(&self) -> &str {
        self.name()
    }

    fn current_config(&self) -> RateLimiterConfig {
        self.config()
    }

    fn snapshot(&self) -> RateLimiterMetrics {
        self.metrics()
    }
}

impl fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("name", &self.inner.name)
            .field("config", &*self.inner.lock())
            .finish_non_exhaustive()
    }
}
