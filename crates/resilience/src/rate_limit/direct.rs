//! [`DirectRateLimiter`]: one budget for everything that passes through it.

use std::fmt;
use std::future::{ready, Future};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::event::report_decision;
use super::gcra;
use super::local::check_fixed;
use super::sliding_log::{Log, SlidingLog};
use super::sliding_window::{SlidingWindow, Window};
use super::state::{as_nanos, Core};
use super::store::{RateCell, Stores};
use super::token_bucket::{Bucket, TokenBucket};
use super::{
    Algorithm, Decision, RateLimiter, RateLimiterBuilder, RateLimiterConfig, RateLimiterMetrics,
};
use crate::config::ConfigError;
use crate::events::{Emitter, EventBus};
use crate::registry::Registered;
use crate::stage::{Admit, Stage};
use crate::{PatternKind, Rate, Rejection, RejectionReason};

/// A single (unkeyed) rate limiter: one budget shared by every caller, such as the limit a
/// downstream API puts on this whole process.
///
/// With GCRA (the default) its whole state is one `AtomicU64` updated by compare-exchange:
/// no lock, no allocation. The other algorithms keep their state under a short
/// `std::sync::Mutex`. Cheap to clone; clones share the budget.
///
/// Through the [`RateLimiter`] trait it ignores keys: `check("a")` and `check("b")` spend the
/// same budget. Per-call rates (`check_rate`) each get a budget of their own, kept in a small
/// keyed store bounded by `max_keys`. It is an [`Admission`], so a pipeline can put it in
/// front of a call, and [`RateLimitLayer`](super::RateLimitLayer) makes it tower middleware.
///
/// ```
/// use resilience::rate_limit::DirectRateLimiter;
/// use resilience::Rate;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), resilience::ConfigError> {
/// let limiter = DirectRateLimiter::builder("partner-api").rate(Rate::per_second(2)).build()?;
/// assert_eq!(limiter.check_now().remaining(), 1);
/// assert_eq!(limiter.check_now().remaining(), 0);
/// let denied = limiter.try_acquire().unwrap_err();
/// assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DirectRateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    epoch: Instant,
    rate: RateCell,
    budget: Budget,
    allowed: AtomicU64,
    rejected: AtomicU64,
    max_wait: AtomicU64,
    config: Mutex<RateLimiterConfig>,
    /// Budgets of per-call rates, created on first use.
    per_call: OnceLock<(RandomState, Stores)>,
    emitter: Emitter,
}

/// The one budget.
enum Budget {
    /// GCRA's theoretical arrival time, nanoseconds since `epoch`.
    Gcra(AtomicU64),
    Locked(Mutex<Locked>),
}

enum Locked {
    TokenBucket(Bucket),
    SlidingWindow(Window),
    SlidingLog(Log),
}

impl Locked {
    fn check(&mut self, now: u64, rate: &Rate) -> Decision {
        match self {
            Self::TokenBucket(state) => TokenBucket::check(state, now, rate),
            Self::SlidingWindow(state) => SlidingWindow::check(state, now, rate),
            Self::SlidingLog(state) => SlidingLog::check(state, now, rate),
        }
    }
}

impl DirectRateLimiter {
    /// Starts building a single limiter named `name`.
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
        let rate = config.rate;
        let budget = match config.algorithm {
            Algorithm::Gcra => Budget::Gcra(AtomicU64::new(0)),
            Algorithm::TokenBucket => Budget::Locked(Mutex::new(Locked::TokenBucket(
                TokenBucket::fresh(0, &rate),
            ))),
            Algorithm::SlidingWindow => Budget::Locked(Mutex::new(Locked::SlidingWindow(
                SlidingWindow::fresh(0, &rate),
            ))),
            Algorithm::SlidingLog => {
                Budget::Locked(Mutex::new(Locked::SlidingLog(SlidingLog::fresh(0, &rate))))
            }
        };
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                epoch: Instant::now(),
                rate: RateCell::new(rate),
                budget,
                allowed: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                max_wait: AtomicU64::new(as_nanos(config.max_wait)),
                config: Mutex::new(config),
                per_call: OnceLock::new(),
            }),
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The rate applied.
    pub fn rate(&self) -> Rate {
        self.inner.rate.load()
    }

    /// Decides one request now.
    pub fn check_now(&self) -> Decision {
        let inner = &*self.inner;
        let now = inner.now();
        let rate = inner.rate.load();
        let decision = match &inner.budget {
            Budget::Gcra(tat) => check_atomic(tat, now, &rate),
            Budget::Locked(state) => lock(state).check(now, &rate),
        };
        let counter = if decision.is_allowed() {
            &inner.allowed
        } else {
            &inner.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        report_decision(&inner.emitter, &inner.name, None, rate, &decision);
        decision
    }

    /// Decides one request at `rate` now, against that rate's own budget.
    pub fn check_rate_now(&self, rate: Rate) -> Decision {
        let inner = &*self.inner;
        let (hasher, stores) = inner.per_call.get_or_init(|| {
            let config = lock(&inner.config);
            (
                RandomState::new(),
                Stores::new(config.algorithm, config.max_keys),
            )
        });
        let decision = stores.check(hasher.hash_one(rate), inner.now(), &rate);
        report_decision(&inner.emitter, &inner.name, None, rate, &decision);
        decision
    }

    /// Decides one request now, as a `Result`: the decision if allowed, the [`Rejection`] with
    /// its `retry_after` if not. Never waits.
    pub fn try_acquire(&self) -> Result<Decision, Rejection> {
        let decision = self.check_now();
        if decision.is_allowed() {
            Ok(decision)
        } else {
            Err(RateLimiter::rejection(self, &decision))
        }
    }

    /// A snapshot of the counters, with the seed's field names.
    pub fn metrics(&self) -> RateLimiterMetrics {
        let inner = &*self.inner;
        let config = *lock(&inner.config);
        let (per_call, counters) = inner
            .per_call
            .get()
            .map_or((0, Default::default()), |(_, stores)| {
                (stores.len(), stores.counters())
            });
        let allowed = inner.allowed.load(Ordering::Relaxed) + counters.allowed;
        let rejected =
            inner.rejected.load(Ordering::Relaxed) + counters.rate_exceeded + counters.refused;
        RateLimiterMetrics {
            name: inner.name.to_string(),
            kind: "direct",
            algorithm: config.algorithm,
            rate: config.rate,
            active_limiters: 1 + per_call,
            max_keys: config.max_keys,
            total_checks: allowed + rejected,
            total_allowed: allowed,
            total_rejected: rejected,
            rejected_new_keys: counters.refused,
            evicted_keys: counters.evicted,
        }
    }

    /// The current configuration.
    pub fn config(&self) -> RateLimiterConfig {
        *lock(&self.inner.config)
    }

    /// Changes the rate at run time, keeping the budget's state.
    pub fn set_rate(&self, rate: Rate) {
        let mut config = lock(&self.inner.config);
        self.inner.rate.store(rate);
        config.rate = rate;
    }

    /// Replaces the configuration at run time, keeping the budget, listeners and counters.
    /// The rate and `max_wait` can change; the algorithm and `max_keys` cannot.
    pub fn set_config(&self, config: RateLimiterConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let mut current = lock(&self.inner.config);
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

impl Inner {
    fn now(&self) -> u64 {
        as_nanos(Instant::now().saturating_duration_since(self.epoch))
    }
}

/// GCRA on one atomic word: decide from the value read, publish the new TAT only if no one
/// changed it meanwhile, else decide again from theirs. A denial writes nothing. Relaxed
/// ordering is enough: the word is the whole state and publishes nothing else.
fn check_atomic(tat: &AtomicU64, now: u64, rate: &Rate) -> Decision {
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let (decision, next) = gcra::decide(current, now, rate);
        let Some(next) = next else {
            return decision;
        };
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return decision,
            Err(actual) => current = actual,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can panic halfway through an update; keep going.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl RateLimiter for DirectRateLimiter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn rate(&self) -> Rate {
        self.inner.rate.load()
    }

    fn max_wait(&self) -> Duration {
        Duration::from_nanos(self.inner.max_wait.load(Ordering::Relaxed))
    }

    /// Decides now; the key is ignored (one budget for all).
    fn check(&self, _key: &str) -> impl Future<Output = Decision> + Send {
        ready(self.check_now())
    }

    /// Decides now against `rate`'s own budget; the key is ignored.
    fn check_rate(&self, _key: &str, rate: Rate) -> impl Future<Output = Decision> + Send {
        ready(self.check_rate_now(rate))
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

/// Spends one unit of the budget on admission, so the permit holds nothing. With a zero
/// `max_wait` (the default) it decides at once; otherwise it waits for the budget as
/// [`acquire`](RateLimiter::acquire) does.
impl Stage for DirectRateLimiter {
    type Permit = ();

    fn admit(&self) -> Admit<()> {
        if self.inner.max_wait.load(Ordering::Relaxed) == 0 {
            return Admit::ready(self.try_acquire().map(drop));
        }
        let limiter = self.clone();
        Admit::waiting(async move { RateLimiter::acquire(&limiter, "").await.map(drop) })
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::RateLimiter
    }
}

impl Registered for DirectRateLimiter {
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

impl fmt::Debug for DirectRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectRateLimiter")
            .field("name", &self.inner.name)
            .field("config", &*lock(&self.inner.config))
            .finish_non_exhaustive()
    }
}
