//! [`ChaosBuilder`]: the front door to a configured chaos instance.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::handle::{Behavior, Hooks};
use super::{Chaos, ChaosConfig};
use crate::config::check;
use crate::{ConfigError, ConfigProblem};

/// Builds a [`Chaos`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::chaos::Chaos;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let chaos = Chaos::<String, std::io::ErrorKind>::builder("inventory")
///     .fault(0.1, || std::io::ErrorKind::ConnectionReset)
///     .latency(0.5, Duration::from_millis(200))
///     .seed(42)
///     .build()?;
/// assert_eq!(chaos.config().fault_rate, 0.1);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct ChaosBuilder<T, E> {
    name: String,
    config: ChaosConfig,
    hooks: Hooks<T, E>,
}

impl<T, E> ChaosBuilder<T, E> {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: ChaosConfig::default(),
            hooks: Hooks::default(),
        }
    }

    /// Replaces the rates, latency, seed and switch (the functions set so far stay).
    pub fn config(mut self, config: ChaosConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces a share `rate` (0.0 to 1.0) of calls by the error `fault` makes; the
    /// operation is not called. The caller sees it as the operation's own error
    /// ([`Error::Inner`](crate::Error::Inner)), so the patterns around react as to a real one.
    pub fn fault(mut self, rate: f64, fault: impl Fn() -> E + Send + Sync + 'static) -> Self {
        self.config.fault_rate = rate;
        self.hooks.fault = Some(Arc::new(fault));
        self
    }

    /// Replaces a share `rate` of calls by the response `outcome` makes; the operation is not
    /// called.
    pub fn outcome(mut self, rate: f64, outcome: impl Fn() -> T + Send + Sync + 'static) -> Self {
        self.config.outcome_rate = rate;
        self.hooks.outcome = Some(Arc::new(outcome));
        self
    }

    /// Delays a share `rate` of calls by `latency` before they run.
    pub fn latency(mut self, rate: f64, latency: Duration) -> Self {
        self.config.latency_rate = rate;
        self.config.latency = latency;
        self
    }

    /// Runs the async hook `behavior` before a share `rate` of calls (then the call runs):
    /// to kill a connection, fill a disk, flip a flag in a test double.
    pub fn behavior<F, Fut>(mut self, rate: f64, behavior: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.config.behavior_rate = rate;
        let behavior: Behavior = Arc::new(move || Box::pin(behavior()));
        self.hooks.behavior = Some(behavior);
        self
    }

    /// Seeds the generator deciding injections: the same seed gives the same sequence of
    /// decisions (random by default).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Starts enabled (the default) or disabled; see [`Chaos::set_enabled`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// Validates the name and configuration and builds the instance. A fault, outcome or
    /// behaviour with a positive rate but no function (set through [`config`](Self::config))
    /// is refused, naming its rate.
    pub fn build(self) -> Result<Chaos<T, E>, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        let missing = |field, rate: f64, present: bool| {
            if rate > 0.0 && !present {
                return Err(ConfigError::new(
                    field,
                    ConfigProblem::Invalid("a positive rate needs its function".to_owned()),
                ));
            }
            Ok(())
        };
        missing(
            "fault_rate",
            self.config.fault_rate,
            self.hooks.fault.is_some(),
        )?;
        missing(
            "outcome_rate",
            self.config.outcome_rate,
            self.hooks.outcome.is_some(),
        )?;
        missing(
            "behavior_rate",
            self.config.behavior_rate,
            self.hooks.behavior.is_some(),
        )?;
        Ok(Chaos::new_validated(&self.name, self.config, self.hooks))
    }
}

impl<T, E> std::fmt::Debug for ChaosBuilder<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
