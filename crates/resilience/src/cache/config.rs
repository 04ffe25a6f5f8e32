//! [`CacheConfig`]: bounds and lifetimes of cached entries.

use std::time::Duration;

use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`Cache`](super::Cache). `Default`: 10,000 entries, each fresh for one
/// minute, no time-to-idle, no stale-if-error.
///
/// With the `serde` feature:
///
/// ```toml
/// max_entries = 50_000
/// ttl = "5m"
/// time_to_idle = "1m"
/// stale_if_error = "1h"
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct CacheConfig {
    /// The most entries held, or with a weigher
    /// ([`CacheBuilder::max_weight`](super::CacheBuilder::max_weight)) the most total weight. The
    /// least likely to be used again are evicted first. Default: 10,000.
    pub max_entries: u64,
    /// How long an entry is fresh after it was stored. `None`: until evicted. Default: 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub ttl: Option<Duration>,
    /// How long an entry stays fresh without being read. `None`: no idle limit. Default:
    /// none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub time_to_idle: Option<Duration>,
    /// How long after it stopped being fresh an entry may still answer a call whose
    /// operation failed. `None`: a failure is returned as is. Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub stale_if_error: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            ttl: Some(Duration::from_secs(60)),
            time_to_idle: None,
            stale_if_error: None,
        }
    }
}

impl CacheConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries == 0 {
            return Err(ConfigError::new(
                "max_entries",
                ConfigProblem::TooSmall { min: 1.0 },
            ));
        }
        if let Some(ttl) = self.ttl {
            check::positive("ttl", ttl)?;
        }
        if let Some(idle) = self.time_to_idle {
            check::positive("time_to_idle", idle)?;
        }
        if let Some(stale) = self.stale_if_error {
            check::positive("stale_if_error", stale)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_named() {
        let field = |config: CacheConfig| config.validate().unwrap_err().field();
        let base = CacheConfig::default;
        assert_eq!(
            field(CacheConfig {
                max_entries: 0,
                ..base()
            }),
            "max_entries"
        );
        assert_eq!(
            field(CacheConfig {
                ttl: Some(Duration::ZERO),
                ..base()
            }),
            "ttl"
        );
        let zero = Some(Duration::ZERO);
        assert_eq!(
            field(CacheConfig {
                time_to_idle: zero,
                ..base()
            }),
            "time_to_idle"
        );
        assert_eq!(
            field(CacheConfig {
                stale_if_error: zero,
                ..base()
            }),
            "stale_if_error"
        );
        base().validate().unwrap();
    }
}
