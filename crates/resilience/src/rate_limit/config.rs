//! [`RateLimiterConfig`], the [`Algorithm`] choice and validation.

use std::fmt;
use std::time::Duration;

use crate::config::{ConfigError, ConfigProblem};
use crate::Rate;

/// Which algorithm decides. All four admit at most `burst` requests at once and sustain
/// `count / period`; they differ in memory and in how they treat a window's edge.
///
/// | algorithm | state per key | exact? |
/// |---|---|---|
/// | [`Gcra`](Self::Gcra) (default) | one `u64` | yes: continuous refill, exact `retry_after` |
/// | [`TokenBucket`](Self::TokenBucket) | three words | yes: admits exactly what GCRA admits |
/// | [`SlidingWindow`](Self::SlidingWindow) | two counters | approximate, never over the limit |
/// | [`SlidingLog`](Self::SlidingLog) | one timestamp per request in the window | yes: at most `limit` in any window |
/// | [`SketchedWindow`](Self::SketchedWindow) | none: a fixed count-min sketch shared by all keys | approximate, never over the limit: collisions only limit early |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Algorithm {
    /// Generic cell rate algorithm: one theoretical arrival time per key.
    #[default]
    Gcra,
    /// A bucket of `burst` tokens refilled one per emission interval.
    TokenBucket,
    /// Sliding-window counter: this window's count plus the previous one's, weighted.
    SlidingWindow,
    /// Sliding-window log: the instants of the requests allowed in the last window.
    SlidingLog,
    /// The sliding-window counter with every key's counts in one count-min sketch of fixed
    /// size ([`SketchSize`]): memory that does not grow with the keys, at the price of
    /// estimates that may limit a key early when other keys share its cells (never late).
    /// `max_keys` then bounds only the per-call budgets. A direct limiter, with one budget,
    /// counts it exactly, as [`SlidingWindow`](Self::SlidingWindow).
    SketchedWindow,
}

impl Algorithm {
    /// The algorithm's name in `snake_case`, as in configs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gcra => "gcra",
            Self::TokenBucket => "token_bucket",
            Self::SlidingWindow => "sliding_window",
            Self::SlidingLog => "sliding_log",
            Self::SketchedWindow => "sketched_window",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The size of the count-min sketch of [`Algorithm::SketchedWindow`]: `depth` rows of
/// `width` cells, 16 bytes each (a count and its window's number, for the current and the
/// previous window), allocated once at construction.
///
/// With `N` requests allowed in a window over all keys, a key's estimate exceeds its true
/// count by more than `e·N / width` with probability at most `e^−depth`. The default,
/// 1,024 × 4 (64 KiB), bounds the error by 0.27 % of the window's traffic for all but 1.8 %
/// of keys. Each row costs one cache line read per check: widen before deepening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SketchSize {
    /// Cells per row, from 1 to 2^22 (and `width × depth` at most 2^22, 64 MiB). Default:
    /// 1,024.
    pub width: usize,
    /// Rows, each hashed independently, from 1 to 16. Default: 4.
    pub depth: usize,
}

impl SketchSize {
    /// The largest `width`, and the most cells in all (`width × depth`): 64 MiB.
    pub const MAX_WIDTH: usize = 1 << 22;
    /// The largest `depth`.
    pub const MAX_DEPTH: usize = 16;

    /// The memory the sketch takes, in bytes.
    pub const fn bytes(&self) -> usize {
        self.width * self.depth * 16
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let range = |field, value: usize, max: usize| {
            if value == 0 || value > max {
                return Err(ConfigError::new(
                    field,
                    ConfigProblem::OutOfRange {
                        min: 1.0,
                        max: max as f64,
                    },
                ));
            }
            Ok(())
        };
        range("sketch.width", self.width, Self::MAX_WIDTH)?;
        range("sketch.depth", self.depth, Self::MAX_DEPTH)?;
        if self.width * self.depth > Self::MAX_WIDTH {
            return Err(ConfigError::new(
                "sketch.width",
                ConfigProblem::Invalid(format!(
                    "width × depth must be at most {}",
                    Self::MAX_WIDTH
                )),
            ));
        }
        Ok(())
    }
}

impl Default for SketchSize {
    fn default() -> Self {
        Self {
            width: 1_024,
            depth: 4,
        }
    }
}

/// The default `max_keys` (aioresilience's `max_limiters` default).
pub(crate) const DEFAULT_MAX_KEYS: usize = 10_000;

/// Settings of a [`LocalRateLimiter`](super::LocalRateLimiter) or a
/// [`DirectRateLimiter`](super::DirectRateLimiter).
///
/// There is no `Default`: a limiter without a rate would be a guess. [`new`](Self::new) takes
/// the rate and fills in the defaults given on each field for the rest.
///
/// With the `serde` feature it deserializes from any format serde supports, validating as it
/// goes, so a config file with `rate = "10/s"` works and `rate = "10/fortnight"` fails to
/// load:
///
/// ```toml
/// rate = "100/minute"
/// burst = 20              # optional; the count (100) by default
/// algorithm = "gcra"      # gcra, token_bucket, sliding_window or sliding_log
/// max_keys = 10000        # also accepted as aioresilience's `max_limiters`
/// max_wait = "250ms"      # how long `acquire` may wait; 0 by default
/// sketch = { width = 1024, depth = 4 }   # only for algorithm = "sketched_window"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "RawConfig"))]
pub struct RateLimiterConfig {
    /// The rate applied by `check` and `acquire`, burst included.
    pub rate: Rate,
    /// The algorithm. Default: GCRA.
    pub algorithm: Algorithm,
    /// The most keys (and `(key, rate)` pairs) whose state is kept at once. Default: 10,000,
    /// aioresilience's `max_limiters`.
    pub max_keys: usize,
    /// How long [`acquire`](super::RateLimiter::acquire) may wait for the budget before it
    /// rejects. Default: zero, so `acquire` never waits.
    pub max_wait: Duration,
    /// The count-min sketch of [`Algorithm::SketchedWindow`] (ignored by the other
    /// algorithms). Default: 1,024 × 4 cells, 64 KiB.
    pub sketch: SketchSize,
}

impl RateLimiterConfig {
    /// A config with this rate and the defaults for everything else.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            algorithm: Algorithm::default(),
            max_keys: DEFAULT_MAX_KEYS,
            max_wait: Duration::ZERO,
            sketch: SketchSize::default(),
        }
    }

    /// Checks every field; the error names the first offending one. (A [`Rate`] is valid by
    /// construction.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_keys == 0 {
            return Err(ConfigError::new(
                "max_keys",
                ConfigProblem::TooSmall { min: 1.0 },
            ));
        }
        self.sketch.validate()?;
        if u64::try_from(self.max_wait.as_nanos()).is_err() {
            return Err(ConfigError::new(
                "max_wait",
                ConfigProblem::TooLarge {
                    max: Duration::from_nanos(u64::MAX).as_secs_f64(),
                },
            ));
        }
        Ok(())
    }
}

/// The config as written in a file: the burst beside the rate string.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    rate: Rate,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    algorithm: Algorithm,
    #[serde(default = "default_max_keys", alias = "max_limiters")]
    max_keys: usize,
    #[serde(default, with = "humantime_serde")]
    max_wait: Duration,
    #[serde(default)]
    sketch: SketchSize,
}

#[cfg(feature = "serde")]
fn default_max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

#[cfg(feature = "serde")]
impl TryFrom<RawConfig> for RateLimiterConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let rate = match raw.burst {
            Some(burst) => raw.rate.try_with_burst(burst)?,
            None => raw.rate,
        };
        let config = Self {
            rate,
            algorithm: raw.algorithm,
            max_keys: raw.max_keys,
            max_wait: raw.max_wait,
            sketch: raw.sketch,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_fills_in_the_seeds_defaults() {
        let config = RateLimiterConfig::new(Rate::per_second(10));
        assert_eq!(config.algorithm, Algorithm::Gcra);
        assert_eq!(config.max_keys, 10_000);
        assert_eq!(config.max_wait, Duration::ZERO);
        config.validate().unwrap();
    }

    #[test]
    fn zero_keys_are_rejected_naming_the_field() {
        let config = RateLimiterConfig {
            max_keys: 0,
            ..RateLimiterConfig::new(Rate::per_second(10))
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.field(), "max_keys");
        assert_eq!(error.to_string(), "max_keys must be at least 1");
    }
}
