//! [`CoalesceConfig`] and its validation.

use crate::config::{check, ConfigError};

/// Settings of a [`Coalescer`](super::Coalescer).
///
/// With the `serde` feature it deserializes from any format serde supports:
///
/// ```toml
/// max_keys = 10000
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct CoalesceConfig {
    /// How many keys may be in flight at once; a call for a new key beyond it is refused with
    /// [`CapacityFull`](crate::RejectionReason::CapacityFull). Calls joining a key already in
    /// flight are never refused. Default: 10,000.
    pub max_keys: usize,
}

impl Default for CoalesceConfig {
    fn default() -> Self {
        Self { max_keys: 10_000 }
    }
}

impl CoalesceConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least(
            "max_keys",
            u32::try_from(self.max_keys).unwrap_or(u32::MAX),
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigProblem;

    #[test]
    fn default_is_valid_and_zero_keys_is_refused_naming_the_field() {
        CoalesceConfig::default().validate().unwrap();
        let error = CoalesceConfig { max_keys: 0 }.validate().unwrap_err();
        assert_eq!(
            (error.field(), error.problem()),
            ("max_keys", &ConfigProblem::TooSmall { min: 1.0 })
        );
        CoalesceConfig {
            max_keys: usize::MAX,
        }
        .validate()
        .unwrap();
    }
}
