//! [`BackpressureBuilder`]: the front door to a configured controller.

use std::time::Duration;

use super::{Backpressure, BackpressureConfig};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`Backpressure`] controller; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::backpressure::Backpressure;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let backpressure = Backpressure::builder("ingest")
///     .max_pending(100)
///     .water_marks(80, 20)
///     .wait_timeout(Duration::from_secs(1))
///     .build()?;
/// assert!(!backpressure.should_apply_backpressure());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BackpressureBuilder {
    name: String,
    config: BackpressureConfig,
}

impl BackpressureBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: BackpressureConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: BackpressureConfig) -> Self {
        self.config = config;
        self
    }

    /// The most items pending or waiting (1000 by default).
    pub fn max_pending(mut self, max: u32) -> Self {
        self.config.max_pending = max;
        self
    }

    /// Backpressure turns on at `high` pending items (800) and off at `low` (200).
    pub fn water_marks(mut self, high: u32, low: u32) -> Self {
        self.config.high_water_mark = high;
        self.config.low_water_mark = low;
        self
    }

    /// The high water mark alone.
    pub fn high_water_mark(mut self, high: u32) -> Self {
        self.config.high_water_mark = high;
        self
    }

    /// The low water mark alone.
    pub fn low_water_mark(mut self, low: u32) -> Self {
        self.config.low_water_mark = low;
        self
    }

    /// How long `acquire` waits while backpressure is on (5 s by default; zero never waits).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = timeout;
        self
    }

    /// Validates the name and configuration and builds the controller.
    pub fn build(self) -> Result<Backpressure, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(Backpressure::new_validated(&self.name, self.config))
    }
}
