//! [`CircuitBreakerBuilder`]: the front door to a configured breaker.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::handle::StateCallback;
use super::{CircuitBreaker, CircuitBreakerConfig, CircuitState, DetectorConfig, FailureDetector};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`CircuitBreaker`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::circuit_breaker::{CircuitBreaker, DetectorConfig, Window};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let breaker = CircuitBreaker::builder("payments")
///     .detector(DetectorConfig::FailureRate {
///         window: Window::Calls(20),
///         threshold: 0.5,
///         min_calls: 10,
///     })
///     .open_duration(Duration::from_secs(30))
///     .success_threshold(3)
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct CircuitBreakerBuilder {
    name: String,
    config: CircuitBreakerConfig,
    on_state_change: Option<StateCallback>,
}

impl CircuitBreakerBuilder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: CircuitBreakerConfig::default(),
            on_state_change: None,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: CircuitBreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Opens after this many failures in a row (the default detector, threshold 5).
    pub fn failure_threshold(mut self, threshold: u32) -> Self {
        self.config.detector = DetectorConfig::ConsecutiveFailures { threshold };
        self
    }

    /// Chooses the failure detector.
    pub fn detector(mut self, detector: DetectorConfig) -> Self {
        self.config.detector = detector;
        self
    }

    /// Uses a custom failure detector made by `factory`.
    pub fn custom_detector<D, F>(self, factory: F) -> Self
    where
        D: FailureDetector,
        F: Fn() -> D + Send + Sync + 'static,
    {
        self.detector(DetectorConfig::custom(factory))
    }

    /// How long the circuit stays open before probing (aioresilience's `recovery_timeout`).
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.config.open_duration = duration;
        self
    }

    /// Grows the open duration by `multiplier` on each consecutive trip, up to `max`.
    pub fn open_duration_backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.config.open_duration_multiplier = multiplier;
        self.config.max_open_duration = Some(max);
        self
    }

    /// Successful probes that close a half-open circuit.
    pub fn success_threshold(mut self, threshold: u32) -> Self {
        self.config.success_threshold = threshold;
        self
    }

    /// Probes admitted at the same time while half-open.
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.config.half_open_max_calls = calls;
        self
    }

    /// A time limit for each call made through [`call`](CircuitBreaker::call); exceeding it
    /// cancels the call and counts as a failure.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.config.timeout = Some(limit);
        self
    }

    /// Called with `(from, to)` on every transition, after the breaker's lock is released.
    /// A panic in it is caught and reported to the [error handler](crate::set_error_handler).
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(CircuitState, CircuitState) + Send + Sync + 'static,
    {
        self.on_state_change = Some(Arc::new(callback));
        self
    }

    /// Validates the name and configuration and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(CircuitBreaker::new(
            &self.name,
            self.config,
            self.on_state_change,
        ))
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("on_state_change", &self.on_state_change.is_some())
            .finish()
    }
}
