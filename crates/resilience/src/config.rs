//! Configuration errors shared by every pattern.
//!
//! Configs are validated once, when a handle is built (`builder().build()` or
//! `from_config`), so a typo in a config file fails loudly at start-up instead of silently
//! disabling protection at run time.

use std::fmt;
use std::time::Duration;

use crate::rate::RateProblem;

/// The longest duration any setting accepts, in every pattern: `u64::MAX` nanoseconds,
/// about 584 years.
///
/// A longer one is refused when the config is validated, with the field named
/// ([`ConfigProblem::TooLarge`], in seconds). Anything near this long means "never" in
/// practice: deadlines computed from such durations saturate at about thirty years from
/// now instead of overflowing the clock, and a backoff that grows without a cap stops
/// growing here.
pub const MAX_DURATION: Duration = Duration::from_nanos(u64::MAX);

/// A configuration value that was rejected, naming the field and the problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    field: &'static str,
    problem: ConfigProblem,
}

/// What was wrong with a configuration field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The value must be at least `min`.
    TooSmall {
        /// The smallest accepted value.
        min: f64,
    },
    /// The value must be at most `max`.
    TooLarge {
        /// The largest accepted value.
        max: f64,
    },
    /// The value must be greater than zero.
    NotPositive,
    /// The value must lie within `min..=max`.
    OutOfRange {
        /// Lower bound, inclusive.
        min: f64,
        /// Upper bound, inclusive.
        max: f64,
    },
    /// The value must not be empty or only whitespace.
    Empty,
    /// The value must not exceed another field's value.
    GreaterThan {
        /// The field it must not exceed.
        other: &'static str,
    },
    /// The value could not be parsed; the string says what was expected.
    Invalid(String),
    /// A rate (a string such as `"10/second"`, or a [`Rate`](crate::Rate) built in code) is
    /// invalid; the [`RateProblem`] says how.
    InvalidRate(RateProblem),
}

impl ConfigError {
    /// A problem with `field`.
    pub fn new(field: &'static str, problem: ConfigProblem) -> Self {
        Self { field, problem }
    }

    /// The name of the offending field, as in the config struct.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What was wrong with it.
    pub fn problem(&self) -> &ConfigProblem {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        match &self.problem {
            ConfigProblem::TooSmall { min } => write!(f, "{field} must be at least {min}"),
            ConfigProblem::TooLarge { max } => write!(f, "{field} must be at most {max}"),
            ConfigProblem::NotPositive => write!(f, "{field} must be positive"),
            ConfigProblem::OutOfRange { min, max } => {
                write!(f, "{field} must be between {min} and {max}")
            }
            ConfigProblem::Empty => write!(f, "{field} must be a non-empty string"),
            ConfigProblem::GreaterThan { other } => {
                write!(f, "{field} must not be greater than {other}")
            }
            ConfigProblem::Invalid(expected) => write!(f, "{field} is invalid: {expected}"),
            ConfigProblem::InvalidRate(problem) => write!(f, "{field} {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Small validation helpers so every config states its rules the same way.
pub(crate) mod check {
    use super::{ConfigError, ConfigProblem};
    use std::time::Duration;

    pub(crate) fn at_least(field: &'static str, value: u32, min: u32) -> Result<(), ConfigError> {
        if value < min {
            return Err(ConfigError::new(
                field,
                ConfigProblem::TooSmall { min: min.into() },
            ));
        }
        Ok(())
    }

    /// Greater than zero and at most [`MAX_DURATION`](super::MAX_DURATION).
    pub(crate) fn positive(field: &'static str, value: Duration) -> Result<(), ConfigError> {
        if value.is_zero() {
            return Err(ConfigError::new(field, ConfigProblem::NotPositive));
        }
        duration(field, value)
    }

    /// At most [`MAX_DURATION`](super::MAX_DURATION), the one bound for every duration.
    pub(crate) fn duration(field: &'static str, value: Duration) -> Result<(), ConfigError> {
        if value > super::MAX_DURATION {
            return Err(ConfigError::new(
                field,
                ConfigProblem::TooLarge {
                    max: super::MAX_DURATION.as_secs_f64(),
                },
            ));
        }
        Ok(())
    }

    pub(crate) fn ratio(field: &'static str, value: f64) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&value) {
            return Err(ConfigError::new(
                field,
                ConfigProblem::OutOfRange { min: 0.0, max: 1.0 },
            ));
        }
        Ok(())
    }

    pub(crate) fn name(value: &str) -> Result<(), ConfigError> {
        if value.trim().is_empty() {
            return Err(ConfigError::new("name", ConfigProblem::Empty));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        let error = ConfigError::new("failure_threshold", ConfigProblem::TooSmall { min: 1.0 });
        assert_eq!(error.to_string(), "failure_threshold must be at least 1");
        assert_eq!(error.field(), "failure_threshold");
        let error = ConfigError::new("name", ConfigProblem::Empty);
        assert_eq!(error.to_string(), "name must be a non-empty string");
    }
}
