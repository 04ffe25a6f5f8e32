//! [`LoadShedderConfig`] and its validation.

use std::time::Duration;

use super::Priority;
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`LoadShedder`](super::LoadShedder). `Default` gives aioresilience's
/// `max_requests` and `max_queue_depth`, plus priority thresholds and a wait timeout of its own
/// (the values are on each field).
///
/// With the `serde` feature it deserializes from any format serde supports; durations are
/// written like `"500ms"` and unknown fields are rejected:
///
/// ```toml
/// max_requests = 200
/// max_queue_depth = 50
/// wait_timeout = "250ms"
/// low_threshold = 0.5
/// system = { cpu_threshold = 0.9, check_interval = "2s" }   # feature "system"
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct LoadShedderConfig {
    /// The hard cap: requests running at once. At least 1. Default: 1000.
    pub max_requests: u32,
    /// Requests that may wait for a slot once the hard cap is reached; 0 means no queue.
    /// Default: 500.
    pub max_queue_depth: u32,
    /// The longest a queued request waits for a slot before it is shed with
    /// [`WaitTimeout`](crate::RejectionReason::WaitTimeout). Positive. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub wait_timeout: Duration,
    /// [`Priority::Low`] requests are shed while utilisation (active / `max_requests`) is
    /// above this ratio. Default: 0.60, where the load level becomes elevated.
    pub low_threshold: f64,
    /// [`Priority::Normal`] requests are shed above this ratio. Default: 0.75 (load level high).
    pub normal_threshold: f64,
    /// [`Priority::High`] requests are shed above this ratio. Default: 0.90 (load level
    /// critical). [`Priority::Critical`] has no threshold: only the hard cap holds it back.
    pub high_threshold: f64,
    /// CPU and memory shedding, sampled in the background (feature `system`). Default: off.
    #[cfg(feature = "system")]
    #[cfg_attr(docsrs, doc(cfg(feature = "system")))]
    pub system: Option<super::SystemConfig>,
}

impl Default for LoadShedderConfig {
    fn default() -> Self {
        Self {
            max_requests: 1000,
            max_queue_depth: 500,
            wait_timeout: Duration::from_secs(1),
            low_threshold: 0.60,
            normal_threshold: 0.75,
            high_threshold: 0.90,
            #[cfg(feature = "system")]
            system: None,
        }
    }
}

impl LoadShedderConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least("max_requests", self.max_requests, 1)?;
        check::positive("wait_timeout", self.wait_timeout)?;
        let thresholds = [
            ("low_threshold", self.low_threshold),
            ("normal_threshold", self.normal_threshold),
            ("high_threshold", self.high_threshold),
        ];
        for (field, value) in thresholds {
            // `ratio` also rejects NaN: `contains` is false for it.
            check::ratio(field, value)?;
        }
        for pair in thresholds.windows(2) {
            let [(lower, low), (higher, high)] = [pair[0], pair[1]];
            if low > high {
                return Err(ConfigError::new(
                    lower,
                    ConfigProblem::GreaterThan { other: higher },
                ));
            }
        }
        #[cfg(feature = "system")]
        if let Some(system) = &self.system {
            system.validate()?;
        }
        Ok(())
    }

    /// The utilisation above which `priority` is shed; `None` for critical (hard cap only).
    pub fn threshold(&self, priority: Priority) -> Option<f64> {
        match priority {
            Priority::Low => Some(self.low_threshold),
            Priority::Normal => Some(self.normal_threshold),
            Priority::High => Some(self.high_threshold),
            Priority::Critical => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let config = LoadShedderConfig::default();
        assert_eq!((config.max_requests, config.max_queue_depth), (1000, 500));
        assert_eq!(config.threshold(Priority::Low), Some(0.60));
        assert_eq!(config.threshold(Priority::Normal), Some(0.75));
        assert_eq!(config.threshold(Priority::High), Some(0.90));
        assert_eq!(config.threshold(Priority::Critical), None);
        config.validate().unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = LoadShedderConfig::default;
        let cases = [
            (
                LoadShedderConfig {
                    max_requests: 0,
                    ..base()
                },
                "max_requests",
            ),
            (
                LoadShedderConfig {
                    wait_timeout: Duration::ZERO,
                    ..base()
                },
                "wait_timeout",
            ),
            (
                LoadShedderConfig {
                    low_threshold: 1.5,
                    ..base()
                },
                "low_threshold",
            ),
            (
                LoadShedderConfig {
                    normal_threshold: f64::NAN,
                    ..base()
                },
                "normal_threshold",
            ),
            (
                LoadShedderConfig {
                    high_threshold: -0.1,
                    ..base()
                },
                "high_threshold",
            ),
            (
                LoadShedderConfig {
                    low_threshold: 0.8,
                    ..base()
                },
                "low_threshold",
            ),
            (
                LoadShedderConfig {
                    normal_threshold: 0.95,
                    ..base()
                },
                "normal_threshold",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
        let no_queue = LoadShedderConfig {
            max_queue_depth: 0,
            ..base()
        };
        no_queue.validate().unwrap();
    }
}
