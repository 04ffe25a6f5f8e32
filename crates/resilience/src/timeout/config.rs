//! [`TimeoutConfig`] and its validation.

use std::time::Duration;

use crate::config::{check, ConfigError};

/// Settings of a [`Timeout`](super::Timeout). `Default` gives aioresilience's values
/// (a 30 s limit).
///
/// With the `serde` feature it deserializes from any format serde supports; the limit is
/// written like `"250ms"` or `"30s"`, under `limit` or aioresilience's name `timeout`:
///
/// ```toml
/// limit = "2s"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct TimeoutConfig {
    /// How long each call may run before it is cancelled. Default: 30 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde", alias = "timeout"))]
    pub limit: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            limit: Duration::from_secs(30),
        }
    }
}

impl TimeoutConfig {
    /// A config with this limit.
    pub fn with_limit(limit: Duration) -> Self {
        Self { limit }
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // At most `MAX_DURATION`, which is also what the handle's 64-bit nanosecond counter
        // holds, so a limit reads back exactly as it was set.
        check::positive("limit", self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigProblem;

    #[test]
    fn default_is_the_seeds_and_valid() {
        let config = TimeoutConfig::default();
        assert_eq!(config.limit, Duration::from_secs(30));
        config.validate().unwrap();
    }

    #[test]
    fn zero_and_absurd_limits_are_rejected_naming_the_field() {
        let zero = TimeoutConfig::with_limit(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert_eq!(
            (zero.field(), zero.problem()),
            ("limit", &ConfigProblem::NotPositive)
        );
        assert_eq!(zero.to_string(), "limit must be positive");
        let huge = TimeoutConfig::with_limit(Duration::MAX)
            .validate()
            .unwrap_err();
        assert_eq!(huge.field(), "limit");
        assert!(matches!(huge.problem(), ConfigProblem::TooLarge { .. }));
        TimeoutConfig::with_limit(crate::MAX_DURATION)
            .validate()
            .unwrap();
        TimeoutConfig::with_limit(Duration::from_nanos(1))
            .validate()
            .unwrap();
    }
}
