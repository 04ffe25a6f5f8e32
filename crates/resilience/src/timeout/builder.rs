//! [`TimeoutBuilder`]: the front door to a configured timeout.

use std::time::Duration;

use super::{Timeout, TimeoutConfig};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`Timeout`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::timeout::Timeout;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let timeout = Timeout::builder("inventory").limit(Duration::from_millis(250)).build()?;
/// assert_eq!(timeout.limit(), Duration::from_millis(250));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TimeoutBuilder {
    name: String,
    config: TimeoutConfig,
}

impl TimeoutBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: TimeoutConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: TimeoutConfig) -> Self {
        self.config = config;
        self
    }

    /// How long each call may run (aioresilience's `timeout`, 30 s by default).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.config.limit = limit;
        self
    }

    /// Validates the name and configuration and builds the timeout.
    pub fn build(self) -> Result<Timeout, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(Timeout::new_validated(&self.name, self.config))
    }
}
