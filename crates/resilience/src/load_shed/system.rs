//! System-aware shedding (feature `system`): CPU and memory sampled by a background task.
//!
//! Sampling never happens on the request path: a task samples every `check_interval` and
//! publishes the readings to two atomics; a request reads them with two loads and never
//! waits. The task holds only a `Weak` reference to the readings and a stop signal whose
//! sender lives in the shedder, so dropping the last handle stops it at once (mini-redis's
//! shutdown idea).
//!
//! In a container with cgroup v2 limits the default source, [`SysinfoSource`], measures against
//! the container's limits (`memory.max`, `cpu.max`) rather than the host's, since a container
//! at its memory limit is killed long before the host runs out.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::state::SystemLoad;
use crate::config::{check, ConfigError, ConfigProblem};

mod cgroup;

pub use cgroup::SysinfoSource;

/// CPU and memory thresholds and the sampling interval. `Default` gives aioresilience's values
/// (stated on each field).
///
/// Thresholds are ratios (0.85, not 85); comparisons are strict: a reading
/// exactly at the threshold is not shed.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SystemConfig {
    /// Low and normal requests are shed while CPU use is above this ratio. Default: 0.85.
    pub cpu_threshold: f64,
    /// Low and normal requests are shed while memory use is above this ratio. Default: 0.85.
    pub memory_threshold: f64,
    /// How often the background task samples. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub check_interval: Duration,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            cpu_threshold: 0.85,
            memory_threshold: 0.85,
            check_interval: Duration::from_secs(1),
        }
    }
}

impl SystemConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::ratio("cpu_threshold", self.cpu_threshold)?;
        check::ratio("memory_threshold", self.memory_threshold)?;
        check::positive("check_interval", self.check_interval)
    }
}

/// One reading of CPU and memory use, as ratios in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SystemSample {
    /// CPU use: busy time over available time since the previous sample.
    pub cpu: f64,
    /// Memory in use over memory available to this process (the host's or the container's).
    pub memory: f64,
}

impl SystemSample {
    /// A reading; values are clamped to `0..=1`, and NaN (unknown) reads as 0.
    pub fn new(cpu: f64, memory: f64) -> Self {
        let clamp = |value: f64| {
            if value.is_nan() {
                0.0
            } else {
                value.clamp(0.0, 1.0)
            }
        };
        Self {
            cpu: clamp(cpu),
            memory: clamp(memory),
        }
    }
}

/// Where the sampler gets its readings: [`SysinfoSource`] by default, anything else in tests
/// or for custom signals.
///
/// `sample` runs on the sampler task, never on the request path; it should still return
/// quickly (reading a few files is fine, sleeping is not). Closures returning a
/// [`SystemSample`] are sources.
pub trait SystemMetricsSource: Send + 'static {
    /// Takes one reading.
    fn sample(&mut self) -> SystemSample;
}

impl<F> SystemMetricsSource for F
where
    F: FnMut() -> SystemSample + Send + 'static,
{
    fn sample(&mut self) -> SystemSample {
        self()
    }
}

/// The latest readings, shared by the shedder (strong) and its sampler task (weak).
struct Readings {
    cpu: AtomicU64,
    memory: AtomicU64,
    cpu_threshold: AtomicU64,
    memory_threshold: AtomicU64,
    interval: AtomicU64,
    epoch: Instant,
    next_sample: AtomicU64,
}

impl Readings {
    fn store(&self, sample: SystemSample, now: Instant) {
        let sample = SystemSample::new(sample.cpu, sample.memory);
        self.cpu.store(sample.cpu.to_bits(), Ordering::Relaxed);
        self.memory
            .store(sample.memory.to_bits(), Ordering::Relaxed);
        let next = (now + self.interval()).saturating_duration_since(self.epoch);
        self.next_sample
            .store(saturating_nanos(next), Ordering::Relaxed);
    }

    fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval.load(Ordering::Relaxed))
    }

    fn next_sample(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.next_sample.load(Ordering::Relaxed))
    }
}

fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn load_f64(word: &AtomicU64) -> f64 {
    f64::from_bits(word.load(Ordering::Relaxed))
}

/// The shedder's side of the sampler: its readings, and the sender whose drop stops the task.
pub(crate) struct Monitor {
    readings: Arc<Readings>,
    _stop: oneshot::Sender<()>,
}

impl Monitor {
    /// Takes a first reading now, so thresholds hold from the first request, then starts the
    /// sampler on the current Tokio runtime.
    pub(crate) fn start(
        config: &SystemConfig,
        mut source: Box<dyn SystemMetricsSource>,
    ) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "system",
                ConfigProblem::Invalid(
                    "a system-aware load shedder must be built inside a Tokio runtime".into(),
                ),
            )
        })?;
        let now = Instant::now();
        let readings = Arc::new(Readings {
            cpu: AtomicU64::new(0),
            memory: AtomicU64::new(0),
            cpu_threshold: AtomicU64::new(0),
            memory_threshold: AtomicU64::new(0),
            interval: AtomicU64::new(0),
            epoch: now,
            next_sample: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let monitor = Self {
            readings,
            _stop: stop,
        };
        monitor.configure(config);
        monitor.readings.store(source.sample(), now);
        runtime.spawn(sample_until_stopped(
            Arc::downgrade(&monitor.readings),
            source,
            stopped,
        ));
        Ok(monitor)
    }

    /// Applies new thresholds and interval; the interval takes effect after the next sample.
    pub(crate) fn configure(&self, config: &SystemConfig) {
        let readings = &self.readings;
        readings
            .cpu_threshold
            .store(config.cpu_threshold.to_bits(), Ordering::Relaxed);
        readings
            .memory_threshold
            .store(config.memory_threshold.to_bits(), Ordering::Relaxed);
        readings
            .interval
            .store(saturating_nanos(config.check_interval), Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> SystemLoad {
        let readings = &self.readings;
        SystemLoad {
            cpu: load_f64(&readings.cpu),
            memory: load_f64(&readings.memory),
            cpu_threshold: load_f64(&readings.cpu_threshold),
            memory_threshold: load_f64(&readings.memory_threshold),
        }
    }

    /// Time until the next reading: the earliest a CPU or memory decision can change.
    pub(crate) fn until_next_sample(&self, now: Instant) -> Duration {
        self.readings.next_sample().saturating_duration_since(now)
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("load", &self.load())
            .finish()
    }
}

/// The sampler task: sleeps until the next sample is due (`check_interval` after the previous
/// one, so a task that starts late does not shift the schedule), samples, publishes; returns as
/// soon as the shedder is gone (the stop sender dropped, or the readings no longer reachable).
async fn sample_until_stopped(
    readings: Weak<Readings>,
    mut source: Box<dyn SystemMetricsSource>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let Some(due) = readings.upgrade().map(|readings| readings.next_sample()) else {
            return;
        };
        let mut sleep = pin!(tokio::time::sleep_until(due));
        let stop = poll_fn(|cx| {
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            sleep.as_mut().poll(cx).map(|()| false)
        })
        .await;
        if stop {
            return;
        }
        let Some(readings) = readings.upgrade() else {
            return;
        };
        let sample = source.sample();
        readings.store(sample, Instant::now());
        tracing::trace!(target: "resilience::load_shed", cpu = sample.cpu, memory = sample.memory, "system sampled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_fields_are_validated() {
        let config = SystemConfig::default();
        assert_eq!(
            (config.cpu_threshold, config.memory_threshold),
            (0.85, 0.85)
        );
        assert_eq!(config.check_interval, Duration::from_secs(1));
        config.validate().unwrap();
        let field = |config: SystemConfig| config.validate().unwrap_err().field();
        let base = SystemConfig::default;
        assert_eq!(
            field(SystemConfig {
                cpu_threshold: 85.0,
                ..base()
            }),
            "cpu_threshold"
        );
        assert_eq!(
            field(SystemConfig {
                memory_threshold: f64::NAN,
                ..base()
            }),
            "memory_threshold"
        );
        assert_eq!(
            field(SystemConfig {
                check_interval: Duration::ZERO,
                ..base()
            }),
            "check_interval"
        );
    }

    #[test]
    fn samples_are_clamped_ratios() {
        assert_eq!(SystemSample::new(1.5, -0.2), SystemSample::new(1.0, 0.0));
        assert_eq!(SystemSample::new(f64::NAN, 0.5).cpu, 0.0);
    }

    #[test]
    fn building_outside_a_runtime_is_a_config_error() {
        let source = Box::new(SystemSample::default);
        let error = Monitor::start(&SystemConfig::default(), source).unwrap_err();
        assert_eq!(error.field(), "system");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_reading_is_taken_at_once_and_sets_the_next_sample_time() {
        let source = Box::new(|| SystemSample::new(0.5, 0.25));
        let monitor = Monitor::start(&SystemConfig::default(), source).unwrap();
        let load = monitor.load();
        assert_eq!((load.cpu, load.memory), (0.5, 0.25));
        assert_eq!(load.cpu_threshold, 0.85);
        assert_eq!(
            monitor.until_next_sample(Instant::now()),
            Duration::from_secs(1)
        );
    }
}
