//! [`Aimd`]: the seed's additive-increase, multiplicative-decrease rule on success ratios.

use std::time::Duration;

use tokio::time::Instant;

use super::config::{check_limits, check_window};
use super::state::{Summary, Window};
use super::{LimitAlgorithm, Sample};
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of [`Aimd`]. `Default` gives the seed's values, plus the time bound on windows.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct AimdConfig {
    /// The limit to start from. Default: 100.
    pub initial_limit: u32,
    /// The limit never goes below this. Default: 10.
    pub min_limit: u32,
    /// The limit never goes above this. Default: 1000.
    pub max_limit: u32,
    /// Added after a good window. Fractions accumulate, so 0.5 adds one every two good
    /// windows, while the limit itself stays an integer. Default: 1.0.
    pub increase_rate: f64,
    /// The limit is multiplied by this after a bad window, then truncated (0 < f < 1).
    /// Default: 0.9.
    pub decrease_factor: f64,
    /// A window closes after this many calls with an outcome (the seed's window). Default: 100.
    pub measurement_window: u32,
    /// ... or this long after its first call, whichever comes first, so a quiet service still
    /// adapts. Default: 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub measurement_interval: Duration,
    /// A window whose success ratio is strictly above this increases the limit. Default: 0.95.
    pub success_threshold: f64,
    /// A window whose success ratio is strictly below this decreases the limit (the seed's
    /// code is strict although its docs say "at or below"). Default: 0.80.
    pub failure_threshold: f64,
}

impl Default for AimdConfig {
    fn default() -> Self {
        Self {
            initial_limit: 100,
            min_limit: 10,
            max_limit: 1000,
            increase_rate: 1.0,
            decrease_factor: 0.9,
            measurement_window: 100,
            measurement_interval: Duration::from_secs(10),
            success_threshold: 0.95,
            failure_threshold: 0.80,
        }
    }
}

impl AimdConfig {
    /// Checks every field with the seed's rules; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits(self.initial_limit, self.min_limit, self.max_limit)?;
        if !(self.increase_rate.is_finite() && self.increase_rate > 0.0) {
            return Err(ConfigError::new("increase_rate", ConfigProblem::NotPositive));
        }
        if !(self.decrease_factor > 0.0 && self.decrease_factor < 1.0) {
            return Err(ConfigError::new(
                "decrease_factor",
                ConfigProblem::Invalid("must be strictly between 0 and 1".into()),
            ));
        }
        check_window(
            "measurement_window",
            self.measurement_window,
            "measurement_interval",
            self.measurement_interval,
        )?;
        check::ratio("success_threshold", self.success_threshold)?;
        check::ratio("failure_threshold", self.failure_threshold)?;
        if self.failure_threshold >= self.success_threshold {
            return Err(ConfigError::new(
                "failure_threshold",
                ConfigProblem::Invalid("must be below success_threshold".into()),
            ));
        }
        Ok(())
    }
}

/// The seed's AIMD, with integer limits and windows bounded by count and by time.
///
/// When a window closes with success ratio `r` (successes over successes and failures):
/// * `r > success_threshold` (strict): `limit = min(max_limit, limit + increase_rate)`;
/// * `r < failure_threshold` (strict): `limit = max(min_limit, floor(limit * decrease_factor))`;
/// * otherwise unchanged. The window starts over either way.
///
/// So, with the defaults, 100 becomes 101 after a window above 95 %, 90 after one below 80 %
/// (80 with a factor of 0.8), and stays 100 at 85 %. Latency plays no part, as in the seed;
/// use [`Vegas`](super::Vegas) or [`Gradient2`](super::Gradient2) for that.
#[derive(Debug, Clone)]
pub struct Aimd {
    config: AimdConfig,
    limit: u32,
    /// The fraction of an increase not yet applied, so the limit stays an integer.
    carry: f64,
    window: Window,
}

impl Aimd {
    /// An algorithm at `config.initial_limit`. Call [`AimdConfig::validate`] first.
    pub fn new(config: AimdConfig) -> Self {
        Self {
            limit: config.initial_limit,
            config,
            carry: 0.0,
            window: Window::default(),
        }
    }

    fn close(&mut self, now: Instant) -> u32 {
        if let Some(summary) = self.window.close(now) {
            self.evaluate(&summary);
        }
        self.limit
    }

    fn evaluate(&mut self, summary: &Summary) {
        let config = &self.config;
        let rate = f64::from(summary.successes) / f64::from(summary.count);
        if rate > config.success_threshold {
            let grown = f64::from(self.limit) + self.carry + config.increase_rate;
            let whole = grown.floor();
            if whole >= f64::from(config.max_limit) {
                self.limit = config.max_limit;
                self.carry = 0.0;
            } else {
                self.limit = whole as u32;
                self.carry = grown - whole;
            }
        } else if rate < config.failure_threshold {
            // The epsilon keeps 100 * 0.29 (28.999...) from truncating to 28.
            let shrunk = (f64::from(self.limit) * config.decrease_factor + 1e-9).floor();
            self.limit = (shrunk as u32).max(config.min_limit);
            self.carry = 0.0;
        }
    }
}

impl LimitAlgorithm for Aimd {
    fn name(&self) -> &'static str {
        "aimd"
    }

    fn limit(&self) -> u32 {
        self.limit
    }

    fn update(&mut self, sample: &Sample) -> u32 {
        let now = sample.finished();
        self.window.add(sample);
        self.poll(now)
    }

    fn poll(&mut self, now: Instant) -> u32 {
        let config = &self.config;
        if self.window.is_due(now, config.measurement_interval, config.measurement_window) {
            return self.close(now);
        }
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Outcome;

    fn window(aimd: &mut Aimd, at: Instant, successes: u32, failures: u32) -> u32 {
        let sample = |outcome| Sample::new(at, Duration::from_millis(1), 1, outcome);
        let mut limit = aimd.limit();
        for _ in 0..successes {
            limit = aimd.update(&sample(Outcome::Success));
        }
        for _ in 0..failures {
            limit = aimd.update(&sample(Outcome::Failure));
        }
        limit
    }

    fn aimd(config: AimdConfig) -> Aimd {
        config.validate().unwrap();
        Aimd::new(config)
    }

    fn seed(window: u32) -> AimdConfig {
        AimdConfig {
            measurement_window: window,
            ..AimdConfig::default()
        }
    }

    #[test]
    fn the_seeds_sequences() {
        let at = Instant::now();
        // Up by one after a window of successes (window 10).
        assert_eq!(window(&mut aimd(seed(10)), at, 10, 0), 101);
        // Down at 50 % success: 100 * 0.9.
        assert_eq!(window(&mut aimd(seed(10)), at, 5, 5), 90);
        // 85 % is between the thresholds: unchanged.
        assert_eq!(window(&mut aimd(seed(20)), at, 17, 3), 100);
        // 100 * 0.8 -> exactly 80.
        let factor = AimdConfig {
            decrease_factor: 0.8,
            ..seed(10)
        };
        assert_eq!(window(&mut aimd(factor), at, 0, 10), 80);
        // +5 additive increase.
        let rate = AimdConfig {
            increase_rate: 5.0,
            ..seed(10)
        };
        let mut five = aimd(rate);
        assert_eq!(window(&mut five, at, 10, 0), 105);
        for _ in 0..4 {
            window(&mut five, at, 10, 0);
        }
        assert_eq!(five.limit(), 125, "five increase cycles: more than +20");
        // Five decrease cycles at 0.9: 90, 81, 72, 64, 57, below 60 % of the start.
        let mut shrinking = aimd(seed(10));
        let limits: Vec<u32> = (0..5).map(|_| window(&mut shrinking, at, 0, 10)).collect();
        assert_eq!(limits, [90, 81, 72, 64, 57]);
    }

    #[test]
    fn thresholds_are_strict() {
        let at = Instant::now();
        // Exactly 95 %: not above the success threshold.
        assert_eq!(window(&mut aimd(seed(20)), at, 19, 1), 100);
        // Exactly 80 %: not below the failure threshold.
        assert_eq!(window(&mut aimd(seed(10)), at, 8, 2), 100);
        assert_eq!(window(&mut aimd(seed(10)), at, 7, 3), 90);
    }

    #[test]
    fn counters_reset_after_every_window_and_ignored_calls_do_not_count() {
        let at = Instant::now();
        let mut aimd = aimd(seed(10));
        assert_eq!(window(&mut aimd, at, 9, 0), 100, "nine calls: no window yet");
        let ignored = Sample::new(at, Duration::from_millis(1), 1, Outcome::Ignored);
        assert_eq!(aimd.update(&ignored), 100);
        assert_eq!(window(&mut aimd, at, 1, 0), 101);
        // The next window starts empty: 5 failures then 5 successes is 50 %.
        assert_eq!(window(&mut aimd, at, 5, 5), 90);
    }

    #[test]
    fn limits_stay_within_min_and_max_and_fractions_accumulate() {
        let at = Instant::now();
        let config = AimdConfig {
            initial_limit: 11,
            min_limit: 10,
            max_limit: 12,
            increase_rate: 0.5,
            ..seed(1)
        };
        let mut aimd = aimd(config);
        let limits: Vec<u32> = (0..5).map(|_| window(&mut aimd, at, 1, 0)).collect();
        assert_eq!(limits, [11, 12, 12, 12, 12]);
        let limits: Vec<u32> = (0..3).map(|_| window(&mut aimd, at, 0, 1)).collect();
        assert_eq!(limits, [10, 10, 10]);
    }

    #[test]
    fn a_quiet_service_closes_its_window_by_time() {
        let epoch = Instant::now();
        let mut aimd = aimd(AimdConfig::default());
        let call = |outcome| Sample::new(epoch, Duration::from_millis(10), 1, outcome);
        aimd.update(&call(Outcome::Failure));
        aimd.update(&call(Outcome::Success));
        let opened = epoch + Duration::from_millis(10);
        let interval = Duration::from_secs(10);
        assert_eq!(aimd.poll(opened + interval - Duration::from_nanos(1)), 100);
        assert_eq!(aimd.poll(opened + interval), 90, "50 % after 10 s");
        assert_eq!(aimd.poll(opened + interval * 5), 90, "an empty window changes nothing");
    }

    #[test]
    fn the_seeds_validation_rules_name_each_field() {
        let base = AimdConfig::default;
        let field = |config: AimdConfig| config.validate().unwrap_err().field();
        assert_eq!(field(AimdConfig { initial_limit: 0, min_limit: 0, ..base() }), "min_limit");
        assert_eq!(field(AimdConfig { max_limit: 5, ..base() }), "min_limit");
        assert_eq!(field(AimdConfig { initial_limit: 5, ..base() }), "initial_limit");
        assert_eq!(field(AimdConfig { initial_limit: 5000, ..base() }), "initial_limit");
        assert_eq!(field(AimdConfig { increase_rate: 0.0, ..base() }), "increase_rate");
        assert_eq!(field(AimdConfig { decrease_factor: 1.0, ..base() }), "decrease_factor");
        assert_eq!(field(AimdConfig { decrease_factor: 0.0, ..base() }), "decrease_factor");
        assert_eq!(field(AimdConfig { measurement_window: 0, ..base() }), "measurement_window");
        assert_eq!(
            field(AimdConfig { measurement_interval: Duration::ZERO, ..base() }),
            "measurement_interval"
        );
        assert_eq!(field(AimdConfig { success_threshold: 1.1, ..base() }), "success_threshold");
        assert_eq!(field(AimdConfig { failure_threshold: -0.1, ..base() }), "failure_threshold");
        assert_eq!(field(AimdConfig { failure_threshold: 0.95, ..base() }), "failure_threshold");
    }
}
