//! [`FallbackConfig`]: which kinds of error fall back, as plain data.

use std::fmt;

use crate::config::{ConfigError, ConfigProblem};
use crate::Error;

/// The kind of an [`Error`], one per variant, by which a fallback selects what it answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ErrorClass {
    /// [`Error::Inner`]: the operation's own error.
    Inner,
    /// [`Error::Rejected`]: a pattern refused to run the operation (circuit open, ...).
    Rejected,
    /// [`Error::Timeout`]: the operation ran out of time.
    Timeout,
    /// [`Error::RetryExhausted`]: a retry policy gave up.
    RetryExhausted,
    /// [`Error::FallbackFailed`]: an inner fallback failed too.
    FallbackFailed,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: &'static [Self] = &[
        Self::Inner,
        Self::Rejected,
        Self::Timeout,
        Self::RetryExhausted,
        Self::FallbackFailed,
    ];

    /// The class of `error`.
    pub fn of<E>(error: &Error<E>) -> Self {
        match error {
            Error::Inner(_) => Self::Inner,
            Error::Rejected(_) => Self::Rejected,
            Error::Timeout { .. } => Self::Timeout,
            Error::RetryExhausted { .. } => Self::RetryExhausted,
            Error::FallbackFailed { .. } => Self::FallbackFailed,
        }
    }

    /// The class in `snake_case`, as configs spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inner => "inner",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::RetryExhausted => "retry_exhausted",
            Self::FallbackFailed => "fallback_failed",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plain-data settings of a [`Fallback`](super::Fallback): which kinds of error it answers
/// for. `Default` answers for every error, as aioresilience does. The fallbacks themselves are code
/// (values and closures), set on the [builder](super::FallbackBuilder).
///
/// With the `serde` feature it deserializes from any format serde supports:
///
/// ```toml
/// fallback_on = ["rejected", "timeout"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct FallbackConfig {
    /// The kinds of error that fall back; others are returned untouched. Default: all.
    pub fallback_on: Vec<ErrorClass>,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            fallback_on: ErrorClass::ALL.to_vec(),
        }
    }
}

impl FallbackConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fallback_on.is_empty() {
            // A fallback that answers for nothing is a typo, not a setting.
            return Err(ConfigError::new(
                "fallback_on",
                ConfigProblem::Invalid("at least one error class is required".to_owned()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PatternKind, Rejection, RejectionReason};
    use std::time::Duration;

    #[test]
    fn default_selects_every_class_and_is_valid() {
        let config = FallbackConfig::default();
        assert_eq!(config.fallback_on, ErrorClass::ALL);
        config.validate().unwrap();
    }

    #[test]
    fn an_empty_selection_is_rejected_naming_the_field() {
        let error = FallbackConfig {
            fallback_on: vec![],
        }
        .validate()
        .unwrap_err();
        assert_eq!(error.field(), "fallback_on");
        assert_eq!(
            error.to_string(),
            "fallback_on is invalid: at least one error class is required"
        );
    }

    #[test]
    fn every_variant_has_its_class() {
        let rejection = Rejection::new(
            PatternKind::CircuitBreaker,
            "db".into(),
            RejectionReason::CircuitOpen,
            None,
        );
        let errors: [Error<&str>; 5] = [
            Error::Inner("x"),
            Error::Rejected(rejection),
            Error::Timeout {
                elapsed: Duration::ZERO,
                limit: Duration::ZERO,
            },
            Error::RetryExhausted {
                attempts: 3,
                last: None,
            },
            Error::FallbackFailed {
                primary: Box::new(Error::Inner("a")),
                fallback: "b",
            },
        ];
        let classes: Vec<ErrorClass> = errors.iter().map(ErrorClass::of).collect();
        assert_eq!(classes, ErrorClass::ALL);
        let names: Vec<&str> = classes.iter().map(|class| class.as_str()).collect();
        assert_eq!(
            names,
            [
                "inner",
                "rejected",
                "timeout",
                "retry_exhausted",
                "fallback_failed"
            ]
        );
    }
}
