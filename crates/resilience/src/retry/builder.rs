//! [`RetryBuilder`]: the front door to a configured retry policy.

use std::time::Duration;

use super::{Backoff, BudgetConfig, Jitter, Retry, RetryBudget, RetryConfig};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`Retry`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::retry::{Backoff, Jitter, Retry};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let retry = Retry::builder("inventory")
///     .max_attempts(4)
///     .backoff(Backoff::exponential(Duration::from_millis(200), 2.0))
///     .jitter(Jitter::Full)
///     .max_delay(Duration::from_secs(5))
///     .max_elapsed(Duration::from_secs(20))
///     .build()?;
/// # let _ = retry;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct RetryBuilder {
    name: String,
    config: RetryConfig,
    budget: Option<RetryBudget>,
    seed: Option<u64>,
}

impl RetryBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: RetryConfig::default(),
            budget: None,
            seed: None,
        }
    }

    /// Replaces the whole configuration (for example with a preset such as
    /// [`RetryConfig::network`]).
    pub fn config(mut self, config: RetryConfig) -> Self {
        self.config = config;
        self
    }

    /// Attempts in all, the first call included (3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// How the wait grows (exponential from 1 s, ×2).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Randomness added to each wait (proportional, 10 %).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.config.jitter = jitter;
        self
    }

    /// The longest wait, jitter included (60 s).
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.config.max_delay = max_delay;
        self
    }

    /// No retry starts later than this after the first attempt started (none).
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.config.max_elapsed = Some(limit);
        self
    }

    /// Limits retries with a budget of its own, shared by this policy's clones.
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.config.budget = Some(budget);
        self.budget = None;
        self
    }

    /// Limits retries with an existing budget, shared with every policy given it.
    pub fn shared_budget(mut self, budget: RetryBudget) -> Self {
        self.config.budget = Some(budget.config().clone());
        self.budget = Some(budget);
        self
    }

    /// Whether rejections by an inner circuit breaker, rate limiter or adaptive throttle are
    /// retried (`false`).
    pub fn retry_rejections(mut self, retry: bool) -> Self {
        self.config.retry_rejections = retry;
        self
    }

    /// Whether timeouts of inner patterns are retried (`true`).
    pub fn retry_timeouts(mut self, retry: bool) -> Self {
        self.config.retry_timeouts = retry;
        self
    }

    /// Seeds the jitter generator, so waits are the same on every run (tests). By default the
    /// seed is random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the name and configuration and builds the policy.
    pub fn build(self) -> Result<Retry, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        let budget = RetryBudget::for_builder(self.budget, self.config.budget.as_ref())?;
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..));
        Ok(Retry::new(&self.name, self.config, budget, seed))
    }
}
