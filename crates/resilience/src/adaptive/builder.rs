//! [`AdaptiveLimiterBuilder`]: the front door to a configured limiter.

use std::time::Duration;

use super::{
    AdaptiveConfig, AdaptiveLimiter, AimdConfig, AlgorithmConfig, Gradient2Config, LimitAlgorithm,
    VegasConfig,
};
use crate::config::check;
use crate::ConfigError;

/// Builds an [`AdaptiveLimiter`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::adaptive::{AdaptiveLimiter, VegasConfig};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let limiter = AdaptiveLimiter::builder("search")
///     .vegas(VegasConfig { max_limit: 200, ..VegasConfig::default() })
///     .wait_timeout(Duration::from_millis(20))
///     .build()?;
/// assert_eq!(limiter.limit(), 20);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct AdaptiveLimiterBuilder {
    name: String,
    config: AdaptiveConfig,
}

impl AdaptiveLimiterBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: AdaptiveConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: AdaptiveConfig) -> Self {
        self.config = config;
        self
    }

    /// Moves the limit with AIMD, aioresilience's algorithm (the default).
    pub fn aimd(mut self, config: AimdConfig) -> Self {
        self.config.algorithm = AlgorithmConfig::Aimd(config);
        self
    }

    /// Moves the limit with Vegas.
    pub fn vegas(mut self, config: VegasConfig) -> Self {
        self.config.algorithm = AlgorithmConfig::Vegas(config);
        self
    }

    /// Moves the limit with Gradient2.
    pub fn gradient2(mut self, config: Gradient2Config) -> Self {
        self.config.algorithm = AlgorithmConfig::Gradient2(config);
        self
    }

    /// Moves the limit with a custom algorithm made by `factory`.
    pub fn custom_algorithm<A, F>(mut self, factory: F) -> Self
    where
        A: LimitAlgorithm,
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.config.algorithm = AlgorithmConfig::custom(factory);
        self
    }

    /// How long `call` waits for a slot at the limit (zero, the default: not at all).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = timeout;
        self
    }

    /// Validates the name and configuration and builds the limiter.
    pub fn build(self) -> Result<AdaptiveLimiter, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(AdaptiveLimiter::new(&self.name, self.config))
    }
}
