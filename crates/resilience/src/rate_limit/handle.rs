//! [`InMemoryRateLimiter`]: the shell every in-memory limiter shares, over its budgets.

use std::fmt;
use std::future::{ready, Future};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::budget::{lock, Budgets};
use super::event::{emit_and_log, watched};
use super::instruments::RateLimiterInstruments;
use super::limiter::rejection_of;
use super::state::as_nanos;
use super::store::{Ask, RateCell};
use super::{Decision, RateLimiter, RateLimiterBuilder, RateLimiterConfig, RateLimiterMetrics};
use crate::clock::Clock;
use crate::config::{ConfigError, ConfigProblem};
use crate::events::{Emitter, EventBus};
use crate::{Rate, Rejection};

/// An in-memory rate limiter over its budgets `B`: one budget for everything
/// ([`DirectRateLimiter`](super::DirectRateLimiter)) or one per key
/// ([`LocalRateLimiter`](super::LocalRateLimiter)). Use those two names; this type is what
/// they share (configuration, clock, events, metrics), written once.
///
/// Cheap to clone; clones share every budget.
pub struct InMemoryRateLimiter<B> {
    pub(super) inner: Arc<Inner<B>>,
}

pub(super) struct Inner<B> {
    pub(super) name: Arc<str>,
    /// Time zero of every state, so states are plain nanosecond counts; read once per
    /// decision (see [`Clock`] for which source it reads).
    clock: Clock,
    pub(super) rate: RateCell,
    pub(super) max_wait: AtomicU64,
    /// The current config; also serialises reconfiguration.
    config: Mutex<RateLimiterConfig>,
    pub(super) budgets: B,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    instruments: RateLimiterInstruments,
}

impl<B: Budgets> InMemoryRateLimiter<B> {
    /// Starts building a limiter named `name`.
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
                instruments: RateLimiterInstruments::new(&name),
                name,
                clock: Clock::new(),
                rate: RateCell::new(config.rate),
                max_wait: AtomicU64::new(as_nanos(config.max_wait)),
                budgets: B::new(&config),
                config: Mutex::new(config),
            }),
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configured rate.
    pub fn rate(&self) -> Rate {
        self.inner.rate.load()
    }

    /// A snapshot of the counters, with aioresilience's field names.
    pub fn metrics(&self) -> RateLimiterMetrics {
        let config = self.config();
        let mut metrics = RateLimiterMetrics {
            name: self.inner.name.to_string(),
            kind: B::KIND,
            algorithm: config.algorithm,
            rate: config.rate,
            active_limiters: 0,
            max_keys: config.max_keys,
            total_checks: 0,
            total_allowed: 0,
            total_rejected: 0,
            rejected_new_keys: 0,
            evicted_keys: 0,
        };
        self.inner.budgets.tally(&mut metrics);
        metrics
    }

    /// The current configuration.
    pub fn config(&self) -> RateLimiterConfig {
        *self.inner.lock()
    }

    /// Changes the configured rate at run time. Budgets are kept: a caller that spent its
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

impl<B: Budgets> Inner<B> {
    fn lock(&self) -> MutexGuard<'_, RateLimiterConfig> {
        lock(&self.config)
    }

    fn now(&self) -> u64 {
        self.clock.nanos()
    }

    /// One request for `key`: at the `configured` rate, or against `per_call`'s own budget.
    /// Always inlined: each caller passes constants for `per_call` and `counted`, and the
    /// check is the whole of a direct limiter's decision.
    #[inline(always)]
    fn check(
        &self,
        key: &str,
        configured: &Rate,
        per_call: Option<&Rate>,
        counted: bool,
    ) -> Decision {
        let now = self.now();
        let ask = |rate| Ask {
            now,
            rate,
            configured: Some(configured),
            counted,
        };
        match per_call {
            None => self.budgets.check(key, ask(configured)),
            Some(rate) => self.budgets.check_rate(key, ask(rate)),
        }
    }

    /// Decides one request for `key` at the configured rate, and reports it.
    #[inline]
    pub(super) fn decide(&self, key: &str) -> Decision {
        let decision = self.budgets.check_configured(key, self.now(), &self.rate);
        self.report_decision(key, None, &decision);
        decision
    }

    /// Decides one request for `key` against `rate`'s own budget, and reports it.
    pub(super) fn decide_at(&self, key: &str, rate: Rate) -> Decision {
        let decision = self.check(key, &self.rate.load(), Some(&rate), true);
        self.report_decision(key, Some(rate), &decision);
        decision
    }

    /// The decision a request for `key` would get now (at `per_call`'s own budget if given),
    /// changing nothing, counting nothing, reporting nothing.
    pub(super) fn peek(&self, key: &str, per_call: Option<Rate>) -> Decision {
        let now = self.now();
        match per_call {
            None => self.budgets.peek(key, now, &self.rate.load(), false),
            Some(rate) => self.budgets.peek(key, now, &rate, true),
        }
    }

    /// Decides one request without counting or reporting it (a wake-up of a wait).
    fn decide_unreported(&self, key: &str, per_call: Option<Rate>) -> Decision {
        self.check(key, &self.rate.load(), per_call.as_ref(), false)
    }

    /// Counts and reports a decision of [`decide_unreported`](Self::decide_unreported).
    fn report(&self, key: &str, per_call: Option<Rate>, decision: &Decision) {
        self.budgets.count(key, per_call.as_ref(), decision);
        self.report_decision(key, per_call, decision);
    }

    /// Every decision's one way out: metrics, events and the log line, for a decision at
    /// `per_call`'s own budget or, without one, at the configured rate.
    #[inline]
    fn report_decision(&self, key: &str, per_call: Option<Rate>, decision: &Decision) {
        self.instruments.record(decision);
        if watched(&self.emitter, decision) {
            self.emit(key, per_call, decision);
        }
    }

    /// Emits and logs a watched decision. The configured rate is read here, off the path of
    /// an unwatched limiter, which reads only what its algorithm needs.
    #[cold]
    #[inline(never)]
    fn emit(&self, key: &str, per_call: Option<Rate>, decision: &Decision) {
        let rate = per_call.unwrap_or_else(|| self.rate.load());
        emit_and_log(&self.emitter, &self.name, B::reported(key), rate, decision);
    }

    pub(super) fn rejection(&self, decision: &Decision) -> Rejection {
        rejection_of(Arc::clone(&self.name), decision)
    }
}

/// Refuses changes to the fields that shape stored state.
fn check_fixed(current: &RateLimiterConfig, new: &RateLimiterConfig) -> Result<(), ConfigError> {
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
    if new.sketch != current.sketch {
        return Err(fixed("sketch"));
    }
    Ok(())
}

/// Decides before returning: the futures are ready at once.
impl<B: Budgets> RateLimiter for InMemoryRateLimiter<B> {
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
        ready(self.inner.decide(key))
    }

    fn check_rate(&self, key: &str, rate: Rate) -> impl Future<Output = Decision> + Send {
        ready(self.inner.decide_at(key, rate))
    }

    fn check_at_once(&self, key: &str, rate: Option<Rate>) -> Option<Decision> {
        Some(match rate {
            Some(rate) => self.inner.decide_at(key, rate),
            None => self.inner.decide(key),
        })
    }

    fn check_unreported(
        &self,
        key: &str,
        rate: Option<Rate>,
    ) -> impl Future<Output = Decision> + Send {
        ready(self.inner.decide_unreported(key, rate))
    }

    fn report(&self, key: &str, rate: Option<Rate>, decision: &Decision) {
        self.inner.report(key, rate, decision);
    }

    fn rejection(&self, decision: &Decision) -> Rejection {
        self.inner.rejection(decision)
    }
}

crate::registry::registered!(InMemoryRateLimiter<B>: RateLimiterConfig => RateLimiterMetrics, for<B: Budgets>);

impl<B> Clone for InMemoryRateLimiter<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Budgets> fmt::Debug for InMemoryRateLimiter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(B::TYPE_NAME)
            .field("name", &self.inner.name)
            .field("config", &*self.inner.lock())
            .finish_non_exhaustive()
    }
}
