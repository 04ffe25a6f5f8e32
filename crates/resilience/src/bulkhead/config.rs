//! [`BulkheadConfig`] and its validation.

use std::time::Duration;

use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`Bulkhead`](super::Bulkhead). `Default` gives aioresilience's values
/// (stated on each field).
///
/// With the `serde` feature it deserializes from any format serde supports; the wait timeout
/// is written like `"250ms"` or `"5s"`, under `wait_timeout` or aioresilience's name `timeout`:
///
/// ```toml
/// max_concurrent = 20
/// max_waiting = 50
/// wait_timeout = "2s"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct BulkheadConfig {
    /// Calls that may run at the same time. Default: 10.
    pub max_concurrent: u32,
    /// Calls that may wait, in arrival order, for a slot when all are taken; 0 means no queue,
    /// so a call that finds every slot taken is rejected at once. Default: 0.
    pub max_waiting: u32,
    /// How long a queued call waits for a slot before it is rejected; `None` waits for as
    /// long as it takes (the caller can still drop the future). This bounds the wait only,
    /// never the call: put a timeout outside the bulkhead for that. Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde", alias = "timeout"))]
    pub wait_timeout: Option<Duration>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 10,
            max_waiting: 0,
            wait_timeout: None,
        }
    }
}

/// The most slots (and waiters) a bulkhead may have: a power of two well inside the 32-bit
/// counts of its slot word, on every platform.
const MAX_SLOTS: u32 = 1 << 28;

impl BulkheadConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least("max_concurrent", self.max_concurrent, 1)?;
        at_most("max_concurrent", self.max_concurrent, MAX_SLOTS)?;
        at_most("max_waiting", self.max_waiting, MAX_SLOTS)?;
        if let Some(wait) = self.wait_timeout {
            // At most `MAX_DURATION`, which is also what the handle's 64-bit nanosecond
            // word holds.
            check::positive("wait_timeout", wait)?;
        }
        Ok(())
    }
}

fn at_most(field: &'static str, value: u32, max: u32) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::new(
            field,
            ConfigProblem::TooLarge { max: max.into() },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let config = BulkheadConfig::default();
        assert_eq!(
            (
                config.max_concurrent,
                config.max_waiting,
                config.wait_timeout
            ),
            (10, 0, None)
        );
        config.validate().unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = BulkheadConfig::default;
        let cases = [
            (
                BulkheadConfig {
                    max_concurrent: 0,
                    ..base()
                },
                "max_concurrent",
                "max_concurrent must be at least 1",
            ),
            (
                BulkheadConfig {
                    max_concurrent: MAX_SLOTS + 1,
                    ..base()
                },
                "max_concurrent",
                "max_concurrent must be at most 268435456",
            ),
            (
                BulkheadConfig {
                    max_waiting: MAX_SLOTS + 1,
                    ..base()
                },
                "max_waiting",
                "max_waiting must be at most 268435456",
            ),
            (
                BulkheadConfig {
                    wait_timeout: Some(Duration::ZERO),
                    ..base()
                },
                "wait_timeout",
                "wait_timeout must be positive",
            ),
            (
                BulkheadConfig {
                    wait_timeout: Some(Duration::MAX),
                    ..base()
                },
                "wait_timeout",
                "wait_timeout must be at most 18446744073.709553",
            ),
        ];
        for (config, field, message) in cases {
            let error = config.validate().unwrap_err();
            assert_eq!(
                (error.field(), error.to_string().as_str()),
                (field, message)
            );
        }
        BulkheadConfig {
            max_concurrent: MAX_SLOTS,
            max_waiting: MAX_SLOTS,
            wait_timeout: Some(Duration::from_nanos(1)),
        }
        .validate()
        .unwrap();
    }
}
