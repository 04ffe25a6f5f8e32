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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

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
    // A std Mutex: each critical section is a few additions on ten buckets, never held across
    // an await; a lock-free ring is not worth its complexity for an opt-in feature.
    state: Mutex<BudgetState>,
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
                state: Mutex::new(BudgetState::new(Instant::now(), config.window)),
                config,
            }),
        })
    }

    /// Records a call (a deposit of `retry_ratio` retries).
    pub fn deposit(&self) {
        self.lock().deposit(Instant::now());
    }

    /// Takes one retry from the budget; `false` when it is empty.
    pub fn try_withdraw(&self) -> bool {
        let config = &self.inner.config;
        self.lock().try_withdraw(Instant::now(), config)
    }

    /// Whole retries available now.
    pub fn available(&self) -> u64 {
        let config = &self.inner.config;
        let balance = self.lock().balance(Instant::now(), config);
        balance.max(0.0).floor() as u64
    }

    /// Its settings.
    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
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

/// The pure core: calls and retries in ten buckets covering one window. Every method takes
/// `now`; nothing reads a clock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BudgetState {
    epoch: Instant,
    bucket_nanos: u128,
    /// The bucket number (time since `epoch` / bucket length) of `buckets[newest % BUCKETS]`.
    newest: u128,
    calls: [u64; BUCKETS],
    retries: [u64; BUCKETS],
}

impl BudgetState {
    pub(crate) fn new(epoch: Instant, window: Duration) -> Self {
        Self {
            epoch,
            bucket_nanos: (window.as_nanos() / BUCKETS as u128).max(1),
            newest: 0,
            calls: [0; BUCKETS],
            retries: [0; BUCKETS],
        }
    }

    /// Moves the window to `now`, emptying buckets that fell out of it; returns the index of
    /// the current bucket.
    fn rotate(&mut self, now: Instant) -> usize {
        let bucket = now.saturating_duration_since(self.epoch).as_nanos() / self.bucket_nanos;
        if bucket > self.newest {
            let stale = (bucket - self.newest).min(BUCKETS as u128);
            for step in 1..=stale {
                let index = ((self.newest + step) % BUCKETS as u128) as usize;
                self.calls[index] = 0;
                self.retries[index] = 0;
            }
            self.newest = bucket;
        }
        (self.newest % BUCKETS as u128) as usize
    }

    pub(crate) fn deposit(&mut self, now: Instant) {
        let index = self.rotate(now);
        self.calls[index] = self.calls[index].saturating_add(1);
    }

    /// Retries left in the window: reserve + ratio * calls - retries.
    pub(crate) fn balance(&mut self, now: Instant, config: &BudgetConfig) -> f64 {
        self.rotate(now);
        let calls: u64 = self.calls.iter().sum();
        let retries: u64 = self.retries.iter().sum();
        config.reserve() + config.retry_ratio * calls as f64 - retries as f64
    }

    pub(crate) fn try_withdraw(&mut self, now: Instant, config: &BudgetConfig) -> bool {
        if self.balance(now, config) < 1.0 {
            return false;
        }
        let index = self.rotate(now);
        self.retries[index] = self.retries[index].saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ratio: f64, min_per_second: u32) -> BudgetConfig {
        BudgetConfig {
            retry_ratio: ratio,
            window: Duration::from_secs(10),
            min_retries_per_second: min_per_second,
        }
    }

    fn withdrawals(state: &mut BudgetState, now: Instant, config: &BudgetConfig) -> u32 {
        let mut taken = 0;
        while state.try_withdraw(now, config) {
            taken += 1;
        }
        taken
    }

    #[test]
    fn ratio_of_calls_buys_retries() {
        let epoch = Instant::now();
        let config = config(0.2, 0);
        let mut state = BudgetState::new(epoch, config.window);
        assert!(!state.try_withdraw(epoch, &config), "no calls, no reserve");
        for _ in 0..10 {
            state.deposit(epoch);
        }
        assert_eq!(withdrawals(&mut state, epoch, &config), 2);
    }

    #[test]
    fn the_reserve_covers_quiet_clients() {
        let epoch = Instant::now();
        let config = config(0.2, 1);
        let mut state = BudgetState::new(epoch, config.window);
        // 1 per second over a 10 s window.
        assert_eq!(withdrawals(&mut state, epoch, &config), 10);
    }

    #[test]
    fn deposits_and_withdrawals_expire_after_the_window() {
        let epoch = Instant::now();
        let config = config(1.0, 0);
        let mut state = BudgetState::new(epoch, config.window);
        for _ in 0..3 {
            state.deposit(epoch);
        }
        let later = epoch + Duration::from_secs(5);
        assert_eq!(withdrawals(&mut state, later, &config), 3);
        // At 10 s the bucket of the deposits (0..1 s) has left the window; the withdrawals
        // (5..6 s) still count, so the balance is negative.
        let expired = epoch + Duration::from_secs(10);
        assert_eq!(state.balance(expired, &config), -3.0);
        assert_eq!(state.balance(epoch + Duration::from_secs(16), &config), 0.0);
        // A jump of many windows empties everything.
        state.deposit(epoch + Duration::from_secs(1000));
        assert_eq!(
            state.balance(epoch + Duration::from_secs(1000), &config),
            1.0
        );
    }

    #[test]
    fn a_deposit_counts_until_just_before_the_window_ends() {
        let epoch = Instant::now();
        let config = config(1.0, 0);
        let mut state = BudgetState::new(epoch, config.window);
        state.deposit(epoch);
        let edge = epoch + Duration::from_secs(10) - Duration::from_nanos(1);
        assert_eq!(state.balance(edge, &config), 1.0);
        assert_eq!(state.balance(edge + Duration::from_nanos(1), &config), 0.0);
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
    fn clones_share_one_budget() {
        let budget = RetryBudget::new(config(1.0, 0)).unwrap();
        let clone = budget.clone();
        budget.deposit();
        assert_eq!(clone.available(), 1);
        assert!(clone.try_withdraw());
        assert!(!budget.try_withdraw());
    }
}
