//! [`Vegas`]: TCP Vegas' queue estimate, as in Netflix concurrency-limits' `VegasLimit`.

use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::{as_limit, clamp_limit, log10_root};
use super::config::{check_limits, check_smoothing};
use super::state::{probed_limit_algorithm, ProbedWindows, Summary};
use crate::config::{check, ConfigError, ConfigProblem};

/// Settings of [`Vegas`]. `Default` gives Netflix's values.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct VegasConfig {
    /// The limit to start from. Default: 20.
    pub initial_limit: u32,
    /// The limit never goes below this. Default: 1.
    pub min_limit: u32,
    /// The limit never goes above this. Default: 1000.
    pub max_limit: u32,
    /// Below `alpha * log10(limit)` queued calls the limit grows. Default: 3.
    pub alpha: u32,
    /// Above `beta * log10(limit)` queued calls the limit shrinks. Default: 6.
    pub beta: u32,
    /// How far each update moves towards its target, in `(0, 1]`. Default: 1.0.
    pub smoothing: f64,
    /// Double the limit every window until queueing is first seen, at the start and after
    /// each probe. Default: on.
    pub slow_start: bool,
    /// Re-measure the no-load latency every `probe_multiplier * limit` windows (times a
    /// jitter in `[0.5, 1)`); 0 never does. Default: 30.
    pub probe_multiplier: u32,
    /// Samples are gathered for this long before each update. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// A window with fewer samples is discarded. Default: 10.
    pub min_window_samples: u32,
}

impl Default for VegasConfig {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
            alpha: 3,
            beta: 6,
            smoothing: 1.0,
            slow_start: true,
            probe_multiplier: 30,
            window: Duration::from_secs(1),
            min_window_samples: 10,
        }
    }
}

impl VegasConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits(self.initial_limit, self.min_limit, self.max_limit)?;
        check::at_least("alpha", self.alpha, 1)?;
        if self.alpha > self.beta {
            return Err(ConfigError::new(
                "alpha",
                ConfigProblem::GreaterThan { other: "beta" },
            ));
        }
        check_smoothing(self.smoothing)?;
        check::at_least("min_window_samples", self.min_window_samples, 1)?;
        check::positive("window", self.window)
    }
}

/// Vegas: estimates how many calls queue at the dependency from how far the latency is above
/// the no-load latency, and keeps that queue small.
///
/// Once per window (its average latency `rtt`, its largest in-flight count, whether any call
/// failed), with `root = max(1, floor(log10(limit)))` and
/// `queue = ceil(limit * (1 - rtt_noload / rtt))`:
/// * a failed call ("drop"): `limit - root`, and slow start ends;
/// * fewer than half the limit in flight: unchanged (the caller is not using the limit, so
///   latency says nothing about it);
/// * slow start: `limit * 2` while `queue <= root`; at the first queueing it ends and the
///   limit drops to `in_flight * rtt_noload / rtt`, the concurrency the dependency served
///   without queueing;
/// * then Netflix's rules: `queue <= root`: `+ beta * root`; `queue < alpha * root`: `+ root`;
///   `queue > beta * root`: `- root`; otherwise unchanged.
///
/// Every result is clamped to `min_limit..=max_limit` and smoothed. `rtt_noload` is the
/// lowest window latency seen since the last probe. A probe (every `probe_multiplier * limit`
/// windows, jittered) forgets it, halves the limit so the queue drains, re-enters slow start,
/// and discards every sample of a call admitted before the probe: those calls queued under
/// the old limit and would re-measure the old latency.
#[derive(Debug, Clone)]
pub struct Vegas {
    config: VegasConfig,
    estimate: f64,
    rtt_noload: Option<Duration>,
    slow_start: bool,
    windows: ProbedWindows,
}

impl Vegas {
    /// An algorithm at `config.initial_limit`, with a random probe jitter. Call
    /// [`VegasConfig::validate`] first.
    pub fn new(config: VegasConfig) -> Self {
        Self::with_rng(config, fastrand::Rng::new())
    }

    /// The same with a fixed seed for the probe jitter, for reproducible runs.
    pub fn with_seed(config: VegasConfig, seed: u64) -> Self {
        Self::with_rng(config, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(config: VegasConfig, rng: fastrand::Rng) -> Self {
        Self {
            estimate: f64::from(config.initial_limit),
            slow_start: config.slow_start,
            rtt_noload: None,
            windows: ProbedWindows::new(rng),
            config,
        }
    }

    /// The no-load latency it measures against, once known.
    pub fn rtt_noload(&self) -> Option<Duration> {
        self.rtt_noload
    }

    /// Whether it is still doubling its limit.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    fn evaluate(&mut self, summary: &Summary) {
        let probe_interval = f64::from(self.config.probe_multiplier) * self.estimate;
        if self.windows.probe_due(probe_interval) {
            self.probe(summary.closed);
            return;
        }
        let rtt = summary.average;
        let noload = match self.rtt_noload {
            Some(noload) if rtt >= noload => noload,
            _ => {
                self.rtt_noload = Some(rtt);
                return;
            }
        };
        if let Some(target) = self.target(summary, rtt, noload) {
            let config = &self.config;
            let target = clamp_limit(target, config.min_limit, config.max_limit);
            self.estimate = (1.0 - config.smoothing) * self.estimate + config.smoothing * target;
        }
    }

    /// The limit this window asks for, or `None` to leave it.
    fn target(&mut self, summary: &Summary, rtt: Duration, noload: Duration) -> Option<f64> {
        let estimate = self.estimate;
        let root = f64::from(log10_root(as_limit(estimate)));
        if summary.failures > 0 {
            self.slow_start = false;
            return Some(estimate - root);
        }
        if f64::from(summary.max_in_flight) * 2.0 < estimate {
            return None;
        }
        let ratio = noload.as_secs_f64() / rtt.as_secs_f64();
        let queue = (estimate * (1.0 - ratio)).ceil();
        let (alpha, beta) = (
            f64::from(self.config.alpha) * root,
            f64::from(self.config.beta) * root,
        );
        if self.slow_start {
            if queue <= root {
                return Some(estimate * 2.0);
            }
            self.slow_start = false;
            return Some(f64::from(summary.max_in_flight) * ratio);
        }
        if queue <= root {
            Some(estimate + beta)
        } else if queue < alpha {
            Some(estimate + root)
        } else if queue > beta {
            Some(estimate - root)
        } else {
            None
        }
    }

    fn probe(&mut self, now: Instant) {
        let config = &self.config;
        self.rtt_noload = None;
        self.estimate = clamp_limit(self.estimate / 2.0, config.min_limit, config.max_limit);
        self.slow_start = config.slow_start;
        self.windows.start_probe(now);
        tracing::debug!(target: "resilience::adaptive", limit = as_limit(self.estimate), "vegas: probing the no-load latency");
    }
}

probed_limit_algorithm!(Vegas, "vegas");

#[cfg(test)]
mod tests;
