//! [`HedgeBuilder`]: the front door to a configured hedge.

use std::time::Duration;

use super::{Hedge, HedgeConfig, HedgeDelay};
use crate::config::check;
use crate::retry::{BudgetConfig, RetryBudget};
use crate::ConfigError;

/// Builds a [`Hedge`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::hedge::Hedge;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let hedge = Hedge::builder("search")
///     .max_hedged_attempts(2)
///     .delay(Duration::from_millis(20))
///     .build()?;
/// # let _ = hedge;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct HedgeBuilder {
    name: String,
    config: HedgeConfig,
    budget: Option<RetryBudget>,
}

impl HedgeBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: HedgeConfig::default(),
            budget: None,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: HedgeConfig) -> Self {
        self.config = config;
        self.budget = None;
        self
    }

    /// Extra attempts at most, besides the first (1; at most 16).
    pub fn max_hedged_attempts(mut self, attempts: u32) -> Self {
        self.config.max_hedged_attempts = attempts;
        self
    }

    /// Starts the next attempt after `delay` without an acceptable answer (2 s). A zero delay
    /// is [`parallel`](Self::parallel).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.config.delay = if delay.is_zero() {
            HedgeDelay::Parallel
        } else {
            HedgeDelay::Latency(delay)
        };
        self
    }

    /// Starts every attempt at once.
    pub fn parallel(mut self) -> Self {
        self.config.delay = HedgeDelay::Parallel;
        self
    }

    /// Starts an attempt only when the previous one failed.
    pub fn fallback(mut self) -> Self {
        self.config.delay = HedgeDelay::Fallback;
        self
    }

    /// Starts the next attempt after `percentile` (say 95.0) of recent latencies; see
    /// [`HedgeDelay::percentile`] for its other settings, or set a whole
    /// [`HedgeDelay::Percentile`] with [`delay_mode`](Self::delay_mode).
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.config.delay = HedgeDelay::percentile(percentile);
        self
    }

    /// Sets the delay mode.
    pub fn delay_mode(mut self, delay: HedgeDelay) -> Self {
        self.config.delay = delay;
        self
    }

    /// Limits extra attempts with a budget of its own, shared by this hedge's clones.
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.config.budget = Some(budget);
        self.budget = None;
        self
    }

    /// Limits extra attempts with an existing budget, shared with every hedge (or retry)
    /// given it: one budget can bound the extra load of hedging and retrying together.
    pub fn shared_budget(mut self, budget: RetryBudget) -> Self {
        self.config.budget = Some(budget.config().clone());
        self.budget = Some(budget);
        self
    }

    /// Sends every extra attempt the delay asks for, with no budget.
    pub fn no_budget(mut self) -> Self {
        self.config.budget = None;
        self.budget = None;
        self
    }

    /// Validates the name and configuration and builds the hedge.
    pub fn build(self) -> Result<Hedge, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        let budget = RetryBudget::for_builder(self.budget, self.config.budget.as_ref())?;
        Ok(Hedge::new(&self.name, self.config, budget))
    }
}
