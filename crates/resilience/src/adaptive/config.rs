//! [`AdaptiveConfig`]: which algorithm, with which settings, and how long `acquire` waits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Aimd, AimdConfig, Gradient2, Gradient2Config, LimitAlgorithm, Vegas, VegasConfig};
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of an [`AdaptiveLimiter`](super::AdaptiveLimiter). `Default` is aioresilience's:
/// AIMD with its defaults, and no waiting (`try_acquire` semantics).
///
/// With the `serde` feature it deserializes from any format serde supports:
///
/// ```toml
/// wait_timeout = "50ms"
/// algorithm = { type = "vegas", max_limit = 500 }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct AdaptiveConfig {
    /// How the limit moves. Default: AIMD with [`AimdConfig::default`].
    pub algorithm: AlgorithmConfig,
    /// How long [`call`](super::AdaptiveLimiter::call) and the
    /// [`Stage`](crate::stage::Stage) impl wait for a slot at the limit; zero
    /// (the default) rejects at once.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub wait_timeout: Duration,
}

impl AdaptiveConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.algorithm.validate()?;
        check::duration("wait_timeout", self.wait_timeout)
    }
}

/// Which [`LimitAlgorithm`] moves the limit.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum AlgorithmConfig {
    /// Success ratios per window: [`Aimd`] (aioresilience's).
    Aimd(AimdConfig),
    /// Latency against the no-load latency: [`Vegas`].
    Vegas(VegasConfig),
    /// Latency against its long-term average: [`Gradient2`].
    Gradient2(Gradient2Config),
    /// A user-defined algorithm, made by a factory.
    #[cfg_attr(feature = "serde", serde(skip))]
    Custom(CustomAlgorithm),
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        Self::Aimd(AimdConfig::default())
    }
}

impl AlgorithmConfig {
    /// A custom algorithm made by `factory` (called when the limiter is built and again when
    /// its config is replaced).
    pub fn custom<A, F>(factory: F) -> Self
    where
        A: LimitAlgorithm,
        F: Fn() -> A + Send + Sync + 'static,
    {
        Self::Custom(CustomAlgorithm(Arc::new(move || Box::new(factory()))))
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Aimd(config) => config.validate(),
            Self::Vegas(config) => config.validate(),
            Self::Gradient2(config) => config.validate(),
            Self::Custom(_) => Ok(()),
        }
    }

    /// A fresh algorithm of this configuration. Call [`validate`](Self::validate) first.
    pub fn build(&self) -> Box<dyn LimitAlgorithm> {
        match self {
            Self::Aimd(config) => Box::new(Aimd::new(config.clone())),
            Self::Vegas(config) => Box::new(Vegas::new(config.clone())),
            Self::Gradient2(config) => Box::new(Gradient2::new(config.clone())),
            Self::Custom(custom) => (custom.0)(),
        }
    }
}

/// A factory of user-defined algorithms; two are equal only if they are the same factory.
#[derive(Clone)]
pub struct CustomAlgorithm(Arc<dyn Fn() -> Box<dyn LimitAlgorithm> + Send + Sync>);

impl PartialEq for CustomAlgorithm {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for CustomAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomAlgorithm")
    }
}

/// The limit rules, shared by every algorithm: `1 <= min <= initial <= max`.
pub(crate) fn check_limits(initial: u32, min: u32, max: u32) -> Result<(), ConfigError> {
    check::at_least("min_limit", min, 1)?;
    if min > max {
        return Err(ConfigError::new(
            "min_limit",
            ConfigProblem::GreaterThan { other: "max_limit" },
        ));
    }
    if !(min..=max).contains(&initial) {
        return Err(ConfigError::new(
            "initial_limit",
            ConfigProblem::OutOfRange {
                min: min.into(),
                max: max.into(),
            },
        ));
    }
    Ok(())
}

/// A smoothing factor in `(0, 1]`.
pub(crate) fn check_smoothing(value: f64) -> Result<(), ConfigError> {
    check::ratio("smoothing", value)?;
    if value == 0.0 {
        return Err(ConfigError::new("smoothing", ConfigProblem::NotPositive));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_seeds_aimd_without_waiting() {
        let config = AdaptiveConfig::default();
        assert_eq!(
            config.algorithm,
            AlgorithmConfig::Aimd(AimdConfig::default())
        );
        assert_eq!(config.wait_timeout, Duration::ZERO);
        config.validate().unwrap();
        assert_eq!(config.algorithm.build().limit(), 100);
    }

    #[test]
    fn limits_are_checked_in_the_seeds_order() {
        let field = |initial, min, max| check_limits(initial, min, max).unwrap_err().field();
        assert_eq!(field(5, 0, 10), "min_limit");
        assert_eq!(field(5, 6, 5), "min_limit");
        assert_eq!(field(4, 5, 10), "initial_limit");
        assert_eq!(field(11, 5, 10), "initial_limit");
        check_limits(1, 1, 1).unwrap();
        assert_eq!(check_smoothing(0.0).unwrap_err().field(), "smoothing");
        assert_eq!(check_smoothing(1.5).unwrap_err().field(), "smoothing");
    }

    #[test]
    fn custom_algorithms_compare_by_factory() {
        let custom = AlgorithmConfig::custom(|| Aimd::new(AimdConfig::default()));
        assert_eq!(custom, custom.clone());
        assert_ne!(
            custom,
            AlgorithmConfig::custom(|| Aimd::new(AimdConfig::default()))
        );
        assert_eq!(custom.build().name(), "aimd");
    }
}
