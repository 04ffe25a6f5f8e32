//! [`BackpressureConfig`] and its validation.

use std::time::Duration;

use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`Backpressure`](super::Backpressure) controller. `Default` gives
/// aioresilience's values (stated on each field).
///
/// With the `serde` feature it deserializes from any format serde supports; the wait timeout
/// is written like `"250ms"` or `"5s"`, under `wait_timeout` or aioresilience's name `timeout`:
///
/// ```toml
/// max_pending = 100
/// high_water_mark = 80
/// low_water_mark = 20
/// wait_timeout = "1s"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct BackpressureConfig {
    /// The most work that may be in the system: items admitted and not yet done plus
    /// producers waiting to be admitted. Past it, a producer is rejected at once instead of
    /// waiting. Default: 1000.
    pub max_pending: u32,
    /// Backpressure turns on when this many items are pending: from then on producers wait.
    /// At least 1, at most `max_pending`. Default: 800.
    pub high_water_mark: u32,
    /// Backpressure turns off when pending items fall to this many; waiting producers are
    /// then admitted in arrival order while pending stays below the high water mark. At most
    /// `high_water_mark`. Default: 200.
    pub low_water_mark: u32,
    /// How long [`acquire`](super::Backpressure::acquire) (and so `call`, `execute` and the
    /// tower layer) waits while backpressure is on before it gives up; zero never waits.
    /// aioresilience has this default inside `acquire(timeout=None)`. Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde", alias = "timeout"))]
    pub wait_timeout: Duration,
}

impl Default for BackpressureConfig {
    fn default() -> Self {
        Self {
            max_pending: 1000,
            high_water_mark: 800,
            low_water_mark: 200,
            wait_timeout: Duration::from_secs(5),
        }
    }
}

impl BackpressureConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least("max_pending", self.max_pending, 1)?;
        check::at_least("high_water_mark", self.high_water_mark, 1)?;
        not_above(
            "high_water_mark",
            self.high_water_mark,
            "max_pending",
            self.max_pending,
        )?;
        not_above(
            "low_water_mark",
            self.low_water_mark,
            "high_water_mark",
            self.high_water_mark,
        )?;
        check::duration("wait_timeout", self.wait_timeout)
    }
}

fn not_above(
    field: &'static str,
    value: u32,
    other: &'static str,
    limit: u32,
) -> Result<(), ConfigError> {
    if value > limit {
        return Err(ConfigError::new(
            field,
            ConfigProblem::GreaterThan { other },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let config = BackpressureConfig::default();
        assert_eq!(
            (
                config.max_pending,
                config.high_water_mark,
                config.low_water_mark
            ),
            (1000, 800, 200)
        );
        assert_eq!(config.wait_timeout, Duration::from_secs(5));
        config.validate().unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        let marks = |max_pending, high_water_mark, low_water_mark| BackpressureConfig {
            max_pending,
            high_water_mark,
            low_water_mark,
            ..BackpressureConfig::default()
        };
        let cases = [
            (marks(0, 0, 0), "max_pending must be at least 1"),
            (marks(10, 0, 0), "high_water_mark must be at least 1"),
            (
                marks(10, 11, 0),
                "high_water_mark must not be greater than max_pending",
            ),
            (
                marks(10, 5, 6),
                "low_water_mark must not be greater than high_water_mark",
            ),
            (
                BackpressureConfig {
                    wait_timeout: Duration::MAX,
                    ..BackpressureConfig::default()
                },
                "wait_timeout must be at most 18446744073.709553",
            ),
        ];
        for (config, message) in cases {
            let error = config.validate().unwrap_err();
            assert_eq!(error.to_string(), message);
            assert!(message.starts_with(error.field()));
        }
        // The bounds themselves are accepted: low = high = max, a zero low mark, no wait.
        marks(1, 1, 1).validate().unwrap();
        marks(10, 10, 0).validate().unwrap();
        BackpressureConfig {
            wait_timeout: Duration::ZERO,
            ..BackpressureConfig::default()
        }
        .validate()
        .unwrap();
    }
}
