//! [`CircuitBreakerConfig`], its failure-detector choices and validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::detector::{
    Combined, ConsecutiveFailures, Counted, FailureCount, FailureDetector, RateDetector,
};
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of a [`CircuitBreaker`](super::CircuitBreaker). `Default` gives aioresilience's values
/// (stated on each field).
///
/// With the `serde` feature it deserializes from any format serde supports; durations are
/// written like `"30s"` or `"1m 30s"`:
///
/// ```toml
/// open_duration = "30s"
/// success_threshold = 2
/// detector = { type = "failure_rate", window = { calls = 20 }, threshold = 0.5, min_calls = 10 }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct CircuitBreakerConfig {
    /// The rule that opens a closed circuit. Default: 5 consecutive failures.
    pub detector: DetectorConfig,
    /// How long the circuit stays open before admitting probes, counted from the moment it
    /// opened (aioresilience's `recovery_timeout`). Default: 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub open_duration: Duration,
    /// Each consecutive trip without closing in between multiplies the open duration by this
    /// factor (1.0 keeps it constant). Default: 1.0.
    pub open_duration_multiplier: f64,
    /// The longest the open duration may grow to. Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_open_duration: Option<Duration>,
    /// Successful probes that close a half-open circuit. Default: 2.
    pub success_threshold: u32,
    /// Probes admitted at the same time while half-open. Default: 1.
    pub half_open_max_calls: u32,
    /// A time limit for each call; a call that exceeds it is cancelled and counts as a
    /// failure. Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Option<Duration>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            detector: DetectorConfig::default(),
            open_duration: Duration::from_secs(60),
            open_duration_multiplier: 1.0,
            max_open_duration: None,
            success_threshold: 2,
            half_open_max_calls: 1,
            timeout: None,
        }
    }
}

impl CircuitBreakerConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.detector.validate()?;
        check::positive("open_duration", self.open_duration)?;
        let multiplier = self.open_duration_multiplier;
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(ConfigError::new(
                "open_duration_multiplier",
                ConfigProblem::TooSmall { min: 1.0 },
            ));
        }
        if let Some(max) = self.max_open_duration {
            check::duration("max_open_duration", max)?;
            if max < self.open_duration {
                return Err(ConfigError::new(
                    "open_duration",
                    ConfigProblem::GreaterThan {
                        other: "max_open_duration",
                    },
                ));
            }
        }
        check::at_least("success_threshold", self.success_threshold, 1)?;
        check::at_least("half_open_max_calls", self.half_open_max_calls, 1)?;
        if let Some(timeout) = self.timeout {
            check::positive("timeout", timeout)?;
        }
        Ok(())
    }

    /// How long the circuit stays open after its `trips`-th consecutive trip (1-based). A
    /// backoff without `max_open_duration` stops growing at [`MAX_DURATION`](crate::MAX_DURATION):
    /// a huge multiplier overflows `f64` to infinity after a few trips.
    pub(crate) fn open_duration_for(&self, trips: u32) -> Duration {
        let exponent = i32::try_from(trips.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.open_duration_multiplier.powi(exponent);
        let cap = self.max_open_duration.unwrap_or(crate::MAX_DURATION);
        let seconds = self.open_duration.as_secs_f64() * factor;
        Duration::try_from_secs_f64(seconds).map_or(cap, |grown| grown.min(cap))
    }
}

/// The sliding window of a rate detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Window {
    /// The last N calls.
    Calls(u32),
    /// The calls of the last period of time, in 10 buckets: a call counts for between 9/10
    /// of the period and the whole period.
    Time(#[cfg_attr(feature = "serde", serde(with = "humantime_serde"))] Duration),
}

/// How a combined detector joins its children's votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Combine {
    /// Open when any child would (c-breaker's default).
    Any,
    /// Open only when every child would (c-breaker's `require_both`).
    All,
}

/// Which failure detector opens the circuit.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum DetectorConfig {
    /// Open after `threshold` failures in a row; any success starts over (aioresilience).
    ConsecutiveFailures {
        /// Failures in a row that open the circuit.
        threshold: u32,
    },
    /// Open after `threshold` failures within `window`; successes do not lower the count
    /// (c-breaker's time-based detector).
    FailureCount {
        /// Failures that open the circuit.
        threshold: u32,
        /// How long a failure counts.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        window: Duration,
    },
    /// Open when failures make up at least `threshold` of the calls in `window`, once it holds
    /// `min_calls` calls (c-breaker's sliding-window detector; resilience4j's failure rate).
    FailureRate {
        /// The calls considered.
        window: Window,
        /// The failure ratio, in `(0, 1]`, that opens the circuit.
        threshold: f64,
        /// Fewer calls than this never open the circuit.
        min_calls: u32,
    },
    /// Open when calls lasting at least `slow_call_duration` make up at least `threshold` of
    /// the calls in `window`, once it holds `min_calls` calls (resilience4j's slow-call rate).
    SlowCallRate {
        /// The calls considered.
        window: Window,
        /// A call at least this long is slow, whether it failed or not.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        slow_call_duration: Duration,
        /// The slow-call ratio, in `(0, 1]`, that opens the circuit.
        threshold: f64,
        /// Fewer calls than this never open the circuit.
        min_calls: u32,
    },
    /// Several detectors joined by `mode`.
    Combined {
        /// Any or all.
        mode: Combine,
        /// The joined detectors.
        detectors: Vec<Self>,
    },
    /// A user-defined detector, made by a factory.
    #[cfg_attr(feature = "serde", serde(skip))]
    Custom(CustomDetector),
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self::ConsecutiveFailures { threshold: 5 }
    }
}

impl DetectorConfig {
    /// A custom detector made by `factory` (called once per breaker, and again on
    /// reconfiguration).
    pub fn custom<D, F>(factory: F) -> Self
    where
        D: FailureDetector,
        F: Fn() -> D + Send + Sync + 'static,
    {
        Self::Custom(CustomDetector(Arc::new(move || Box::new(factory()))))
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::ConsecutiveFailures { threshold } => {
                check::at_least("failure_threshold", *threshold, 1)
            }
            Self::FailureCount { threshold, window } => {
                check::at_least("failure_threshold", *threshold, 1)?;
                check::positive("window", *window)
            }
            Self::FailureRate {
                window,
                threshold,
                min_calls,
            } => validate_rate(*window, *threshold, *min_calls),
            Self::SlowCallRate {
                window,
                slow_call_duration,
                threshold,
                min_calls,
            } => {
                check::positive("slow_call_duration", *slow_call_duration)?;
                validate_rate(*window, *threshold, *min_calls)
            }
            Self::Combined { detectors, .. } => {
                if detectors.is_empty() {
                    return Err(ConfigError::new("detectors", ConfigProblem::Empty));
                }
                detectors.iter().try_for_each(Self::validate)
            }
            Self::Custom(_) => Ok(()),
        }
    }

    /// A fresh detector of this configuration. Call [`validate`](Self::validate) first.
    pub(crate) fn build(&self) -> Box<dyn FailureDetector> {
        match self {
            Self::ConsecutiveFailures { threshold } => {
                Box::new(ConsecutiveFailures::new(*threshold))
            }
            Self::FailureCount { threshold, window } => {
                Box::new(FailureCount::new(*threshold, *window))
            }
            Self::FailureRate {
                window,
                threshold,
                min_calls,
            } => Box::new(RateDetector::new(
                Counted::Failures,
                *window,
                *threshold,
                *min_calls,
            )),
            Self::SlowCallRate {
                window,
                slow_call_duration,
                threshold,
                min_calls,
            } => Box::new(RateDetector::new(
                Counted::SlowCalls(*slow_call_duration),
                *window,
                *threshold,
                *min_calls,
            )),
            Self::Combined { mode, detectors } => Box::new(Combined::new(
                *mode,
                detectors.iter().map(Self::build).collect(),
            )),
            Self::Custom(custom) => (custom.0)(),
        }
    }
}

fn validate_rate(window: Window, threshold: f64, min_calls: u32) -> Result<(), ConfigError> {
    check::ratio("failure_rate_threshold", threshold)?;
    if threshold == 0.0 {
        // A zero threshold would open the circuit with no failure at all.
        return Err(ConfigError::new(
            "failure_rate_threshold",
            ConfigProblem::NotPositive,
        ));
    }
    check::at_least("min_calls", min_calls, 1)?;
    match window {
        Window::Calls(size) => {
            // c-breaker accepted a window of 0 calls, which can never open the circuit.
            check::at_least("window", size, 1)?;
            if min_calls > size {
                return Err(ConfigError::new(
                    "min_calls",
                    ConfigProblem::GreaterThan { other: "window" },
                ));
            }
            Ok(())
        }
        Window::Time(length) => check::positive("window", length),
    }
}

/// A factory of user-defined detectors; two are equal only if they are the same factory.
#[derive(Clone)]
pub struct CustomDetector(Arc<dyn Fn() -> Box<dyn FailureDetector> + Send + Sync>);

impl PartialEq for CustomDetector {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for CustomDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomDetector")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: &CircuitBreakerConfig) -> &'static str {
        config.validate().unwrap_err().field()
    }

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let config = CircuitBreakerConfig::default();
        assert_eq!(
            config.detector,
            DetectorConfig::ConsecutiveFailures { threshold: 5 }
        );
        assert_eq!(config.open_duration, Duration::from_secs(60));
        assert_eq!(config.success_threshold, 2);
        assert_eq!(config.half_open_max_calls, 1);
        assert_eq!(config.timeout, None);
        config.validate().unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = CircuitBreakerConfig::default;
        let cases: Vec<(CircuitBreakerConfig, &str)> = vec![
            (
                CircuitBreakerConfig {
                    detector: DetectorConfig::ConsecutiveFailures { threshold: 0 },
                    ..base()
                },
                "failure_threshold",
            ),
            (
                CircuitBreakerConfig {
                    open_duration: Duration::ZERO,
                    ..base()
                },
                "open_duration",
            ),
            (
                CircuitBreakerConfig {
                    success_threshold: 0,
                    ..base()
                },
                "success_threshold",
            ),
            (
                CircuitBreakerConfig {
                    half_open_max_calls: 0,
                    ..base()
                },
                "half_open_max_calls",
            ),
            (
                CircuitBreakerConfig {
                    timeout: Some(Duration::ZERO),
                    ..base()
                },
                "timeout",
            ),
            (
                CircuitBreakerConfig {
                    open_duration_multiplier: 0.5,
                    ..base()
                },
                "open_duration_multiplier",
            ),
            (
                CircuitBreakerConfig {
                    open_duration_multiplier: f64::NAN,
                    ..base()
                },
                "open_duration_multiplier",
            ),
            (
                CircuitBreakerConfig {
                    max_open_duration: Some(Duration::from_secs(1)),
                    ..base()
                },
                "open_duration",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(&config), field, "{config:?}");
        }
    }

    #[test]
    fn detector_fields_are_validated() {
        let rate = |window, threshold, min_calls| DetectorConfig::FailureRate {
            window,
            threshold,
            min_calls,
        };
        let field = |detector: DetectorConfig| detector.validate().unwrap_err().field();
        assert_eq!(
            field(rate(Window::Calls(10), 1.5, 5)),
            "failure_rate_threshold"
        );
        assert_eq!(
            field(rate(Window::Calls(10), 0.0, 5)),
            "failure_rate_threshold"
        );
        assert_eq!(field(rate(Window::Calls(10), 0.5, 0)), "min_calls");
        assert_eq!(field(rate(Window::Calls(4), 0.5, 5)), "min_calls");
        assert_eq!(field(rate(Window::Calls(0), 0.5, 1)), "window");
        assert_eq!(field(rate(Window::Time(Duration::ZERO), 0.5, 1)), "window");
        assert_eq!(
            field(DetectorConfig::FailureCount {
                threshold: 5,
                window: Duration::ZERO
            }),
            "window"
        );
        assert_eq!(
            field(DetectorConfig::SlowCallRate {
                window: Window::Calls(10),
                slow_call_duration: Duration::ZERO,
                threshold: 0.5,
                min_calls: 5
            }),
            "slow_call_duration"
        );
        assert_eq!(
            field(DetectorConfig::Combined {
                mode: Combine::Any,
                detectors: vec![]
            }),
            "detectors"
        );
    }

    #[test]
    fn open_duration_grows_and_is_capped() {
        let config = CircuitBreakerConfig {
            open_duration: Duration::from_secs(10),
            open_duration_multiplier: 2.0,
            max_open_duration: Some(Duration::from_secs(35)),
            ..CircuitBreakerConfig::default()
        };
        let secs = |trips| config.open_duration_for(trips).as_secs();
        assert_eq!(
            [secs(1), secs(2), secs(3), secs(4), secs(50)],
            [10, 20, 35, 35, 35]
        );
        let constant = CircuitBreakerConfig::default();
        assert_eq!(constant.open_duration_for(7), Duration::from_secs(60));
    }
}
