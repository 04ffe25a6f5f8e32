//! [`Gradient2`]: latency against a long-term baseline, as in Netflix concurrency-limits'
//! `Gradient2Limit`, with a baseline that does not drift up under sustained load.

use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::{as_limit, clamp_limit};
use super::config::{check_limits, check_smoothing};
use super::state::{probed_limit_algorithm, ProbedWindows, Summary};
use crate::config::{check, ConfigError, ConfigProblem};

/// Windows averaged plainly before the baseline becomes an exponential average (Netflix's
/// `ExpAvgMeasurement` warm-up).
const WARMUP: u32 = 10;

/// The shortest probe interval: even at the smallest jitter (0.5), a probe then comes well
/// after the previous probe's warm-up has ended.
const MIN_PROBE_INTERVAL: u32 = 3 * WARMUP;

/// Settings of [`Gradient2`]. `Default` gives Netflix's values.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Gradient2Config {
    /// The limit to start from. Default: 20.
    pub initial_limit: u32,
    /// The limit never goes below this. Default: 20.
    pub min_limit: u32,
    /// The limit never goes above this. Default: 200.
    pub max_limit: u32,
    /// How far each update moves towards its target, in `(0, 1]`. Default: 0.2.
    pub smoothing: f64,
    /// Headroom added at each update: the queue the limit allows for. Default: 4.
    pub queue_size: u32,
    /// Latency up to this multiple of the baseline is accepted without shrinking the limit;
    /// at least 1. In steady overload the limit settles where latency is this multiple of the
    /// no-load latency. Default: 1.5.
    pub rtt_tolerance: f64,
    /// The baseline is an exponential average over about this many windows. Default: 600.
    pub long_window: u32,
    /// Re-measure the baseline every this many windows (times a jitter in `[0.5, 1)`); 0
    /// never does, otherwise at least 30. Default: 600.
    pub probe_interval: u32,
    /// Samples are gathered for this long before each update. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// A window with fewer samples is discarded. Default: 10.
    pub min_window_samples: u32,
}

impl Default for Gradient2Config {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 20,
            max_limit: 200,
            smoothing: 0.2,
            queue_size: 4,
            rtt_tolerance: 1.5,
            long_window: 600,
            probe_interval: 600,
            window: Duration::from_secs(1),
            min_window_samples: 10,
        }
    }
}

impl Gradient2Config {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits(self.initial_limit, self.min_limit, self.max_limit)?;
        check_smoothing(self.smoothing)?;
        if !(self.rtt_tolerance.is_finite() && self.rtt_tolerance >= 1.0) {
            return Err(ConfigError::new(
                "rtt_tolerance",
                ConfigProblem::TooSmall { min: 1.0 },
            ));
        }
        check::at_least("long_window", self.long_window, 1)?;
        if self.probe_interval != 0 && self.probe_interval < MIN_PROBE_INTERVAL {
            // With the jitter at 0.5, a probe must not come before the last one's warm-up ends.
            return Err(ConfigError::new(
                "probe_interval",
                ConfigProblem::Invalid(format!(
                    "must be 0 (never) or at least {MIN_PROBE_INTERVAL}"
                )),
            ));
        }
        check::at_least("min_window_samples", self.min_window_samples, 1)?;
        check::positive("window", self.window)
    }
}

/// Gradient2: shrinks the limit when latency rises above its long-term baseline, and grows
/// it by a fixed headroom while it does not.
///
/// Once per window (its average latency `short`, its largest in-flight count):
/// ```text
/// gradient = clamp(rtt_tolerance * baseline / short, 0.5, 1.0)
/// target   = limit * gradient + queue_size
/// limit    = clamp(limit * (1 - smoothing) + target * smoothing, min_limit, max_limit)
/// ```
/// unless fewer than half the limit were in flight (the caller is not using the limit).
/// When the baseline is more than twice `short`, it is cut by 5 % (latency has recovered).
///
/// **The baseline**, unlike Netflix's (an exponential average of every window), only takes in
/// windows at or below it, after a warm-up of 10 windows averaged plainly. Netflix's baseline
/// follows the latency that an over-large limit causes, so under sustained overload the
/// gradient returns to 1 and the limit keeps growing (in a deterministic simulation of a
/// server with fixed capacity it ran to `max_limit`); this one stays at the no-load latency,
/// so the limit settles where latency is `rtt_tolerance` times it. A genuinely slower
/// dependency is learnt by a probe every `probe_interval` windows (jittered), which restarts
/// the baseline, halves the limit so the queue drains while the new baseline warms up (10
/// windows, after which the previous limit is restored), and discards samples of calls admitted
/// before the probe.
#[derive(Debug, Clone)]
pub struct Gradient2 {
    config: Gradient2Config,
    estimate: f64,
    baseline: Baseline,
    /// The limit before the last probe, restored once the baseline is measured again.
    restore: Option<f64>,
    windows: ProbedWindows,
}

#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    seconds: f64,
    windows: u32,
    sum: f64,
}

impl Baseline {
    fn add(&mut self, short: f64, long_window: u32) -> f64 {
        if self.windows < WARMUP {
            self.windows += 1;
            self.sum += short;
            self.seconds = self.sum / f64::from(self.windows);
        } else if short <= self.seconds {
            let factor = 2.0 / (f64::from(long_window) + 1.0);
            self.seconds = self.seconds * (1.0 - factor) + short * factor;
        }
        self.seconds
    }
}

impl Gradient2 {
    /// An algorithm at `config.initial_limit`, with a random probe jitter. Call
    /// [`Gradient2Config::validate`] first.
    pub fn new(config: Gradient2Config) -> Self {
        Self::with_rng(config, fastrand::Rng::new())
    }

    /// The same with a fixed seed for the probe jitter, for reproducible runs.
    pub fn with_seed(config: Gradient2Config, seed: u64) -> Self {
        Self::with_rng(config, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(config: Gradient2Config, rng: fastrand::Rng) -> Self {
        Self {
            estimate: f64::from(config.initial_limit),
            baseline: Baseline::default(),
            restore: None,
            windows: ProbedWindows::new(rng),
            config,
        }
    }

    /// The long-term latency it measures against, once it has seen a window.
    pub fn baseline(&self) -> Option<Duration> {
        (self.baseline.windows > 0).then(|| Duration::from_secs_f64(self.baseline.seconds))
    }

    fn evaluate(&mut self, summary: &Summary) {
        let config = &self.config;
        if self.windows.probe_due(f64::from(config.probe_interval)) {
            self.probe(summary.closed);
            return;
        }
        let short = summary.average.as_secs_f64();
        if short <= 0.0 {
            return;
        }
        let long = self.baseline.add(short, config.long_window);
        if self.baseline.windows == WARMUP {
            if let Some(before) = self.restore.take() {
                self.estimate = self.estimate.max(before);
            }
        }
        if long / short > 2.0 {
            self.baseline.seconds *= 0.95;
        }
        if f64::from(summary.max_in_flight) < self.estimate / 2.0 {
            return;
        }
        let gradient = (config.rtt_tolerance * long / short).clamp(0.5, 1.0);
        let target = self.estimate * gradient + f64::from(config.queue_size);
        let smoothed = self.estimate * (1.0 - config.smoothing) + target * config.smoothing;
        self.estimate = clamp_limit(smoothed, config.min_limit, config.max_limit);
    }

    fn probe(&mut self, now: Instant) {
        let config = &self.config;
        self.baseline = Baseline::default();
        self.restore = Some(self.estimate);
        self.estimate = clamp_limit(self.estimate / 2.0, config.min_limit, config.max_limit);
        self.windows.start_probe(now);
        tracing::debug!(target: "resilience::adaptive", limit = as_limit(self.estimate), "gradient2: re-measuring the baseline");
    }
}

probed_limit_algorithm!(Gradient2, "gradient2");

#[cfg(test)]
mod tests;
