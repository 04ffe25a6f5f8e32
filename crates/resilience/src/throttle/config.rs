//! [`ThrottleConfig`] and its validation.

use std::time::Duration;

use crate::config::{check, ConfigError, ConfigProblem};

/// The largest `k` accepted: far beyond any useful value (at `k = 10` a client already sends
/// ten times what the backend accepts), and small enough that `k · accepts` stays exact.
pub const MAX_K: f64 = 1e6;
/// The largest `aggression` accepted.
pub const MAX_AGGRESSION: f64 = 1_000.0;
/// The shortest `window` accepted; the window is cut into 16 buckets.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);
/// The longest `window` accepted (a year).
pub const MAX_WINDOW: Duration = Duration::from_secs(365 * 86_400);

/// Settings of an [`AdaptiveThrottle`](super::AdaptiveThrottle).
///
/// `Default` is the SRE book's throttle with Envoy's guards: a two-minute window, `k = 2`,
/// no rejection below 20 requests in the window, at most 90 % of requests rejected,
/// aggression 1, a random seed. With the `serde` feature it deserializes from any format
/// serde supports:
///
/// ```toml
/// window = "2m"
/// k = 2.0
/// min_requests = 20
/// max_rejection_probability = 0.9
/// aggression = 1.0
/// seed = 42
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ThrottleConfig {
    /// How far back requests and accepts are counted, from 1 ms to a year. It slides in steps
    /// of a sixteenth of itself. Default: 2 minutes.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// The multiplier of accepts: the client keeps sending up to `k` times what the backend
    /// accepts, so with `k = 2` it throttles only once the backend refuses more than half.
    /// Lower is more aggressive. From 1 to [`MAX_K`]. Default: 2.
    pub k: f64,
    /// Requests the window must have seen before anything is throttled: below it, traffic is
    /// too thin to judge (and a cold start has seen nothing). Default: 20.
    pub min_requests: u64,
    /// The most the rejection probability can reach, in `[0, 1)`, so some requests always
    /// go out and find out when the backend is back. Default: 0.9.
    pub max_rejection_probability: f64,
    /// Shapes the probability as `p^(1 / aggression)`: 1 is the plain formula, higher values
    /// throttle harder at low rejection rates. From 1 to [`MAX_AGGRESSION`]. Default: 1.
    pub aggression: f64,
    /// Seed of the generator drawing against the probability; the same seed gives the same
    /// decisions for the same sequence of calls. `None` (default): random.
    pub seed: Option<u64>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            k: 2.0,
            min_requests: 20,
            max_rejection_probability: 0.9,
            aggression: 1.0,
            seed: None,
        }
    }
}

impl ThrottleConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window < MIN_WINDOW {
            return Err(ConfigError::new(
                "window",
                ConfigProblem::TooSmall {
                    min: MIN_WINDOW.as_secs_f64(),
                },
            ));
        }
        if self.window > MAX_WINDOW {
            return Err(ConfigError::new(
                "window",
                ConfigProblem::TooLarge {
                    max: MAX_WINDOW.as_secs_f64(),
                },
            ));
        }
        within("k", self.k, 1.0, MAX_K)?;
        within("aggression", self.aggression, 1.0, MAX_AGGRESSION)?;
        let p = self.max_rejection_probability;
        if !(0.0..1.0).contains(&p) {
            return Err(ConfigError::new(
                "max_rejection_probability",
                ConfigProblem::Invalid("must be at least 0 and below 1".to_owned()),
            ));
        }
        check::duration("window", self.window)
    }
}

/// `value` in `min..=max` (NaN is not).
fn within(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError::new(
            field,
            ConfigProblem::OutOfRange { min, max },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        ThrottleConfig::default().validate().unwrap();
        let cases = [
            (
                "window",
                ThrottleConfig {
                    window: Duration::ZERO,
                    ..Default::default()
                },
            ),
            (
                "window",
                ThrottleConfig {
                    window: Duration::MAX,
                    ..Default::default()
                },
            ),
            (
                "k",
                ThrottleConfig {
                    k: 0.5,
                    ..Default::default()
                },
            ),
            (
                "k",
                ThrottleConfig {
                    k: f64::INFINITY,
                    ..Default::default()
                },
            ),
            (
                "k",
                ThrottleConfig {
                    k: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "aggression",
                ThrottleConfig {
                    aggression: 0.0,
                    ..Default::default()
                },
            ),
            (
                "max_rejection_probability",
                ThrottleConfig {
                    max_rejection_probability: 1.0,
                    ..Default::default()
                },
            ),
            (
                "max_rejection_probability",
                ThrottleConfig {
                    max_rejection_probability: -0.1,
                    ..Default::default()
                },
            ),
        ];
        for (field, config) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
        // Extremes that are fine.
        ThrottleConfig {
            k: MAX_K,
            min_requests: u64::MAX,
            aggression: MAX_AGGRESSION,
            max_rejection_probability: 0.0,
            window: MAX_WINDOW,
            seed: Some(u64::MAX),
        }
        .validate()
        .unwrap();
    }
}
