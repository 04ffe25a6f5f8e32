//! [`BulkheadBuilder`]: the front door to a configured bulkhead.

use std::time::Duration;

use super::{Bulkhead, BulkheadConfig};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`Bulkhead`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::bulkhead::Bulkhead;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let bulkhead = Bulkhead::builder("reports")
///     .max_concurrent(4)
///     .max_waiting(16)
///     .wait_timeout(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(bulkhead.available_slots(), 4);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BulkheadBuilder {
    name: String,
    config: BulkheadConfig,
}

impl BulkheadBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: BulkheadConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: BulkheadConfig) -> Self {
        self.config = config;
        self
    }

    /// Calls that may run at the same time (10 by default).
    pub fn max_concurrent(mut self, max: u32) -> Self {
        self.config.max_concurrent = max;
        self
    }

    /// Calls that may wait for a slot, in arrival order (0 by default: no queue).
    pub fn max_waiting(mut self, max: u32) -> Self {
        self.config.max_waiting = max;
        self
    }

    /// How long a queued call waits for a slot before it is rejected (unbounded by default).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = Some(timeout);
        self
    }

    /// Validates the name and configuration and builds the bulkhead.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(Bulkhead::new_validated(&self.name, self.config))
    }
}
