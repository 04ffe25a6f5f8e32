//! Where an in-memory limiter keeps its budgets: [`OneBudget`] (a direct limiter) or
//! [`PerKey`] (a keyed one). The store is the only difference between the two; everything
//! around it is [`InMemoryRateLimiter`](super::InMemoryRateLimiter), written once.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::gcra;
use super::sliding_log::{Log, SlidingLog};
use super::sliding_window::{SlidingWindow, Window};
use super::state::Core;
use super::store::{Ask, Counters, Pace, RateCell, Stores, FOLLOWS_CONFIGURED};
use super::token_bucket::{Bucket, TokenBucket};
use super::{Algorithm, Decision, RateLimiterConfig, RateLimiterMetrics, SketchSize};
use crate::sync::Padded;
use crate::tally::Tally;
use crate::Rate;

mod sealed {
    pub trait Sealed {}
}

/// The budgets of an in-memory rate limiter: one for everything ([`OneBudget`]) or one per
/// key ([`PerKey`]). Implemented by this crate only.
pub trait Budgets: sealed::Sealed + Send + Sync + 'static {
    /// The limiter's type name, for `Debug`.
    #[doc(hidden)]
    const TYPE_NAME: &'static str;
    /// The `kind` of its metrics.
    #[doc(hidden)]
    const KIND: &'static str;

    /// Fresh budgets for `config`.
    #[doc(hidden)]
    fn new(config: &RateLimiterConfig) -> Self;

    /// Decides one request for `key` at the configured rate (the ask's `rate`).
    #[doc(hidden)]
    fn check(&self, key: &str, ask: Ask<'_>) -> Decision;

    /// Decides one request for `key` at the configured rate, the one in `rate` now, and
    /// counts it: [`check`](Self::check) reading only what the budget's algorithm needs of
    /// the rate.
    #[doc(hidden)]
    #[inline(always)]
    fn check_configured(&self, key: &str, now: u64, rate: &RateCell) -> Decision {
        let rate = rate.load();
        let ask = Ask {
            now,
            rate: &rate,
            configured: Some(&rate),
            counted: true,
        };
        self.check(key, ask)
    }

    /// Decides one request for `key` against the ask's `rate`'s own budget.
    #[doc(hidden)]
    fn check_rate(&self, key: &str, ask: Ask<'_>) -> Decision;

    /// The decision `key` would get now at the ask's `rate` (against that rate's own budget
    /// if `per_call`), changing nothing.
    #[doc(hidden)]
    fn peek(&self, key: &str, now: u64, rate: &Rate, per_call: bool) -> Decision;

    /// Counts a decision made uncounted for `key` (at `per_call`'s own budget if given).
    #[doc(hidden)]
    fn count(&self, key: &str, per_call: Option<&Rate>, decision: &Decision);

    /// The key events name (none for a single budget).
    #[doc(hidden)]
    fn reported(key: &str) -> Option<&str>;

    /// Fills the counts of `metrics`.
    #[doc(hidden)]
    fn tally(&self, metrics: &mut RateLimiterMetrics);
}

/// One budget for every caller: a direct limiter. With GCRA (the default) its whole state is
/// one `AtomicU64` updated by compare-exchange; the other algorithms keep theirs under a
/// short `std::sync::Mutex`.
pub struct OneBudget {
    budget: Budget,
    /// Allowed and rejected checks at the configured rate.
    tally: Tally,
    /// Budgets of per-call rates, created on first use.
    per_call: OnceLock<(RandomState, Stores)>,
    algorithm: Algorithm,
    max_keys: usize,
    sketch: SketchSize,
}

enum Budget {
    /// GCRA's theoretical arrival time, nanoseconds since the limiter's epoch. Every
    /// allowed check writes it; on lines of its own, the fields every check only reads (the
    /// rate, the clock) stay in each core's cache while another core writes it.
    Gcra(Padded<AtomicU64>),
    Locked(Mutex<Locked>),
}

#[derive(Clone)]
enum Locked {
    TokenBucket(Bucket),
    SlidingWindow(Window),
    SlidingLog(Log),
}

impl sealed::Sealed for OneBudget {}

impl Budgets for OneBudget {
    const TYPE_NAME: &'static str = "DirectRateLimiter";
    const KIND: &'static str = "direct";

    fn new(config: &RateLimiterConfig) -> Self {
        let rate = &config.rate;
        let locked = |state| Budget::Locked(Mutex::new(state));
        let budget = match config.algorithm {
            Algorithm::Gcra => Budget::Gcra(Padded(AtomicU64::new(0))),
            Algorithm::TokenBucket => locked(Locked::TokenBucket(TokenBucket::fresh(0, rate))),
            // One budget has no keys to sketch: it is counted exactly.
            Algorithm::SlidingWindow | Algorithm::SketchedWindow => {
                locked(Locked::SlidingWindow(SlidingWindow::fresh(0, rate)))
            }
            Algorithm::SlidingLog => locked(Locked::SlidingLog(SlidingLog::fresh(0, rate))),
        };
        Self {
            budget,
            tally: Tally::new(),
            per_call: OnceLock::new(),
            algorithm: config.algorithm,
            max_keys: config.max_keys,
            sketch: config.sketch,
        }
    }

    // Always inlined: with GCRA this is the whole of a direct limiter's decision.
    #[inline(always)]
    fn check(&self, _key: &str, ask: Ask<'_>) -> Decision {
        let Ask { now, rate, .. } = ask;
        let decision = match &self.budget {
            Budget::Gcra(tat) => check_atomic(tat, now, &Pace::of(rate)),
            Budget::Locked(state) => check_locked(state, now, rate),
        };
        if ask.counted {
            self.tally.count(decision.is_allowed());
        }
        decision
    }

    // Always inlined, as `check`; GCRA reads the three numbers it uses, not the whole rate.
    #[inline(always)]
    fn check_configured(&self, _key: &str, now: u64, rate: &RateCell) -> Decision {
        let decision = match &self.budget {
            Budget::Gcra(tat) => check_atomic(tat, now, &rate.pace()),
            Budget::Locked(state) => check_locked(state, now, &rate.load()),
        };
        self.tally.count(decision.is_allowed());
        decision
    }

    fn check_rate(&self, _key: &str, ask: Ask<'_>) -> Decision {
        let (hasher, stores) = self.per_call.get_or_init(|| {
            (
                RandomState::new(),
                Stores::new(self.algorithm, self.max_keys, self.sketch),
            )
        });
        // Per-call budgets keep their own rate: the configured one is not theirs.
        let hash = hasher.hash_one(ask.rate) & !FOLLOWS_CONFIGURED;
        let configured = None;
        stores.check(hash, Ask { configured, ..ask })
    }

    fn peek(&self, _key: &str, now: u64, rate: &Rate, per_call: bool) -> Decision {
        if per_call {
            return match self.per_call.get() {
                Some((hasher, stores)) => {
                    stores.peek(hasher.hash_one(rate) & !FOLLOWS_CONFIGURED, now, rate)
                }
                // No per-call budget exists yet: a whole one.
                None => Stores::fresh_decision(self.algorithm, now, rate),
            };
        }
        match &self.budget {
            Budget::Gcra(tat) => gcra::decide(tat.load(Ordering::Relaxed), now, rate).0,
            // The state is copied out under the lock and decided on outside it.
            Budget::Locked(state) => match lock(state).clone() {
                Locked::TokenBucket(mut state) => TokenBucket::check(&mut state, now, rate),
                Locked::SlidingWindow(mut state) => SlidingWindow::check(&mut state, now, rate),
                Locked::SlidingLog(mut state) => SlidingLog::check(&mut state, now, rate),
            },
        }
    }

    fn count(&self, _key: &str, per_call: Option<&Rate>, decision: &Decision) {
        match per_call {
            None => self.tally.count(decision.is_allowed()),
            Some(rate) => {
                if let Some((hasher, stores)) = self.per_call.get() {
                    stores.count(hasher.hash_one(rate) & !FOLLOWS_CONFIGURED, decision);
                }
            }
        }
    }

    fn reported(_key: &str) -> Option<&str> {
        None
    }

    fn tally(&self, metrics: &mut RateLimiterMetrics) {
        let (per_call, counters) = self
            .per_call
            .get()
            .map_or((0, Counters::default()), |(_, stores)| {
                (stores.len(), stores.counters())
            });
        let (allowed, rejected) = self.tally.totals();
        let allowed = allowed + counters.allowed;
        let rejected = rejected + counters.rate_exceeded + counters.refused;
        fill(metrics, 1 + per_call, allowed, rejected, counters);
    }
}

/// The seeded hash of keys. The exact store keeps SipHash (std's `RandomState`), whose seeded
/// collisions nobody can aim for, since two colliding keys share one budget. The sketch
/// expects collisions, counts each key in `depth` cells and only ever errs towards limiting:
/// it takes foldhash (seeded per limiter too), a few times faster on the path it exists to
/// make cheap.
enum KeyHasher {
    Sip(RandomState),
    Fold(hashbrown::DefaultHashBuilder),
}

impl KeyHasher {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::SketchedWindow => Self::Fold(hashbrown::DefaultHashBuilder::default()),
            _ => Self::Sip(RandomState::new()),
        }
    }

    #[inline]
    fn hash_one<T: std::hash::Hash>(&self, value: T) -> u64 {
        match self {
            Self::Sip(hasher) => hasher.hash_one(value),
            Self::Fold(hasher) => hasher.hash_one(value),
        }
    }
}

/// One budget per key, at most `max_keys` of them: a keyed limiter.
pub struct PerKey {
    /// Seeded per limiter, so nobody can choose keys that collide.
    hasher: KeyHasher,
    stores: Stores,
}

impl PerKey {
    /// The hash of `key`'s budget at the configured rate, which follows that rate.
    fn follows(&self, key: &str) -> u64 {
        self.hasher.hash_one(key) | FOLLOWS_CONFIGURED
    }

    /// The hash of the budget of `(key, rate)`, which keeps `rate`.
    fn own_rate(&self, key: &str, rate: &Rate) -> u64 {
        self.hasher.hash_one((key, rate)) & !FOLLOWS_CONFIGURED
    }
}

impl sealed::Sealed for PerKey {}

impl Budgets for PerKey {
    const TYPE_NAME: &'static str = "LocalRateLimiter";
    const KIND: &'static str = "local";

    fn new(config: &RateLimiterConfig) -> Self {
        Self {
            hasher: KeyHasher::new(config.algorithm),
            stores: Stores::new(config.algorithm, config.max_keys, config.sketch),
        }
    }

    fn check(&self, key: &str, ask: Ask<'_>) -> Decision {
        self.stores.check(self.follows(key), ask)
    }

    fn check_rate(&self, key: &str, ask: Ask<'_>) -> Decision {
        self.stores.check(self.own_rate(key, ask.rate), ask)
    }

    fn peek(&self, key: &str, now: u64, rate: &Rate, per_call: bool) -> Decision {
        let hash = if per_call {
            self.own_rate(key, rate)
        } else {
            self.follows(key)
        };
        self.stores.peek(hash, now, rate)
    }

    fn count(&self, key: &str, per_call: Option<&Rate>, decision: &Decision) {
        let hash = match per_call {
            None => self.follows(key),
            Some(rate) => self.own_rate(key, rate),
        };
        self.stores.count(hash, decision);
    }

    fn reported(key: &str) -> Option<&str> {
        Some(key)
    }

    fn tally(&self, metrics: &mut RateLimiterMetrics) {
        let counters = self.stores.counters();
        let rejected = counters.rate_exceeded + counters.refused;
        fill(
            metrics,
            self.stores.len(),
            counters.allowed,
            rejected,
            counters,
        );
    }
}

impl fmt::Debug for OneBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneBudget")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerKey")
            .field("keys", &self.stores.len())
            .finish_non_exhaustive()
    }
}

fn fill(
    metrics: &mut RateLimiterMetrics,
    active: usize,
    allowed: u64,
    rejected: u64,
    counters: Counters,
) {
    metrics.active_limiters = active;
    metrics.total_checks = allowed + rejected;
    metrics.total_allowed = allowed;
    metrics.total_rejected = rejected;
    metrics.rejected_new_keys = counters.refused;
    metrics.evicted_keys = counters.evicted;
}

/// GCRA on one atomic word: decide from the value read, publish the new TAT only if no one
/// changed it meanwhile, else decide again from theirs. A denial writes nothing. Relaxed
/// ordering is enough: the word is the whole state and publishes nothing else.
#[inline]
fn check_atomic(tat: &AtomicU64, now: u64, pace: &Pace) -> Decision {
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let next = match gcra::next_at_pace(current, now, pace) {
            Ok(next) => next,
            Err(denied) => return denied,
        };
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return gcra::allowed_at_pace(next, now, pace),
            Err(actual) => current = actual,
        }
    }
}

/// The algorithms other than GCRA, under their lock.
fn check_locked(state: &Mutex<Locked>, now: u64, rate: &Rate) -> Decision {
    match &mut *lock(state) {
        Locked::TokenBucket(state) => TokenBucket::check(state, now, rate),
        Locked::SlidingWindow(state) => SlidingWindow::check(state, now, rate),
        Locked::SlidingLog(state) => SlidingLog::check(state, now, rate),
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can panic halfway through an update; keep going.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
