//! [`KeyedCircuitBreaker`]: one breaker per key (an upstream host, a tenant, a shard),
//! created on demand from one config, in a bounded map.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerMetrics, OwnedPermit};
use crate::clock::Clock;
use crate::config::check;
use crate::{ConfigError, PatternKind, Rejection, RejectionReason};

/// A circuit breaker per key, made on first use from one [`CircuitBreakerConfig`], in a
/// map bounded by `max_keys`.
///
/// One failing upstream host should open its own circuit, not everyone's: a client talking
/// to many hosts keys its breakers by host, and each host is judged on its own calls.
///
/// **Bounded without a cleanup task.** When a new key finds the map full, the breakers that
/// carry no information are evicted first: **closed**, not used for `idle_after` (give or
/// take a 64th of it), and not held by anyone (no call in flight, no clone kept outside the
/// map). An open, half-open, forced-open or disabled breaker is never evicted, since
/// forgetting it would send traffic to a host known to be failing. If nothing can be evicted, the new key is refused with a
/// [`Rejection`] of reason [`CapacityFull`](RejectionReason::CapacityFull) (a circuit
/// breaker rejection, which retries do not retry): size `max_keys` for the keys you expect.
///
/// A lookup of an existing key takes a shared read lock, stamps the key's last use (one
/// atomic store, skipped while the last stamp is recent) and clones the breaker (one
/// reference count, which [`try_acquire_owned`](Self::try_acquire_owned) hands on to the
/// permit); only a new key takes the write lock. Cheap to clone; clones share the map.
///
/// Each breaker is named `"{name}:{key}"` in its events and metrics.
///
/// ```
/// use resilience::circuit_breaker::{CircuitState, KeyedCircuitBreaker};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hosts = KeyedCircuitBreaker::<String>::builder("hosts")
///     .failure_threshold(2)
///     .max_keys(1_000)
///     .idle_after(Duration::from_secs(300))
///     .build()?;
///
/// let slow = hosts.breaker("http://slow.example")?;
/// for _ in 0..2 {
///     let _ = slow.call(|| async { Err::<(), _>("503") }).await;
/// }
/// assert_eq!(hosts.breaker("http://slow.example")?.state(), CircuitState::Open);
/// assert_eq!(hosts.breaker("http://fast.example")?.state(), CircuitState::Closed);
/// # Ok(())
/// # }
/// ```
pub struct KeyedCircuitBreaker<K> {
    inner: Arc<Inner<K>>,
}

struct Inner<K> {
    name: Arc<str>,
    config: CircuitBreakerConfig,
    max_keys: usize,
    idle_after: Duration,
    /// A use is stamped only when the last stamp is older than this: a 64th of
    /// `idle_after`, so a key may be evicted that much early at most.
    touch_grain: u64,
    /// Last uses are nanoseconds since its epoch: one atomic word per key.
    clock: Clock,
    // A std RwLock: lookups share it, and it is never held across an await or while a
    // breaker emits events (the eviction test reads the state word, which emits nothing).
    map: RwLock<HashMap<K, Entry>>,
    evicted: AtomicU64,
}

struct Entry {
    breaker: CircuitBreaker,
    last_used: AtomicU64,
}

impl Entry {
    /// Stamps a use at `now`, unless the stamp is already within `grain` of it: eviction
    /// only needs to know that the key was used lately, and a busy key's lookups then only
    /// read its line instead of writing it from every core.
    fn touch(&self, now: u64, grain: u64) {
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) > grain {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

impl<K> KeyedCircuitBreaker<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// Starts building a keyed breaker named `name`.
    pub fn builder(name: impl Into<String>) -> KeyedCircuitBreakerBuilder<K> {
        KeyedCircuitBreakerBuilder {
            name: name.into(),
            config: CircuitBreakerConfig::default(),
            max_keys: 1024,
            idle_after: Duration::from_secs(300),
            key: std::marker::PhantomData,
        }
    }

    /// The breaker for `key`, made now if there is none.
    ///
    /// Fails only when the map is full and no breaker in it can be evicted (see the type's
    /// docs); the rejection says so and carries no `retry_after`.
    pub fn breaker<Q>(&self, key: &Q) -> Result<CircuitBreaker, Rejection>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + fmt::Display + ?Sized,
    {
        let now = self.inner.clock.nanos();
        if let Some(entry) = self.inner.read().get(key) {
            entry.touch(now, self.inner.touch_grain);
            return Ok(entry.breaker.clone());
        }
        let mut map = self.inner.write();
        // Another caller may have made it between the two locks.
        if let Some(entry) = map.get(key) {
            entry.touch(now, self.inner.touch_grain);
            return Ok(entry.breaker.clone());
        }
        if map.len() >= self.inner.max_keys && self.inner.evict(&mut map, now) == 0 {
            tracing::warn!(target: "resilience::circuit_breaker", breaker = %self.inner.name, max_keys = self.inner.max_keys, "every breaker is in use: new key refused");
            return Err(Rejection::new(
                PatternKind::CircuitBreaker,
                Arc::clone(&self.inner.name),
                RejectionReason::CapacityFull,
                None,
            ));
        }
        let name = format!("{}:{key}", self.inner.name);
        let breaker = CircuitBreaker::new(&name, self.inner.config.clone(), None);
        let entry = Entry {
            breaker: breaker.clone(),
            last_used: AtomicU64::new(now),
        };
        map.insert(key.to_owned(), entry);
        Ok(breaker)
    }

    /// A permit of the breaker for `key` (made now if there is none), as
    /// [`CircuitBreaker::try_acquire_owned`] hands out: the lookup's reference to the breaker
    /// becomes the permit's, so a call through the map takes one reference count, not two.
    ///
    /// Fails when the map is full (see [`breaker`](Self::breaker)) or when the key's breaker
    /// rejects the call.
    ///
    /// ```
    /// use resilience::circuit_breaker::KeyedCircuitBreaker;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hosts = KeyedCircuitBreaker::<String>::builder("hosts").build()?;
    /// let permit = hosts.try_acquire_owned("http://a.example")?;
    /// // ... make the call ...
    /// permit.success();
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned<Q>(&self, key: &Q) -> Result<OwnedPermit, Rejection>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + fmt::Display + ?Sized,
    {
        self.breaker(key)?.try_acquire_into()
    }

    /// The breaker for `key` if there is one; makes nothing and does not count as a use.
    pub fn get<Q>(&self, key: &Q) -> Option<CircuitBreaker>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner
            .read()
            .get(key)
            .map(|entry| entry.breaker.clone())
    }

    /// Evicts every breaker that is closed, idle for `idle_after` and held by no one; returns
    /// how many. New keys do this by themselves when the map is full; call it to shrink the
    /// map sooner.
    pub fn evict_idle(&self) -> usize {
        let now = self.inner.clock.nanos();
        self.inner.evict(&mut self.inner.write(), now)
    }

    /// How many breakers the map holds.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    /// Whether the map holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Breakers evicted since the map was built.
    pub fn evicted(&self) -> u64 {
        self.inner.evicted.load(Ordering::Relaxed)
    }

    /// A snapshot of every breaker, with its key.
    pub fn metrics(&self) -> Vec<(K, CircuitBreakerMetrics)>
    where
        K: Clone,
    {
        // Breakers cloned out first: `metrics()` may move a circuit to half-open and emit
        // events, which must not run under the map's lock.
        let breakers: Vec<(K, CircuitBreaker)> = self
            .inner
            .read()
            .iter()
            .map(|(key, entry)| (key.clone(), entry.breaker.clone()))
            .collect();
        breakers
            .into_iter()
            .map(|(key, breaker)| (key, breaker.metrics()))
            .collect()
    }

    /// The map's name, the prefix of every breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration every new breaker gets.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.inner.config
    }

    /// The most breakers the map holds.
    pub fn max_keys(&self) -> usize {
        self.inner.max_keys
    }

    /// How long a closed breaker must go unused before it may be evicted.
    pub fn idle_after(&self) -> Duration {
        self.inner.idle_after
    }
}

impl<K> Inner<K> {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, Entry>> {
        // Poison ignored: the map is only ever changed by whole inserts and removals.
        self.map.read().unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<K, Entry>> {
        self.map
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Removes every evictable breaker; returns how many.
    fn evict(&self, map: &mut HashMap<K, Entry>, now: u64) -> usize {
        let idle = u64::try_from(self.idle_after.as_nanos()).unwrap_or(u64::MAX);
        let before = map.len();
        map.retain(|_, entry| {
            let unused_for = now.saturating_sub(entry.last_used.load(Ordering::Relaxed));
            // One holder is the map itself; any other is a call in flight or a kept clone.
            let evictable = unused_for >= idle
                && entry.breaker.is_closed_now()
                && !entry.breaker.is_shared_beyond(1);
            !evictable
        });
        let removed = before - map.len();
        if removed > 0 {
            self.evicted.fetch_add(removed as u64, Ordering::Relaxed);
            tracing::debug!(target: "resilience::circuit_breaker", breaker = %self.name, removed, "idle closed breakers evicted");
        }
        removed
    }
}

impl<K> Clone for KeyedCircuitBreaker<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> fmt::Debug for KeyedCircuitBreaker<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("name", &self.inner.name)
            .field("keys", &self.inner.read().len())
            .field("max_keys", &self.inner.max_keys)
            .field("idle_after", &self.inner.idle_after)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyedCircuitBreaker`]; nothing is checked until [`build`](Self::build).
#[must_use]
pub struct KeyedCircuitBreakerBuilder<K> {
    name: String,
    config: CircuitBreakerConfig,
    max_keys: usize,
    idle_after: Duration,
    key: std::marker::PhantomData<fn() -> K>,
}

impl<K> KeyedCircuitBreakerBuilder<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// The configuration of every breaker (the default breaker's).
    pub fn config(mut self, config: CircuitBreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Each breaker opens after this many failures in a row (5).
    pub fn failure_threshold(mut self, threshold: u32) -> Self {
        self.config.detector = super::DetectorConfig::ConsecutiveFailures { threshold };
        self
    }

    /// How long each breaker stays open (60 s).
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.config.open_duration = duration;
        self
    }

    /// The most breakers kept at once (1024); at least 1.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// How long a closed breaker must go unused before it may be evicted (5 minutes).
    pub fn idle_after(mut self, idle_after: Duration) -> Self {
        self.idle_after = idle_after;
        self
    }

    /// Validates the name, the breakers' config and the bounds, and builds the map.
    pub fn build(self) -> Result<KeyedCircuitBreaker<K>, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        check::at_least(
            "max_keys",
            u32::try_from(self.max_keys).unwrap_or(u32::MAX),
            1,
        )?;
        check::duration("idle_after", self.idle_after)?;
        Ok(KeyedCircuitBreaker {
            inner: Arc::new(Inner {
                name: Arc::from(self.name.trim()),
                config: self.config,
                max_keys: self.max_keys,
                idle_after: self.idle_after,
                touch_grain: u64::try_from(self.idle_after.as_nanos() / 64).unwrap_or(u64::MAX),
                clock: Clock::new(),
                map: RwLock::new(HashMap::new()),
                evicted: AtomicU64::new(0),
            }),
        })
    }
}

impl<K> fmt::Debug for KeyedCircuitBreakerBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("max_keys", &self.max_keys)
            .field("idle_after", &self.idle_after)
            .finish()
    }
}
