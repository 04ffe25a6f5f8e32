//! [`RateLimiterBuilder`]: the front door to a configured limiter, keyed or direct.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use super::{Algorithm, Budgets, InMemoryRateLimiter, RateLimiterConfig, SketchSize};
use crate::config::{check, ConfigError};
use crate::Rate;

/// Builds a [`LocalRateLimiter`](super::LocalRateLimiter) or a [`DirectRateLimiter`](super::DirectRateLimiter); nothing is checked until
/// [`build`](Self::build). The rate is required.
///
/// ```
/// use resilience::rate_limit::{Algorithm, LocalRateLimiter};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let limiter = LocalRateLimiter::builder("api")
///     .rate("100/minute".parse()?)
///     .burst(20)
///     .algorithm(Algorithm::Gcra)
///     .max_keys(50_000)
///     .max_wait(Duration::from_millis(250))
///     .build()?;
/// assert_eq!(limiter.rate().burst(), 20);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct RateLimiterBuilder<L> {
    name: String,
    rate: Option<Rate>,
    burst: Option<u32>,
    algorithm: Algorithm,
    max_keys: usize,
    max_wait: Duration,
    sketch: SketchSize,
    limiter: PhantomData<fn() -> L>,
}

impl<L> RateLimiterBuilder<L> {
    pub(super) fn new(name: String) -> Self {
        let defaults = RateLimiterConfig::new(Rate::per_second(1));
        Self {
            name,
            rate: None,
            burst: None,
            algorithm: defaults.algorithm,
            max_keys: defaults.max_keys,
            max_wait: defaults.max_wait,
            sketch: defaults.sketch,
            limiter: PhantomData,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: RateLimiterConfig) -> Self {
        self.rate = Some(config.rate);
        self.burst = None;
        self.algorithm = config.algorithm;
        self.max_keys = config.max_keys;
        self.max_wait = config.max_wait;
        self.sketch = config.sketch;
        self
    }

    /// The rate `check` and `acquire` apply (required).
    pub fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Requests allowed at once; the rate's count unless set. Zero fails at `build`.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The algorithm (GCRA by default).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The most keys kept at once (10,000 by default, aioresilience's `max_limiters`).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// How long `acquire` may wait for the budget (zero by default: it never waits).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Keeps every key's counts in a count-min sketch of `width × depth` cells
    /// ([`Algorithm::SketchedWindow`]): fixed memory whatever the number of keys. Sets the
    /// algorithm; see [`SketchSize`] for the error bound.
    pub fn sketch(mut self, width: usize, depth: usize) -> Self {
        self.algorithm = Algorithm::SketchedWindow;
        self.sketch = SketchSize { width, depth };
        self
    }

    fn finish(self) -> Result<(String, RateLimiterConfig), ConfigError> {
        check::name(&self.name)?;
        let rate = Rate::from_builder(self.rate, self.burst)?;
        let config = RateLimiterConfig {
            rate,
            algorithm: self.algorithm,
            max_keys: self.max_keys,
            max_wait: self.max_wait,
            sketch: self.sketch,
        };
        config.validate()?;
        Ok((self.name, config))
    }
}

impl<B: Budgets> RateLimiterBuilder<InMemoryRateLimiter<B>> {
    /// Validates the name and configuration and builds the limiter.
    pub fn build(self) -> Result<InMemoryRateLimiter<B>, ConfigError> {
        let (name, config) = self.finish()?;
        Ok(InMemoryRateLimiter::new_validated(&name, config))
    }
}

impl<L> fmt::Debug for RateLimiterBuilder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("algorithm", &self.algorithm)
            .field("max_keys", &self.max_keys)
            .field("max_wait", &self.max_wait)
            .field("sketch", &self.sketch)
            .finish()
    }
}
