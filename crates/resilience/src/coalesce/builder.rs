//! [`CoalesceBuilder`]: the front door to a configured coalescer.

use std::marker::PhantomData;

use super::{CoalesceConfig, Coalescer};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`Coalescer`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::coalesce::Coalescer;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let users = Coalescer::<u64, String, std::io::Error>::builder("users")
///     .max_keys(1_000)
///     .build()?;
/// assert_eq!(users.config().max_keys, 1_000);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct CoalesceBuilder<K, T, E> {
    name: String,
    config: CoalesceConfig,
    types: PhantomData<fn(K) -> (T, E)>,
}

impl<K, T, E> CoalesceBuilder<K, T, E> {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: CoalesceConfig::default(),
            types: PhantomData,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: CoalesceConfig) -> Self {
        self.config = config;
        self
    }

    /// How many keys may be in flight at once (10,000 by default).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.config.max_keys = max_keys;
        self
    }

    /// Validates the name and configuration and builds the coalescer.
    pub fn build(self) -> Result<Coalescer<K, T, E>, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(Coalescer::new_validated(&self.name, self.config))
    }
}

impl<K, T, E> std::fmt::Debug for CoalesceBuilder<K, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoalesceBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}
