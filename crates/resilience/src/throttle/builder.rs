//! [`ThrottleBuilder`]: the front door to a configured throttle.

use std::time::Duration;

use super::{AdaptiveThrottle, ThrottleConfig};
use crate::config::check;
use crate::ConfigError;

/// Builds an [`AdaptiveThrottle`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::throttle::AdaptiveThrottle;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let throttle = AdaptiveThrottle::builder("search-backend")
///     .window(Duration::from_secs(60))
///     .k(1.5)
///     .min_requests(50)
///     .max_rejection_probability(0.8)
///     .build()?;
/// assert_eq!(throttle.config().k, 1.5);
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Debug)]
pub struct ThrottleBuilder {
    name: String,
    config: ThrottleConfig,
}

impl ThrottleBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: ThrottleConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ThrottleConfig) -> Self {
        self.config = config;
        self
    }

    /// How far back requests and accepts are counted (2 minutes by default).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// The multiplier of accepts (2 by default; at least 1, lower is more aggressive).
    pub fn k(mut self, k: f64) -> Self {
        self.config.k = k;
        self
    }

    /// Requests the window must have seen before anything is throttled (20 by default).
    pub fn min_requests(mut self, min_requests: u64) -> Self {
        self.config.min_requests = min_requests;
        self
    }

    /// The most the rejection probability can reach, below 1 (0.9 by default).
    pub fn max_rejection_probability(mut self, max: f64) -> Self {
        self.config.max_rejection_probability = max;
        self
    }

    /// The probability becomes `p^(1 / aggression)` (1 by default).
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.config.aggression = aggression;
        self
    }

    /// Seeds the generator drawing against the probability (random by default).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Validates the name and configuration and builds the throttle.
    pub fn build(self) -> Result<AdaptiveThrottle, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(AdaptiveThrottle::new_validated(&self.name, self.config))
    }
}
