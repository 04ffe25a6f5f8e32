//! [`LoadShedderBuilder`]: the front door to a configured shedder.

use std::fmt;
use std::time::Duration;

use super::monitor::Monitor;
use super::{LoadShedder, LoadShedderConfig, Priority};
use crate::config::check;
use crate::ConfigError;

/// Where system readings come from, when the builder was given a source.
#[cfg(feature = "system")]
type Source = Option<Box<dyn super::SystemMetricsSource>>;
#[cfg(not(feature = "system"))]
type Source = ();

/// Builds a [`LoadShedder`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::load_shed::{LoadShedder, Priority};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let shedder = LoadShedder::builder("api")
///     .max_requests(200)
///     .max_queue_depth(50)
///     .wait_timeout(Duration::from_millis(250))
///     .threshold(Priority::Low, 0.5)
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct LoadShedderBuilder {
    name: String,
    config: LoadShedderConfig,
    source: Source,
}

impl LoadShedderBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: LoadShedderConfig::default(),
            source: Source::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: LoadShedderConfig) -> Self {
        self.config = config;
        self
    }

    /// The hard cap on requests running at once (1000).
    pub fn max_requests(mut self, max: u32) -> Self {
        self.config.max_requests = max;
        self
    }

    /// Requests that may wait for a slot at the cap (500); 0 for no queue.
    pub fn max_queue_depth(mut self, depth: u32) -> Self {
        self.config.max_queue_depth = depth;
        self
    }

    /// The longest a queued request waits (1 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = timeout;
        self
    }

    /// The utilisation ratio above which `priority` is shed. [`Priority::Critical`] has no
    /// threshold (only the hard cap holds it back), so setting one for it does nothing.
    pub fn threshold(mut self, priority: Priority, ratio: f64) -> Self {
        match priority {
            Priority::Low => self.config.low_threshold = ratio,
            Priority::Normal => self.config.normal_threshold = ratio,
            Priority::High => self.config.high_threshold = ratio,
            Priority::Critical => {}
        }
        self
    }

    /// Turns on CPU and memory shedding with these thresholds (feature `system`).
    #[cfg(feature = "system")]
    #[cfg_attr(docsrs, doc(cfg(feature = "system")))]
    pub fn system(mut self, system: super::SystemConfig) -> Self {
        self.config.system = Some(system);
        self
    }

    /// Reads CPU and memory from `source` instead of [`SysinfoSource`](super::SysinfoSource),
    /// turning system shedding on with the default thresholds if it is off (feature `system`).
    #[cfg(feature = "system")]
    #[cfg_attr(docsrs, doc(cfg(feature = "system")))]
    pub fn system_source(mut self, source: impl super::SystemMetricsSource) -> Self {
        self.config.system.get_or_insert_with(Default::default);
        self.source = Some(Box::new(source));
        self
    }

    /// Validates the name and configuration and builds the shedder. With system shedding on,
    /// this starts the sampler task, so it must run inside a Tokio runtime.
    pub fn build(self) -> Result<LoadShedder, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(LoadShedder::new(
            &self.name,
            start_monitor(&self.config, self.source)?,
            self.config,
        ))
    }
}

/// Starts the sampler when the config asks for system shedding.
#[cfg(feature = "system")]
fn start_monitor(config: &LoadShedderConfig, source: Source) -> Result<Monitor, ConfigError> {
    let Some(system) = &config.system else {
        return Ok(None);
    };
    let source = source.unwrap_or_else(|| Box::new(super::SysinfoSource::new()));
    super::system::Monitor::start(system, source).map(Some)
}

#[cfg(not(feature = "system"))]
fn start_monitor(_config: &LoadShedderConfig, (): Source) -> Result<Monitor, ConfigError> {
    Ok(())
}

impl fmt::Debug for LoadShedderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadShedderBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
