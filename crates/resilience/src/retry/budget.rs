//! [`RetryBudget`]: a cap on retries as a share of calls, so retrying cannot amplify an
//! outage (tower's `TpsBudget`, Finagle's `RetryBudget`).
//!
//! Per-call attempt limits do not stop a retry storm: with 3 attempts, a fleet that fails
//! every call sends three times its normal load to a dependency that is already down. A budget
//! bounds the *extra* load instead: every call deposits `retry_ratio` of a retry, every retry
//! withdraws a whole one, and a small reserve (`min_retries_per_second`) lets a quiet client
//! still retry its rare failures. Deposits and withdrawals count over a sliding `window` of
//! ten buckets, so a retry spent a window ago is forgotten.
//!
//! When the budget is empty a retry policy gives up early with
//! [`Error::RetryExhausted`](crate::Error::RetryExhausted); the operation is not retried.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`RetryBudget`]. `Default` is Finagle's: 20 % retries, a 10 s window, at
/// least 10 retries per second.
///
/// ```toml
/// budget = { retry_ratio = 0.2, window = "10s", min_retries_per_second = 10 }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct BudgetConfig {
    /// Retries allowed per call made, in `[0, 1000]` (0.2: one retry per five calls).
    pub retry_ratio: f64,
    /// How long a deposit or withdrawal counts.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// Retries allowed per second whatever the call rate, so low-traffic clients can retry.
    pub min_retries_per_second: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            retry_ratio: 0.2,
            window: Duration::from_secs(10),
            min_retries_per_second: 10,
        }
    }
}

impl BudgetConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1000.0).contains(&self.retry_ratio) {
            return Err(ConfigError::new(
                "budget.retry_ratio",
                ConfigProblem::OutOfRange {
                    min: 0.0,
                    max: 1000.0,
                },
            ));
        }
        check::positive("budget.window", self.window)
    }

    /// Retries allowed in a window with no calls at all.
    fn reserve(&self) -> f64 {
        f64::from(self.min_retries_per_second) * self.window.as_secs_f64()
    }
}

/// A retry budget shared by every clone (and by every [`Retry`](super::Retry) given it).
///
/// A deposit (every call makes one) is a clock read and one atomic addition, with no lock, so
/// a budget shared by many threads does not serialise their calls; withdrawals, made only by
/// retries and hedges, take a short lock so that two of them never spend the same retry.
///
/// ```
/// use resilience::retry::{BudgetConfig, RetryBudget};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let budget = RetryBudget::new(BudgetConfig {
///     retry_ratio: 0.5,
///     window: Duration::from_secs(10),
///     min_retries_per_second: 0,
/// })?;
/// for _ in 0..4 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "4 calls at 50 % buy 2 retries");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Shared>,
}

struct Shared {
    config: BudgetConfig,
    clock: Clock,
    buckets: Buckets,
}

impl RetryBudget {
    /// The budget a builder ends up with: `shared` when it was built for the `wanted`
    /// config, a new one for `wanted` otherwise, none when nothing is wanted.
    pub(crate) fn for_builder(
        shared: Option<Self>,
        wanted: Option<&BudgetConfig>,
    ) -> Result<Option<Self>, ConfigError> {
        Ok(match (shared, wanted) {
            (Some(shared), Some(wanted)) if shared.config() == wanted => Some(shared),
            (_, Some(wanted)) => Some(Self::new(wanted.clone())?),
            (_, None) => None,
        })
    }

    /// A budget with `config`, validated.
    pub fn new(config: BudgetConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Shared {
                clock: Clock::new(),
                buckets: Buckets::new(config.window),
                config,
            }),
        })
    }

    /// Records a call (a deposit of `retry_ratio` retries).
    pub fn deposit(&self) {
        self.inner.buckets.deposit(self.now());
    }

    /// Takes one retry from the budget; `false` when it is empty.
    pub fn try_withdraw(&self) -> bool {
        let inner = &*self.inner;
        inner.buckets.try_withdraw(self.now(), &inner.config)
    }

    /// Whole retries available now.
    pub fn available(&self) -> u64 {
        let inner = &*self.inner;
        let balance = inner.buckets.balance(self.now(), &inner.config);
        balance.max(0.0).floor() as u64
    }

    /// Its settings.
    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    /// Nanoseconds since the budget was made.
    fn now(&self) -> u64 {
        self.inner.clock.nanos()
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

const BUCKETS: usize = 10;

/// The core: calls and retries in ten buckets covering one window. Every method takes `now`
/// (nanoseconds since the budget's epoch); nothing reads a clock.
///
/// Deposits add to the current bucket without a lock. Moving the window on (once per bucket
/// length, by whoever first sees that time has passed) and withdrawing take `rotation`, so a
/// bucket is emptied once and two withdrawals never spend the same retry. A deposit racing the
/// very moment its bucket is reused for a new one may be counted in the new one: one call
/// counted a bucket late, never lost and never a retry spent twice.
#[derive(Debug)]
struct Buckets {
    bucket_nanos: u64,
    /// The bucket number (time since the epoch / bucket length) of `slot(newest)`.
    newest: AtomicU64,
    calls: [AtomicU64; BUCKETS],
    retries: [AtomicU64; BUCKETS],
    rotation: Mutex<()>,
}

/// Where bucket number `bucket` is kept.
fn slot(bucket: u64) -> usize {
    (bucket % BUCKETS as u64) as usize
}

impl Buckets {
    fn new(window: Duration) -> Self {
        let bucket_nanos = window.as_nanos() / BUCKETS as u128;
        Self {
            bucket_nanos: u64::try_from(bucket_nanos).unwrap_or(u64::MAX).max(1),
            newest: AtomicU64::new(0),
            calls: Default::default(),
            retries: Default::default(),
            rotation: Mutex::new(()),
        }
    }

    fn deposit(&self, now: u64) {
        let newest = self.newest.load(Ordering::Acquire);
        // Nearly every deposit falls in the newest bucket: a multiplication tells, where the
        // bucket number would take a division.
        let newest_start = newest.saturating_mul(self.bucket_nanos);
        if now.wrapping_sub(newest_start) < self.bucket_nanos {
            self.calls[slot(newest)].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bucket = now / self.bucket_nanos;
        if bucket > newest {
            let _rotation = self.lock();
            self.rotate(bucket);
        } else if newest - bucket >= BUCKETS as u64 {
            // A reading older than the whole window (a thread stalled between its clock read
            // and here): it would count in a bucket that now holds newer calls.
            return;
        }
        self.calls[slot(bucket)].fetch_add(1, Ordering::Relaxed);
    }

    /// Retries left in the window: reserve + ratio * calls - retries.
    fn balance(&self, now: u64, config: &BudgetConfig) -> f64 {
        let _rotation = self.lock();
        self.rotate(now / self.bucket_nanos);
        self.balance_locked(config)
    }

    fn try_withdraw(&self, now: u64, config: &BudgetConfig) -> bool {
        let _rotation = self.lock();
        let newest = self.rotate(now / self.bucket_nanos);
        if self.balance_locked(config) < 1.0 {
            return false;
        }
        self.retries[slot(newest)].fetch_add(1, Ordering::Relaxed);
        true
    }

    fn balance_locked(&self, config: &BudgetConfig) -> f64 {
        let sum = |counters: &[AtomicU64; BUCKETS]| -> u64 {
            counters
                .iter()
                .map(|counter| counter.load(Ordering::Relaxed))
                .fold(0, u64::saturating_add)
        };
        config.reserve() + config.retry_ratio * sum(&self.calls) as f64 - sum(&self.retries) as f64
    }

    /// With `rotation` held: moves the window on to `bucket`, emptying the buckets that fell
    /// out of it; returns the newest bucket number.
    fn rotate(&self, bucket: u64) -> u64 {
        let newest = self.newest.load(Ordering::Acquire);
        if bucket <= newest {
            return newest;
        }
        let stale = (bucket - newest).min(BUCKETS as u64);
        for step in 1..=stale {
            let index = slot(newest + step);
            self.calls[index].store(0, Ordering::Relaxed);
            self.retries[index].store(0, Ordering::Relaxed);
        }
        self.newest.store(bucket, Ordering::Release);
        bucket
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.rotation
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn config(ratio: f64, min_per_second: u32) -> BudgetConfig {
        BudgetConfig {
            retry_ratio: ratio,
            window: Duration::from_secs(10),
            min_retries_per_second: min_per_second,
        }
    }

    fn withdrawals(state: &Buckets, now: u64, config: &BudgetConfig) -> u32 {
        let mut taken = 0;
        while state.try_withdraw(now, config) {
            taken += 1;
        }
        taken
    }

    #[test]
    fn ratio_of_calls_buys_retries() {
        let config = config(0.2, 0);
        let state = Buckets::new(config.window);
        assert!(!state.try_withdraw(0, &config), "no calls, no reserve");
        for _ in 0..10 {
            state.deposit(0);
        }
        assert_eq!(withdrawals(&state, 0, &config), 2);
    }

    #[test]
    fn the_reserve_covers_quiet_clients() {
        let config = config(0.2, 1);
        let state = Buckets::new(config.window);
        // 1 per second over a 10 s window.
        assert_eq!(withdrawals(&state, 0, &config), 10);
    }

    #[test]
    fn deposits_and_withdrawals_expire_after_the_window() {
        let config = config(1.0, 0);
        let state = Buckets::new(config.window);
        for _ in 0..3 {
            state.deposit(0);
        }
        let later = SECOND * 5;
        assert_eq!(withdrawals(&state, later, &config), 3);
        // At 10 s the bucket of the deposits (0..1 s) has left the window; the withdrawals
        // (5..6 s) still count, so the balance is negative.
        let expired = SECOND * 10;
        assert_eq!(state.balance(expired, &config), -3.0);
        assert_eq!(state.balance(SECOND * 16, &config), 0.0);
        // A jump of many windows empties everything.
        state.deposit(SECOND * 1000);
        assert_eq!(state.balance(SECOND * 1000, &config), 1.0);
    }

    #[test]
    fn a_deposit_counts_until_just_before_the_window_ends() {
        let config = config(1.0, 0);
        let state = Buckets::new(config.window);
        state.deposit(0);
        let edge = SECOND * 10 - 1;
        assert_eq!(state.balance(edge, &config), 1.0);
        assert_eq!(state.balance(edge + 1, &config), 0.0);
    }

    #[test]
    fn validation_names_the_field() {
        let field = |config: BudgetConfig| config.validate().unwrap_err().field();
        assert_eq!(field(config(-0.1, 0)), "budget.retry_ratio");
        assert_eq!(field(config(f64::NAN, 0)), "budget.retry_ratio");
        assert_eq!(field(config(1000.5, 0)), "budget.retry_ratio");
        let zero_window = BudgetConfig {
            window: Duration::ZERO,
            ..BudgetConfig::default()
        };
        assert_eq!(field(zero_window), "budget.window");
        BudgetConfig::default().validate().unwrap();
    }

    #[test]
    fn deposits_from_many_threads_add_up_and_no_retry_is_spent_twice() {
        // An hour's window: nothing expires while the threads run, however loaded the machine.
        let budget = RetryBudget::new(BudgetConfig {
            window: Duration::from_secs(3600),
            ..config(1.0, 0)
        })
        .unwrap();
        let threads = 4;
        let per_thread = 5_000;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| (0..per_thread).for_each(|_| budget.deposit()));
            }
        });
        assert_eq!(budget.available(), threads * per_thread);
        let spent: u64 = std::thread::scope(|scope| {
            let spenders: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        std::iter::from_fn(|| budget.try_withdraw().then_some(())).count() as u64
                    })
                })
                .collect();
            spenders
                .into_iter()
                .map(|spender| spender.join().unwrap())
                .sum()
        });
        assert_eq!(spent, threads * per_thread);
        assert_eq!(budget.available(), 0);
    }

    #[test]
    fn clones_share_one_budget() {
        let budget = RetryBudget::new(config(1.0, 0)).unwrap();
        let clone = budget.clone();
        budget.deposit();
        assert_eq!(clone.available(), 1);
        assert!(clone.try_withdraw());
        assert!(!budget.try_withdraw());
    }
}
