//! [`RetryConfig`]: aioresilience's settings and presets, plus time and budget limits.

use std::time::Duration;

use super::{Backoff, BudgetConfig, Jitter};
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`Retry`](super::Retry). `Default` is aioresilience's `RetryPolicies.default()`.
///
/// With the `serde` feature it deserializes from any format serde supports; missing fields
/// keep their defaults and durations are written like `"30s"` or `"1m 30s"`:
///
/// ```toml
/// max_attempts = 4
/// backoff = { type = "exponential", initial_delay = "500ms", multiplier = 2.5 }
/// jitter = { proportional = 0.1 }
/// max_delay = "15s"
/// max_elapsed = "1m"
/// budget = { retry_ratio = 0.2, window = "10s", min_retries_per_second = 10 }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RetryConfig {
    /// Attempts in all, the first call included; 1 never retries. Default: 3.
    pub max_attempts: u32,
    /// How the wait grows. Default: exponential from 1 s, multiplier 2.
    pub backoff: Backoff,
    /// Randomness added to each wait. Default: proportional, 10 %.
    pub jitter: Jitter,
    /// No wait is longer, jitter included; a
    /// `retry_after` from a rejection may be. Default: 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_delay: Duration,
    /// No retry starts later than this after the first attempt started; an attempt already
    /// running is not cut short (that is a timeout's job). Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_elapsed: Option<Duration>,
    /// A retry budget shared by the policy's clones. Default: none.
    pub budget: Option<BudgetConfig>,
    /// Whether rejections by an inner circuit breaker, rate limiter or adaptive throttle are
    /// retried. Default: `false`, since retrying an open circuit only adds load where the
    /// breaker sheds it (and a throttled request, where the throttle sheds it).
    /// Other rejections (a full bulkhead, say) are retried, after at least their
    /// `retry_after`.
    pub retry_rejections: bool,
    /// Whether timeouts of inner patterns are retried. Default: `true`.
    pub retry_timeouts: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_secs(1), 2.0),
            jitter: Jitter::Proportional(0.1),
            max_delay: Duration::from_secs(60),
            max_elapsed: None,
            budget: None,
            retry_rejections: false,
            retry_timeouts: true,
        }
    }
}

impl RetryConfig {
    /// Many quick retries: 5 attempts, exponential from 100 ms ×2, at most 10 s, 10 % jitter.
    pub fn aggressive() -> Self {
        Self {
            max_attempts: 5,
            backoff: Backoff::exponential(Duration::from_millis(100), 2.0),
            max_delay: Duration::from_secs(10),
            ..Self::default()
        }
    }

    /// Few slow retries: 3 attempts, linear from 2 s adding 2 s, at most 30 s, 30 % jitter.
    pub fn conservative() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::linear(Duration::from_secs(2), Duration::from_secs(2)),
            jitter: Jitter::Proportional(0.3),
            max_delay: Duration::from_secs(30),
            ..Self::default()
        }
    }

    /// For network calls: 4 attempts, exponential from 500 ms ×2.5, at most 15 s, 10 % jitter.
    ///
    /// aioresilience's `RetryPolicies.network()` also limits it to connection, timeout and OS
    /// errors; here the error type is the caller's, so say which errors are transient with
    /// [`RetryRules::retry_if`](super::RetryRules::retry_if). Inner timeouts are retried.
    pub fn network() -> Self {
        Self {
            max_attempts: 4,
            backoff: Backoff::exponential(Duration::from_millis(500), 2.5),
            max_delay: Duration::from_secs(15),
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least("max_attempts", self.max_attempts, 1)?;
        check::duration("max_delay", self.max_delay)?;
        validate_backoff(&self.backoff, self.max_delay)?;
        if let Jitter::Proportional(factor) = self.jitter {
            check::ratio("jitter", factor)?;
        }
        if let Some(limit) = self.max_elapsed {
            check::positive("max_elapsed", limit)?;
        }
        if let Some(budget) = &self.budget {
            budget.validate()?;
        }
        Ok(())
    }
}

/// Checks a strategy against the cap it will be used with.
pub(crate) fn validate_backoff(backoff: &Backoff, max_delay: Duration) -> Result<(), ConfigError> {
    if let Backoff::Exponential { multiplier, .. } = *backoff {
        // Below 1 the waits would shrink; NaN would make every wait zero.
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(ConfigError::new(
                "multiplier",
                ConfigProblem::TooSmall { min: 1.0 },
            ));
        }
    }
    if backoff.initial_delay() > max_delay {
        let field = match backoff {
            Backoff::Constant { .. } => "delay",
            _ => "initial_delay",
        };
        return Err(ConfigError::new(
            field,
            ConfigProblem::GreaterThan { other: "max_delay" },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::backoff::delay;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// The preset's un-jittered waits after attempts 1..max_attempts.
    fn waits(config: &RetryConfig) -> Vec<Duration> {
        (1..config.max_attempts)
            .map(|n| {
                delay(
                    &config.backoff,
                    Jitter::None,
                    config.max_delay,
                    n,
                    ms(0),
                    0.0,
                )
            })
            .collect()
    }

    #[test]
    fn presets_have_the_seeds_numbers() {
        let default = RetryConfig::default();
        assert_eq!(default.max_attempts, 3);
        assert_eq!(default.jitter, Jitter::Proportional(0.1));
        assert_eq!(default.max_delay, Duration::from_secs(60));
        assert_eq!(waits(&default), [ms(1000), ms(2000)]);

        let aggressive = RetryConfig::aggressive();
        assert_eq!(aggressive.max_attempts, 5);
        assert_eq!(aggressive.max_delay, Duration::from_secs(10));
        assert_eq!(waits(&aggressive), [ms(100), ms(200), ms(400), ms(800)]);

        let conservative = RetryConfig::conservative();
        assert_eq!(conservative.max_attempts, 3);
        assert_eq!(conservative.jitter, Jitter::Proportional(0.3));
        assert_eq!(conservative.max_delay, Duration::from_secs(30));
        assert_eq!(waits(&conservative), [ms(2000), ms(4000)]);

        let network = RetryConfig::network();
        assert_eq!(network.max_attempts, 4);
        assert_eq!(network.max_delay, Duration::from_secs(15));
        assert_eq!(waits(&network), [ms(500), ms(1250), ms(3125)]);

        for preset in [default, aggressive, conservative, network] {
            preset.validate().unwrap();
            assert!(!preset.retry_rejections && preset.retry_timeouts);
        }
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = RetryConfig::default;
        let cases: Vec<(RetryConfig, &str)> = vec![
            (
                RetryConfig {
                    max_attempts: 0,
                    ..base()
                },
                "max_attempts",
            ),
            (
                RetryConfig {
                    backoff: Backoff::exponential(ms(100), 0.5),
                    ..base()
                },
                "multiplier",
            ),
            (
                RetryConfig {
                    backoff: Backoff::exponential(ms(100), f64::INFINITY),
                    ..base()
                },
                "multiplier",
            ),
            (
                RetryConfig {
                    backoff: Backoff::exponential(ms(5000), 2.0),
                    max_delay: ms(1000),
                    ..base()
                },
                "initial_delay",
            ),
            (
                RetryConfig {
                    backoff: Backoff::constant(ms(5000)),
                    max_delay: ms(1000),
                    ..base()
                },
                "delay",
            ),
            (
                RetryConfig {
                    jitter: Jitter::Proportional(1.5),
                    ..base()
                },
                "jitter",
            ),
            (
                RetryConfig {
                    jitter: Jitter::Proportional(-0.1),
                    ..base()
                },
                "jitter",
            ),
            (
                RetryConfig {
                    max_elapsed: Some(Duration::ZERO),
                    ..base()
                },
                "max_elapsed",
            ),
            (
                RetryConfig {
                    budget: Some(BudgetConfig {
                        retry_ratio: -1.0,
                        ..BudgetConfig::default()
                    }),
                    ..base()
                },
                "budget.retry_ratio",
            ),
            (
                RetryConfig {
                    budget: Some(BudgetConfig {
                        window: Duration::ZERO,
                        ..BudgetConfig::default()
                    }),
                    ..base()
                },
                "budget.window",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }

    #[test]
    fn zero_delays_are_allowed() {
        let config = RetryConfig {
            backoff: Backoff::constant(Duration::ZERO),
            max_delay: Duration::ZERO,
            jitter: Jitter::None,
            ..RetryConfig::default()
        };
        config.validate().unwrap();
    }
}
