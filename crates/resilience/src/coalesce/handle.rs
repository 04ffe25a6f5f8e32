//! [`Coalescer`]: the async shell around the in-flight map and the flight rules.

use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use super::map::{lock, Joined, Map, Shared, Ticket};
use super::state::{Outcome, Step};
use super::{CoalesceBuilder, CoalesceConfig, CoalesceEvent, CoalesceMetrics};
use crate::events::{Emitter, EventBus};
use crate::{ConfigError, Error, PatternKind, Rejection, RejectionReason};

/// Runs one execution per key at a time and shares its result with every caller that asked
/// for the same key meanwhile (single-flight).
///
/// `K` is the key, and the operations return `Result<T, E>`; followers receive clones, so
/// `T` and `E` are `Clone` (wrap them in an `Arc` when they are not). Cheap to clone; clones
/// share one map, one set of counters and one set of listeners. See the
/// [module docs](super) for how it decides.
pub struct Coalescer<K, T, E> {
    inner: Arc<Inner<K, T, E>>,
}

struct Inner<K, T, E> {
    name: Arc<str>,
    config: CoalesceConfig,
    map: Map<K, Result<T, E>>,
    in_flight: AtomicUsize,
    executions: AtomicU64,
    coalesced: AtomicU64,
    takeovers: AtomicU64,
    panics: AtomicU64,
    rejections: AtomicU64,
    forgotten: AtomicU64,
    emitter: Emitter,
}

impl<K, T, E> Clone for Coalescer<K, T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, T, E> Coalescer<K, T, E> {
    pub(super) fn new_validated(name: &str, config: CoalesceConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                config,
                map: Map::new(),
                in_flight: AtomicUsize::new(0),
                executions: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
                takeovers: AtomicU64::new(0),
                panics: AtomicU64::new(0),
                rejections: AtomicU64::new(0),
                forgotten: AtomicU64::new(0),
            }),
        }
    }

    /// Starts building a coalescer named `name`.
    pub fn builder(name: impl Into<String>) -> CoalesceBuilder<K, T, E> {
        CoalesceBuilder::new(name.into())
    }

    /// The coalescer's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its configuration.
    pub fn config(&self) -> CoalesceConfig {
        self.inner.config
    }

    /// This coalescer's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> CoalesceMetrics {
        let inner = &*self.inner;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CoalesceMetrics {
            name: inner.name.to_string(),
            max_keys: inner.config.max_keys,
            in_flight_keys: inner.in_flight.load(Ordering::Relaxed),
            executions: load(&inner.executions),
            coalesced_calls: load(&inner.coalesced),
            takeovers: load(&inner.takeovers),
            panics: load(&inner.panics),
            rejected_calls: load(&inner.rejections),
            forgotten_keys: load(&inner.forgotten),
        }
    }

    /// Sets every counter back to zero; the in-flight gauge stays.
    pub fn reset_metrics(&self) {
        let inner = &*self.inner;
        crate::metrics::reset_counters([
            &inner.executions,
            &inner.coalesced,
            &inner.takeovers,
            &inner.panics,
            &inner.rejections,
            &inner.forgotten,
        ]);
    }

    /// How many keys are in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }
}

impl<K: Hash + Eq, T, E> Coalescer<K, T, E> {
    /// A coalescer from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: CoalesceConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    /// Runs `operation` for `key`, or, if an execution for `key` is already in flight, waits
    /// for it and returns a clone of its result without calling `operation`.
    ///
    /// * the operation's result: `Ok` as is, its error as [`Error::Inner`], for the caller
    ///   that ran it and every caller that joined;
    /// * a new key while `max_keys` keys are in flight: [`Error::Rejected`] with
    ///   [`CapacityFull`](RejectionReason::CapacityFull), and `operation` is not called;
    /// * the execution it joined panicked: [`Error::Rejected`] with
    ///   [`LeaderPanicked`](RejectionReason::LeaderPanicked). The caller that ran the
    ///   operation gets the panic itself, as without coalescing.
    ///
    /// Dropping the returned future is always safe: a dropped follower just stops waiting; a
    /// dropped leader hands the key to a waiting follower, which runs its own `operation`
    /// (see the [module docs](super#cancellation)).
    pub async fn call<F, Fut>(&self, key: K, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Clone,
        E: Clone,
    {
        self.call_shared(key, operation).await.0
    }

    /// [`call`](Self::call), also telling whether the result was shared with other callers
    /// (Go's `shared` flag): true for every follower, and for a leader whose result went to at
    /// least one follower.
    pub async fn call_shared<F, Fut>(&self, key: K, operation: F) -> (Result<T, Error<E>>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Clone,
        E: Clone,
    {
        let inner = &*self.inner;
        match inner.map.join(key, || inner.admit()) {
            Joined::Lead(ticket) => {
                inner.executions.fetch_add(1, Ordering::Relaxed);
                inner.emitter.emit(|| CoalesceEvent::LeaderStarted);
                inner.lead(ticket, operation).await
            }
            Joined::Follow(ticket, flight, slot) => {
                inner.coalesced.fetch_add(1, Ordering::Relaxed);
                inner.emitter.emit(|| CoalesceEvent::FollowerJoined);
                let mut follower = Follower {
                    inner,
                    ticket,
                    flight,
                    slot,
                    waiting: true,
                };
                let step =
                    poll_fn(
                        |cx| match lock(&follower.flight).poll(follower.slot, cx.waker()) {
                            Step::Wait => Poll::Pending,
                            step => Poll::Ready(step),
                        },
                    )
                    .await;
                follower.waiting = false;
                match step {
                    Step::Done(Outcome::Value(result)) => (result.map_err(Error::Inner), true),
                    Step::Done(Outcome::Panicked) => (Err(inner.panicked()), true),
                    Step::Wait => unreachable!("a waiting step is `Pending`, never returned"),
                    Step::Lead => {
                        inner.executions.fetch_add(1, Ordering::Relaxed);
                        inner.takeovers.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(target: "resilience::coalesce", coalescer = %inner.name, "a follower took over from a dropped leader");
                        inner.emitter.emit(|| CoalesceEvent::LeaderTakenOver);
                        let (result, _) = inner.lead(ticket, operation).await;
                        (result, true)
                    }
                }
            }
            Joined::Full => {
                inner.rejections.fetch_add(1, Ordering::Relaxed);
                inner.emitter.emit(|| CoalesceEvent::Rejected);
                let rejection = Rejection::new(
                    PatternKind::Coalesce,
                    Arc::clone(&inner.name),
                    RejectionReason::CapacityFull,
                    None,
                );
                (Err(Error::Rejected(rejection)), false)
            }
        }
    }

    /// Forgets `key`: the next call for it starts a new execution instead of joining the one
    /// in flight (Go's `Forget`). Callers already waiting still get the current execution's
    /// result. This is the one way two executions for a key can overlap, and only because it
    /// was asked for. Returns whether `key` was in flight.
    pub fn forget<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let forgotten = self.inner.map.forget(key);
        if forgotten {
            self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.inner.forgotten.fetch_add(1, Ordering::Relaxed);
        }
        forgotten
    }

    /// Whether an execution for `key` is in flight (and a call for it now would join).
    pub fn is_in_flight<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.map.contains(key)
    }
}

impl<K: Hash + Eq, T, E> Inner<K, T, E> {
    /// Counts a new key in, unless `max_keys` are in flight. Runs under the shard lock.
    fn admit(&self) -> bool {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= self.config.max_keys {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn left_map(&self, removed: bool) {
        if removed {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn panicked(&self) -> Error<E> {
        Error::Rejected(Rejection::new(
            PatternKind::Coalesce,
            Arc::clone(&self.name),
            RejectionReason::LeaderPanicked,
            None,
        ))
    }

    /// Runs the operation as the key's one execution and shares its result.
    async fn lead<F, Fut>(&self, ticket: Ticket, operation: F) -> (Result<T, Error<E>>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Clone,
        E: Clone,
    {
        let mut leader = Leader {
            inner: self,
            ticket,
            running: true,
        };
        let result = operation().await;
        leader.running = false;
        let (followers, removed) = self.map.finish(ticket, || Outcome::Value(result.clone()));
        self.left_map(removed);
        let ok = result.is_ok();
        self.emitter
            .emit(|| CoalesceEvent::Completed { followers, ok });
        (result.map_err(Error::Inner), followers > 0)
    }
}

/// The running leader; dropped while running, it hands the key over (cancelled) or fails its
/// followers (panicking).
struct Leader<'a, K: Hash + Eq, T, E> {
    inner: &'a Inner<K, T, E>,
    ticket: Ticket,
    running: bool,
}

impl<K: Hash + Eq, T, E> Drop for Leader<'_, K, T, E> {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let inner = self.inner;
        if std::thread::panicking() {
            // Dropped by unwinding: the operation (or the task around it) panicked. Running
            // it again in a follower would most likely panic again, so every follower gets
            // the typed error instead, and the panic goes on in this caller.
            let (followers, removed) = inner.map.finish(self.ticket, || Outcome::Panicked);
            inner.left_map(removed);
            inner.panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "resilience::coalesce", coalescer = %inner.name, followers, "the shared operation panicked");
            inner.emitter.emit(|| CoalesceEvent::Panicked { followers });
        } else {
            let removed = inner.map.abandon(self.ticket);
            inner.left_map(removed);
        }
    }
}

/// A waiting follower; dropped while waiting, it leaves the flight (and removes the key if it
/// was the last caller of a flight whose leader is gone).
struct Follower<'a, K: Hash + Eq, T, E> {
    inner: &'a Inner<K, T, E>,
    ticket: Ticket,
    flight: Shared<Result<T, E>>,
    slot: usize,
    waiting: bool,
}

impl<K: Hash + Eq, T, E> Drop for Follower<'_, K, T, E> {
    fn drop(&mut self) {
        if self.waiting {
            let removed = self
                .inner
                .map
                .drop_follower(self.ticket, &self.flight, self.slot);
            self.inner.left_map(removed);
        }
    }
}

impl<K, T, E> fmt::Debug for Coalescer<K, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl<K, T, E> crate::registry::Registered for Coalescer<K, T, E>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Config = CoalesceConfig;
    type Metrics = CoalesceMetrics;

    fn create(name: &str, config: CoalesceConfig) -> Result<Self, ConfigError> {
        Self::from_config(name, config)
    }

    fn registered_name(&self) -> &str {
        self.name()
    }

    fn current_config(&self) -> CoalesceConfig {
        self.config()
    }

    fn snapshot(&self) -> CoalesceMetrics {
        self.metrics()
    }
}
