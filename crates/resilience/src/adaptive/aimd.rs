//! [`Aimd`]: additive increase, multiplicative decrease on success ratios (aioresilience's rule).

use std::time::Duration;

use tokio::time::Instant;

use super::config::check_limits;
use super::state::{Summary, Window};
use super::{LimitAlgorithm, Sample};
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of [`Aimd`]. `Default` gives aioresilience's values (stated on each field), plus
/// the time bound on windows.
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
    /// A window closes after this many calls with an outcome. Default: 100. Calls that end
    /// on other threads while it closes join it, so a busy limiter's windows may count a
    /// few more.
    pub measurement_window: u32,
    /// ... or this long after its first call, whichever comes first, so a quiet service still
    /// adapts. Default: 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub measurement_interval: Duration,
    /// A window whose success ratio is strictly above this increases the limit. Default: 0.95.
    pub success_threshold: f64,
    /// A window whose success ratio is strictly below this decreases the limit (strict, as
    /// aioresilience's code is, although its docs say "at or below"). Default: 0.80.
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
    /// Checks every field (among others `1 <= min_limit <= initial_limit <= max_limit`, a
    /// `decrease_factor` strictly between 0 and 1, and `failure_threshold` below
    /// `success_threshold`); the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits(self.initial_limit, self.min_limit, self.max_limit)?;
        if !(self.increase_rate.is_finite() && self.increase_rate > 0.0) {
            return Err(ConfigError::new(
                "increase_rate",
                ConfigProblem::NotPositive,
            ));
        }
        if !(self.decrease_factor > 0.0 && self.decrease_factor < 1.0) {
            return Err(ConfigError::new(
                "decrease_factor",
                ConfigProblem::Invalid("must be strictly between 0 and 1".into()),
            ));
        }
        check::at_least("measurement_window", self.measurement_window, 1)?;
        check::positive("measurement_interval", self.measurement_interval)?;
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

/// AIMD as in aioresilience, with integer limits and windows bounded by count and by time.
///
/// When a window closes with success ratio `r` (successes over successes and failures):
/// * `r > success_threshold` (strict): `limit = min(max_limit, limit + increase_rate)`;
/// * `r < failure_threshold` (strict): `limit = max(min_limit, floor(limit * decrease_factor))`;
/// * otherwise unchanged. The window starts over either way.
///
/// So, with the defaults, 100 becomes 101 after a window above 95 %, 90 after one below 80 %
/// (80 with a factor of 0.8), and stays 100 at 85 %. Latency plays no part;
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
        self.close_counted(summary.successes, summary.failures);
    }

    /// Closes a window counted elsewhere (by the limiter, without this algorithm's lock):
    /// at least one call, `successes` and `failures` of them. Returns the limit.
    pub(super) fn close_counted(&mut self, successes: u32, failures: u32) -> u32 {
        let config = &self.config;
        let rate = f64::from(successes) / (f64::from(successes) + f64::from(failures));
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
        self.limit
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
        if self
            .window
            .is_due(now, config.measurement_interval, config.measurement_window)
        {
            return self.close(now);
        }
        self.limit
    }
}

#[cfg(test)]
mod tests;
