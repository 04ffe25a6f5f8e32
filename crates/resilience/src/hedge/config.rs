//! [`HedgeConfig`] and [`HedgeDelay`]: when extra attempts start and how many.

use std::time::Duration;

use crate::config::{check, ConfigError, ConfigProblem};
use crate::retry::BudgetConfig;

/// The most extra attempts a hedge may send per call.
///
/// Every running attempt is polled whenever one of them wakes, so the cost of a wake grows
/// with their number; past a handful, extra attempts add load without adding speed.
pub const MAX_HEDGED_ATTEMPTS: u32 = 16;

/// When the next extra attempt starts, besides "at once after a failure".
///
/// The three modes of Polly's single `delay`, and a fourth that learns the delay:
///
/// * [`Latency`](Self::Latency): after a fixed delay without an acceptable answer;
/// * [`Parallel`](Self::Parallel): every attempt at once (a delay of zero);
/// * [`Fallback`](Self::Fallback): never on time, only after the previous attempt failed (an
///   infinite delay);
/// * [`Percentile`](Self::Percentile): after the given percentile of recent call latencies,
///   measured online with sub-millisecond resolution.
///
/// In every mode, an attempt that fails starts the next one at once, while attempts and
/// budget remain.
///
/// With the `serde` feature:
///
/// ```toml
/// delay = { latency = "50ms" }
/// delay = "parallel"
/// delay = "fallback"
/// delay = { percentile = { percentile = 95.0, min_samples = 100, refresh = "1s" } }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub enum HedgeDelay {
    /// The next attempt starts after this long without an acceptable answer.
    Latency(#[cfg_attr(feature = "serde", serde(with = "humantime_serde"))] Duration),
    /// Every attempt starts at once.
    Parallel,
    /// An attempt starts only when the previous one failed.
    Fallback,
    /// The next attempt starts after this percentile of recent latencies.
    Percentile {
        /// Which percentile, in `(0, 100)`: 95.0 hedges the slowest 5 % of calls.
        percentile: f64,
        /// Below this many measured calls no attempt starts on time (only after failures),
        /// since a percentile of a handful of calls says little.
        min_samples: u32,
        /// How often the percentile is recomputed from the histogram; each time the counts
        /// are halved, so the delay follows the last few periods.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        refresh: Duration,
    },
}

impl HedgeDelay {
    /// After `percentile` of recent latencies, with at least 100 measured calls and a refresh
    /// every second.
    pub fn percentile(percentile: f64) -> Self {
        Self::Percentile {
            percentile,
            min_samples: 100,
            refresh: Duration::from_secs(1),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Latency(delay) => check::duration("delay", delay),
            Self::Parallel | Self::Fallback => Ok(()),
            Self::Percentile {
                percentile,
                min_samples,
                refresh,
            } => {
                if !(percentile > 0.0 && percentile < 100.0) {
                    return Err(ConfigError::new(
                        "delay.percentile",
                        ConfigProblem::OutOfRange {
                            min: 0.0,
                            max: 100.0,
                        },
                    ));
                }
                check::at_least("delay.min_samples", min_samples, 1)?;
                check::positive("delay.refresh", refresh)
            }
        }
    }
}

/// Settings of a [`Hedge`](super::Hedge). `Default` is Polly's hedging defaults (one extra
/// attempt after 2 s) plus a budget of 10 % extra attempts.
///
/// With the `serde` feature it deserializes from any format serde supports; missing fields
/// keep their defaults:
///
/// ```toml
/// max_hedged_attempts = 2
/// delay = { latency = "50ms" }
/// budget = { retry_ratio = 0.1, window = "10s", min_retries_per_second = 10 }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct HedgeConfig {
    /// Extra attempts at most, besides the first, in `1..=16`. Default: 1.
    pub max_hedged_attempts: u32,
    /// When extra attempts start. Default: after 2 s.
    pub delay: HedgeDelay,
    /// Extra attempts as a share of calls: every call deposits `retry_ratio` of an attempt,
    /// every extra attempt withdraws one, so a slow dependency is not flooded. `None` sends
    /// every extra attempt the delay asks for. Default: 10 % over 10 s, at least 10 per
    /// second.
    pub budget: Option<BudgetConfig>,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            max_hedged_attempts: 1,
            delay: HedgeDelay::Latency(Duration::from_secs(2)),
            budget: Some(BudgetConfig {
                retry_ratio: 0.1,
                window: Duration::from_secs(10),
                min_retries_per_second: 10,
            }),
        }
    }
}

impl HedgeConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least("max_hedged_attempts", self.max_hedged_attempts, 1)?;
        if self.max_hedged_attempts > MAX_HEDGED_ATTEMPTS {
            return Err(ConfigError::new(
                "max_hedged_attempts",
                ConfigProblem::TooLarge {
                    max: MAX_HEDGED_ATTEMPTS.into(),
                },
            ));
        }
        self.delay.validate()?;
        if let Some(budget) = &self.budget {
            budget.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = HedgeConfig::default();
        config.validate().unwrap();
        assert_eq!(config.max_hedged_attempts, 1);
        assert_eq!(config.delay, HedgeDelay::Latency(Duration::from_secs(2)));
        HedgeDelay::percentile(99.0).validate().unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        let field = |config: HedgeConfig| config.validate().unwrap_err().field();
        let base = HedgeConfig::default;
        let with_delay = |delay| HedgeConfig { delay, ..base() };
        assert_eq!(
            field(HedgeConfig {
                max_hedged_attempts: 0,
                ..base()
            }),
            "max_hedged_attempts"
        );
        assert_eq!(
            field(HedgeConfig {
                max_hedged_attempts: 17,
                ..base()
            }),
            "max_hedged_attempts"
        );
        for percentile in [0.0, 100.0, f64::NAN, -3.0] {
            assert_eq!(
                field(with_delay(HedgeDelay::percentile(percentile))),
                "delay.percentile"
            );
        }
        let percentile = |min_samples, refresh| HedgeDelay::Percentile {
            percentile: 90.0,
            min_samples,
            refresh,
        };
        assert_eq!(
            field(with_delay(percentile(0, Duration::from_secs(1)))),
            "delay.min_samples"
        );
        assert_eq!(
            field(with_delay(percentile(1, Duration::ZERO))),
            "delay.refresh"
        );
        let budget = BudgetConfig {
            retry_ratio: -1.0,
            ..BudgetConfig::default()
        };
        assert_eq!(
            field(HedgeConfig {
                budget: Some(budget),
                ..base()
            }),
            "budget.retry_ratio"
        );
    }
}
