//! [`CacheBuilder`]: the front door to a configured cache.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::handle::Weigher;
use super::{Cache, CacheConfig};
use crate::config::check;
use crate::ConfigError;

/// Builds a [`Cache`]; nothing is checked until [`build`](Self::build).
///
/// ```
/// use resilience::cache::Cache;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// // At most 64 MiB of bodies, each fresh for 30 s, kept for an hour in case of errors.
/// let cache = Cache::<String, Vec<u8>>::builder("bodies")
///     .max_weight(64 << 20, |_key: &String, body: &Vec<u8>| body.len() as u64)
///     .ttl(Duration::from_secs(30))
///     .stale_if_error(Duration::from_secs(3600))
///     .build()?;
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct CacheBuilder<K, V> {
    name: String,
    config: CacheConfig,
    weigher: Weigher<K, V>,
}

impl<K, V> CacheBuilder<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: CacheConfig::default(),
            weigher: Weigher(None),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
        self
    }

    /// Holds at most `entries` entries (10,000).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.config.max_entries = entries;
        self.weigher = Weigher(None);
        self
    }

    /// Holds entries of total weight at most `weight`, each weighed by `weigher` (say, its
    /// size in bytes; a weight below 1 counts as 1).
    pub fn max_weight<W>(mut self, weight: u64, weigher: W) -> Self
    where
        W: Fn(&K, &V) -> u64 + Send + Sync + 'static,
    {
        self.config.max_entries = weight;
        self.weigher = Weigher(Some(Arc::new(weigher)));
        self
    }

    /// Entries are fresh for `ttl` after they are stored (60 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// Entries are fresh until evicted, unless idle.
    pub fn no_ttl(mut self) -> Self {
        self.config.ttl = None;
        self
    }

    /// Entries stop being fresh after `idle` without a read (none).
    pub fn time_to_idle(mut self, idle: Duration) -> Self {
        self.config.time_to_idle = Some(idle);
        self
    }

    /// A failed call is answered by an entry that stopped being fresh less than `bound` ago
    /// (none).
    pub fn stale_if_error(mut self, bound: Duration) -> Self {
        self.config.stale_if_error = Some(bound);
        self
    }

    /// Validates the name and configuration and builds the cache.
    pub fn build(self) -> Result<Cache<K, V>, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        Ok(Cache::new(&self.name, self.config, self.weigher))
    }
}

impl<K, V> std::fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("weigher", &self.weigher.0.is_some())
            .finish()
    }
}
