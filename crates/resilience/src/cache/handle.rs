//! [`Cache`]: the handle, its store, and the two halves of a cached call (look up, then
//! store or fall back on a stale entry) shared by its methods and the tower future.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use super::state::{freshness, Freshness, Spans, NEVER};
use super::{CacheBuilder, CacheConfig, CacheEvent, CacheMetrics};
use crate::classify::{judge, Classify, EveryError, Outcome};
use crate::clock::Clock;
use crate::events::{Emitter, EventBus};
use crate::tally::Tally;
use crate::{ConfigError, Error, PatternKind};

/// A cache of results with a time to live: a call whose key has a fresh entry is answered
/// from it without running the operation.
///
/// Cheap to clone; clones share the entries, counters and listeners. See the
/// [module docs](super) for how it decides.
pub struct Cache<K, V> {
    inner: Arc<Inner<K, V>>,
}

/// What the store holds for a key.
#[derive(Clone)]
pub(super) struct Slot<V> {
    value: V,
    /// Fresh until then (its time to live), in ticks of the cache's clock.
    expires: u64,
    /// The last read, with a time-to-idle only (shared, so a hit can refresh it without
    /// writing the store).
    accessed: Option<Arc<AtomicU64>>,
}

/// Weighs entries for the store's bound: the user's weigher, or 1 each.
pub(super) struct Weigher<K, V>(pub(super) Option<Arc<WeighFn<K, V>>>);

pub(super) type WeighFn<K, V> = dyn Fn(&K, &V) -> u64 + Send + Sync;

impl<K, V> Clone for Weigher<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, V> quick_cache::Weighter<K, Slot<V>> for Weigher<K, V> {
    fn weight(&self, key: &K, slot: &Slot<V>) -> u64 {
        // A weight of zero would never be evicted: every entry weighs at least 1.
        self.0
            .as_ref()
            .map_or(1, |weigh| weigh(key, &slot.value).max(1))
    }
}

type Store<K, V> = quick_cache::sync::Cache<K, Slot<V>, Weigher<K, V>>;

/// The counters and listeners of a cache: not generic, so that the code counting a lookup is
/// compiled once, here, and the (rare) building of an event stays out of every call site.
struct Counters {
    /// Hits and misses: every lookup counts one, so they are counted per thread.
    lookups: Tally,
    stale: AtomicU64,
    emitter: Emitter,
}

impl Counters {
    /// A fresh entry answered.
    #[inline]
    fn hit(&self) {
        self.lookups.count(true);
        if self.emitter.wants(CacheEvent::CACHE_HIT) {
            self.emit(CacheEvent::CacheHit);
        }
    }

    /// The operation runs.
    #[inline]
    fn miss(&self) {
        self.lookups.count(false);
        if self.emitter.wants(CacheEvent::CACHE_MISS) {
            self.emit(CacheEvent::CacheMiss);
        }
    }

    #[cold]
    #[inline(never)]
    fn emit(&self, event: CacheEvent) {
        self.emitter.emit(|| event);
    }
}

struct Inner<K, V> {
    name: Arc<str>,
    config: CacheConfig,
    store: Store<K, V>,
    /// Entry ages are ticks since its epoch (see [`Clock`] for the source it reads).
    clock: Clock,
    /// The config's durations in the clock's ticks.
    spans: Spans,
    counters: Counters,
}

/// The result of looking a key up for a call.
pub(crate) enum Lookup<V> {
    /// A fresh entry: the answer.
    Hit(V),
    /// Run the operation; `stale` is an expired entry it may fall back on, with the time (in
    /// ticks) it stopped being fresh.
    Miss { stale: Option<(V, u64)> },
}

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// Starts building a cache named `name`.
    pub fn builder(name: impl Into<String>) -> CacheBuilder<K, V> {
        CacheBuilder::new(name.into())
    }

    /// A cache from a plain config, validated the same way as the builder's.
    pub fn from_config(name: impl Into<String>, config: CacheConfig) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new(name: &str, config: CacheConfig, weigher: Weigher<K, V>) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let capacity = config.max_entries;
        // With a weigher the capacity is a weight, not a count: do not reserve room for it.
        let estimated = match weigher.0 {
            Some(_) => capacity.min(4_096),
            None => capacity,
        };
        let estimated = usize::try_from(estimated).unwrap_or(usize::MAX);
        let clock = Clock::new();
        Self {
            inner: Arc::new(Inner {
                counters: Counters {
                    lookups: Tally::new(),
                    stale: AtomicU64::new(0),
                    emitter: Emitter::new(Arc::clone(&name)),
                },
                name,
                store: Store::with_weighter(estimated, capacity, weigher),
                spans: Spans::new(&config, |duration| clock.ticks_in(duration)),
                config,
                clock,
            }),
        }
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Answers from a fresh entry for `key`, or runs `fetch` and stores what it returns.
    ///
    /// Only results the call's classifier counts as successes are stored (every `Ok` here).
    /// If `fetch` fails and an entry expired less than `stale_if_error` ago, that entry
    /// answers instead. Concurrent calls missing the same key each run their own `fetch`
    /// (they are not coalesced); the last to finish leaves its value.
    pub fn get_or_fetch<'a, E, F, Fut>(
        &'a self,
        key: &'a K,
        fetch: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'a, K, V, E, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.get_or_fetch_with(&EveryError, key, fetch)
    }

    /// Like [`get_or_fetch`](Self::get_or_fetch), storing only what `classifier` counts as a
    /// success, and falling back on a stale entry only for what it counts as a failure (an
    /// ignored error, such as "not found", is returned as is).
    pub fn get_or_fetch_with<'a, E, C, F, Fut>(
        &'a self,
        classifier: &'a C,
        key: &'a K,
        fetch: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'a, K, V, E, C, F, Fut>
    where
        C: Classify<V, E>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        GetOrFetch {
            cache: self,
            classifier,
            key,
            state: Fetch::Start { fetch: Some(fetch) },
        }
    }

    /// The fresh entry for `key`, if any. Counts as a hit or a miss, as a call would.
    pub fn get(&self, key: &K) -> Option<V> {
        match self.lookup(key) {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss { .. } => None,
        }
    }

    /// Stores `value` for `key`, fresh from now.
    pub fn insert(&self, key: K, value: V) {
        let inner = &*self.inner;
        let now = inner.now();
        let spans = inner.spans;
        let slot = Slot {
            value,
            expires: now.saturating_add(spans.ttl),
            accessed: (spans.idle != NEVER).then(|| Arc::new(AtomicU64::new(now))),
        };
        inner.store.insert(key, slot);
    }

    /// Forgets the entry for `key`.
    pub fn invalidate(&self, key: &K) {
        self.inner.store.remove(key);
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.inner.store.clear();
    }

    /// Entries held now, expired ones not yet evicted included.
    pub fn len(&self) -> usize {
        self.inner.store.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.inner.store.is_empty()
    }

    /// Looks `key` up for a call: counts, emits, refreshes the idle time of a hit.
    ///
    /// Inlined into every call: a hit without a time-to-idle is told by one comparison
    /// (fresh until `expires`). Everything else (idle times, expired and stale entries) is
    /// decided by [`Inner::judge`]. Always inlined: left to itself the compiler calls it, and
    /// the call and its result passed through memory cost a hit about 2 ns.
    ///
    /// A cache whose entries never age does not read the clock. One that does reads it before
    /// the store, a miss included: the counter read is most of what a hit with a time to live
    /// costs beyond the store's lookup, as it does not overlap the store's locked atomic
    /// operations, and it delays the next of them least when it comes first (read after the
    /// lookup, a hit measured 2–4 ns slower).
    #[inline(always)]
    pub(crate) fn lookup(&self, key: &K) -> Lookup<V> {
        let inner = &*self.inner;
        let now = inner.now();
        let lookup = match inner.store.get(key) {
            Some(slot) => {
                if slot.accessed.is_none() && now < slot.expires {
                    Lookup::Hit(slot.value)
                } else {
                    inner.judge(key, slot, now)
                }
            }
            None => Lookup::Miss { stale: None },
        };
        match &lookup {
            Lookup::Hit(_) => inner.counters.hit(),
            Lookup::Miss { .. } => inner.counters.miss(),
        }
        lookup
    }

    /// Ends a missed call with the operation's `result`: stores a success, or answers a
    /// failure with the `stale` entry while it is within its bound.
    pub(crate) fn complete<E, C: Classify<V, E>>(
        &self,
        classifier: &C,
        key: &K,
        stale: Option<(V, u64)>,
        result: Result<V, E>,
    ) -> Result<V, Error<E>> {
        let inner = &*self.inner;
        match judge(classifier, &result, PatternKind::Cache, &inner.name) {
            Outcome::Success => {
                if let Ok(value) = &result {
                    self.insert(key.clone(), value.clone());
                }
            }
            Outcome::Failure => {
                if let Some((value, until)) = stale {
                    // Checked again now: the operation may have run past the bound.
                    let now = inner.now();
                    if let Freshness::Stale { expired_for } =
                        freshness(until, NEVER, now, inner.spans.stale)
                    {
                        let expired_for = inner.clock.duration_of(expired_for);
                        inner.counters.stale.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(target: "resilience::cache", cache = %inner.name, ?expired_for, "serving a stale entry for a failed call");
                        inner
                            .counters
                            .emitter
                            .emit(|| CacheEvent::CacheStale { expired_for });
                        return Ok(value);
                    }
                }
            }
            Outcome::Ignored => {}
        }
        result.map_err(Error::Inner)
    }

    /// A snapshot of the counters and the store's size.
    pub fn metrics(&self) -> CacheMetrics {
        let inner = &*self.inner;
        let (hits, misses) = inner.counters.lookups.totals();
        CacheMetrics {
            name: inner.name.to_string(),
            hits,
            misses,
            stale_hits: inner.counters.stale.load(Ordering::Relaxed),
            hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            entries: inner.store.len() as u64,
            weight: inner.store.weight(),
            capacity: inner.store.capacity(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// This cache's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.counters.emitter.local()
    }
}

pin_project! {
    /// A call of [`Cache::get_or_fetch_with`]: nothing happens before it is first polled; then
    /// a fresh entry answers at once, or `fetch` runs and [`Cache::complete`] ends the call.
    ///
    /// Made by hand rather than by an `async fn`, so that a hit is one small future polled
    /// once, with the lookup inlined into it.
    struct GetOrFetch<'a, K, V, C, F, Fut> {
        cache: &'a Cache<K, V>,
        classifier: &'a C,
        key: &'a K,
        #[pin]
        state: Fetch<F, Fut, V>,
    }
}

pin_project! {
    #[project = FetchProj]
    enum Fetch<F, Fut, V> {
        /// Not polled yet.
        Start { fetch: Option<F> },
        /// Missed: the operation runs, with the stale entry it may fall back on.
        Fetching {
            #[pin]
            future: Fut,
            stale: Option<(V, u64)>,
        },
        /// Answered.
        Done,
    }
}

impl<K, V, E, C, F, Fut> Future for GetOrFetch<'_, K, V, C, F, Fut>
where
    K: Eq + Hash + Clone,
    V: Clone,
    C: Classify<V, E>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
{
    type Output = Result<V, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                FetchProj::Start { fetch } => {
                    let fetch = fetch.take().expect("a new cache call holds its fetch");
                    match this.cache.lookup(this.key) {
                        Lookup::Hit(value) => {
                            this.state.set(Fetch::Done);
                            return Poll::Ready(Ok(value));
                        }
                        Lookup::Miss { stale } => {
                            let future = fetch();
                            this.state.set(Fetch::Fetching { future, stale });
                        }
                    }
                }
                FetchProj::Fetching { future, stale } => {
                    let result = ready!(future.poll(cx));
                    let stale = stale.take();
                    // The operation's future is dropped before its result is stored.
                    this.state.set(Fetch::Done);
                    return Poll::Ready(this.cache.complete(
                        *this.classifier,
                        this.key,
                        stale,
                        result,
                    ));
                }
                FetchProj::Done => panic!("cache future polled after completion"),
            }
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Inner<K, V> {
    /// Now, in ticks since the epoch; always 0 if entries never age, as nothing compares it
    /// then.
    #[inline]
    fn now(&self) -> u64 {
        if self.spans.age() {
            self.clock.ticks()
        } else {
            0
        }
    }

    /// What an entry that has an age is good for at `now`.
    fn judge(&self, key: &K, slot: Slot<V>, now: u64) -> Lookup<V> {
        let spans = self.spans;
        let idle_until = match &slot.accessed {
            Some(accessed) => accessed.load(Ordering::Relaxed).saturating_add(spans.idle),
            None => NEVER,
        };
        match freshness(slot.expires, idle_until, now, spans.stale) {
            Freshness::Fresh => {
                if let Some(accessed) = &slot.accessed {
                    accessed.fetch_max(now, Ordering::Relaxed);
                }
                Lookup::Hit(slot.value)
            }
            Freshness::Stale { expired_for } => {
                let until = now - expired_for;
                Lookup::Miss {
                    stale: Some((slot.value, until)),
                }
            }
            Freshness::Expired => {
                // Free its room now, unless a fresh value replaced it meanwhile.
                let expires = slot.expires;
                self.store
                    .remove_if(key, |current| current.expires == expires);
                Lookup::Miss { stale: None }
            }
        }
    }
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
