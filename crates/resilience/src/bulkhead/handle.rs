//! [`Bulkhead`]: the async shell around tokio's semaphore and the pure bookkeeping.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::permit::{Guard, Permit};
use super::{state, BulkheadBuilder, BulkheadConfig, BulkheadEvent, BulkheadMetrics};
use crate::admission::{Admission, AdmissionPermit};
use crate::classify::{judge_nested, EveryError, Outcome};
use crate::events::{self, Emitter, EventBus, EventKind};
use crate::registry::{Registered, Registry, RegistryError};
use crate::{ConfigError, Error, PatternKind, Rejection, RejectionReason};

/// A bulkhead: at most `max_concurrent` calls run at once, at most `max_waiting` more wait
/// for a slot in arrival order, the rest are rejected.
///
/// Cheap to clone; clones share one set of slots, so a bulkhead built once can be handed to
/// every task, service and layer that uses the same resource. See the [module docs](super).
#[derive(Clone)]
pub struct Bulkhead {
    pub(super) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    name: Arc<str>,
    /// The slots, and the FIFO queue of calls waiting for one. Permits taken from it are
    /// `forget`-ed and given back by our own [`Guard`], so the permit type does not leak into
    /// the guard (borrowed inside `call`, owned inside a [`Permit`]) and a live resize can
    /// withhold returning slots.
    semaphore: Semaphore,
    /// The configuration, under a lock only so that concurrent `set_config` calls resize one
    /// at a time; the hot path reads the atomics below.
    config: Mutex<BulkheadConfig>,
    max_waiting: AtomicU32,
    /// The wait timeout in nanoseconds, 0 for none (a zero timeout is invalid).
    wait_timeout: AtomicU64,
    /// Slots owed after a shrink: returning slots pay it off instead of going back.
    debt: AtomicU32,
    active: AtomicU32,
    waiting: AtomicU32,
    peak_active: AtomicU32,
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    /// Rejections by reason: capacity full, queue full, wait timeout.
    rejected: [AtomicU64; 3],
    wait_nanos: AtomicU64,
    peak_wait_nanos: AtomicU64,
    emitter: Emitter,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn reason_index(reason: RejectionReason) -> usize {
    match reason {
        RejectionReason::CapacityFull => 0,
        RejectionReason::QueueFull => 1,
        _ => 2,
    }
}

impl Bulkhead {
    /// Starts building a bulkhead named `name`.
    pub fn builder(name: impl Into<String>) -> BulkheadBuilder {
        BulkheadBuilder::new(name.into())
    }

    /// A bulkhead from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: BulkheadConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: BulkheadConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                semaphore: Semaphore::new(config.max_concurrent as usize),
                max_waiting: AtomicU32::new(config.max_waiting),
                wait_timeout: AtomicU64::new(config.wait_timeout.map_or(0, nanos)),
                config: Mutex::new(config),
                debt: AtomicU32::new(0),
                active: AtomicU32::new(0),
                waiting: AtomicU32::new(0),
                peak_active: AtomicU32::new(0),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                ignored: AtomicU64::new(0),
                rejected: Default::default(),
                wait_nanos: AtomicU64::new(0),
                peak_wait_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `operation` in a slot, waiting for one as configured; `Ok` counts as a success and
    /// `Err` as a failure in the metrics.
    ///
    /// The slot is released when the operation ends, fails, panics or when the returned future
    /// is dropped, at any await point: a cancelled wait leaves the queue, a cancelled call
    /// gives its slot back.
    pub async fn call<T, E, F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The free-slot path inline rather than through `admit`: each level of async
        // nesting costs a copy of the whole future on the hot path.
        let started = match self.inner.try_enter() {
            Some(started) => started,
            None => self.inner.wait().await?,
        };
        let guard = Guard::new(&*self.inner, started);
        let result = operation().await;
        guard.finish(if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        });
        result.map_err(Error::Inner)
    }

    /// Runs an operation that already returns this crate's [`Error`], such as an inner pattern
    /// of a pipeline. Errors pass through unchanged; an inner rejection counts as neither
    /// success nor failure.
    pub async fn execute<T, E, F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        let started = match self.inner.try_enter() {
            Some(started) => started,
            None => self.inner.wait().await?,
        };
        let guard = Guard::new(&*self.inner, started);
        let result = operation().await;
        let (outcome, result) =
            judge_nested(&EveryError, result, PatternKind::Bulkhead, &self.inner.name);
        guard.finish(outcome);
        result
    }

    /// Waits for a slot as configured (queue, wait timeout) and returns it as a [`Permit`],
    /// for callers that run the work themselves. Dropping the future gives up the place in
    /// the queue.
    pub async fn acquire(&self) -> Result<Permit, Rejection> {
        let started = match self.inner.try_enter() {
            Some(started) => started,
            None => self.inner.wait().await?,
        };
        Ok(Permit::new(Guard::new(self.clone(), started)))
    }

    /// Takes a free slot without waiting, or fails with
    /// [`CapacityFull`](RejectionReason::CapacityFull) (whether or not a queue is configured:
    /// this call never queues).
    pub fn try_acquire(&self) -> Result<Permit, Rejection> {
        match self.inner.try_enter() {
            Some(started) => Ok(Permit::new(Guard::new(self.clone(), started))),
            None => Err(self.inner.reject(RejectionReason::CapacityFull)),
        }
    }

    /// Waits for a slot without trying the free-slot path first (for the tower layer, which
    /// has just tried it).
    #[cfg(feature = "tower")]
    pub(super) async fn wait_owned(self) -> Result<Permit, Rejection> {
        let started = self.inner.wait().await?;
        Ok(Permit::new(Guard::new(self, started)))
    }

    /// Takes a free slot without waiting and without counting a rejection when there is none.
    #[cfg(feature = "tower")]
    pub(super) fn try_enter(&self) -> Option<Permit> {
        let started = self.inner.try_enter()?;
        Some(Permit::new(Guard::new(self.clone(), started)))
    }

    /// Calls running now.
    pub fn active(&self) -> u32 {
        self.inner.active.load(Relaxed)
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> u32 {
        self.inner.waiting.load(Relaxed)
    }

    /// Free slots now.
    pub fn available_slots(&self) -> u32 {
        u32::try_from(self.inner.semaphore.available_permits()).unwrap_or(u32::MAX)
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.inner.semaphore.available_permits() == 0
    }

    /// A snapshot of the counters, with the seed's field names.
    pub fn metrics(&self) -> BulkheadMetrics {
        let inner = &*self.inner;
        let load = |counter: &AtomicU64| counter.load(Relaxed);
        let config = *inner.lock_config();
        let [capacity_full, queue_full, wait_timeout] = inner.rejected.each_ref().map(load);
        let (successes, failures, ignored) = (
            load(&inner.successes),
            load(&inner.failures),
            load(&inner.ignored),
        );
        let active = inner.active.load(Relaxed);
        let accepted = successes + failures + ignored + u64::from(active);
        let rejected = capacity_full + queue_full + wait_timeout;
        let total_wait_time = Duration::from_nanos(load(&inner.wait_nanos));
        BulkheadMetrics {
            name: inner.name.to_string(),
            max_concurrent: config.max_concurrent,
            max_waiting: config.max_waiting,
            total_requests: accepted + rejected,
            accepted_requests: accepted,
            successful_requests: successes,
            failed_requests: failures,
            ignored_requests: ignored,
            rejected_requests: rejected,
            rejected_capacity_full: capacity_full,
            rejected_queue_full: queue_full,
            rejected_wait_timeout: wait_timeout,
            current_active: active,
            current_waiting: inner.waiting.load(Relaxed),
            available_slots: self.available_slots(),
            peak_active: inner.peak_active.load(Relaxed),
            total_wait_time,
            average_wait_time: state::average(total_wait_time, accepted),
            peak_wait_time: Duration::from_nanos(load(&inner.peak_wait_nanos)),
            rejection_rate: state::ratio(rejected, accepted + rejected),
            utilization: state::ratio(u64::from(active), u64::from(config.max_concurrent)),
        }
    }

    /// Zeroes the counters (the seed's `reset_metrics`). Calls running now still count when
    /// they end, so the totals keep adding up; the peak restarts from the calls running now.
    pub fn reset_metrics(&self) {
        let inner = &*self.inner;
        for counter in [
            &inner.successes,
            &inner.failures,
            &inner.ignored,
            &inner.wait_nanos,
            &inner.peak_wait_nanos,
        ]
        .into_iter()
        .chain(&inner.rejected)
        {
            counter.store(0, Relaxed);
        }
        inner.peak_active.store(inner.active.load(Relaxed), Relaxed);
    }

    /// The current configuration.
    pub fn config(&self) -> BulkheadConfig {
        *self.inner.lock_config()
    }

    /// Replaces the configuration at run time, keeping the counters, events and listeners.
    ///
    /// More slots are usable at once, and go to queued calls first. Fewer slots take effect
    /// as running calls finish: a returning slot is withheld until the new limit holds. Calls
    /// already queued stay queued when `max_waiting` shrinks; the new wait timeout applies to
    /// calls that start waiting from now on.
    pub fn set_config(&self, config: BulkheadConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = &*self.inner;
        let mut current = inner.lock_config();
        inner.resize(current.max_concurrent, config.max_concurrent);
        inner.max_waiting.store(config.max_waiting, Relaxed);
        inner
            .wait_timeout
            .store(config.wait_timeout.map_or(0, nanos), Relaxed);
        if current.max_concurrent != config.max_concurrent {
            tracing::info!(target: "resilience::bulkhead", bulkhead = %inner.name,
                from = current.max_concurrent, to = config.max_concurrent, "resized");
        }
        *current = config;
        Ok(())
    }

    /// Changes only `max_concurrent`; see [`set_config`](Self::set_config).
    pub fn set_max_concurrent(&self, max_concurrent: u32) -> Result<(), ConfigError> {
        self.set_config(BulkheadConfig {
            max_concurrent,
            ..self.config()
        })
    }

    /// This bulkhead's own listeners; events also reach [`events::global()`].
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    fn lock_config(&self) -> MutexGuard<'_, BulkheadConfig> {
        // Nothing panics under this lock; a poisoned one still holds a valid config.
        self.config
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn wait_timeout(&self) -> Option<Duration> {
        match self.wait_timeout.load(Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The uncontended path: one `try_acquire` and a few relaxed atomics; no lock, no
    /// allocation, no clock read unless a listener wants release events.
    #[inline]
    pub(super) fn try_enter(&self) -> Option<Option<Instant>> {
        let permit = self.semaphore.try_acquire().ok()?;
        permit.forget();
        Some(self.entered(Duration::ZERO, None))
    }

    /// Waits in the semaphore's FIFO queue; `Ok` carries the time the slot was taken (see
    /// [`Guard`]). The place in the queue is an RAII guard on the waiting count, so a
    /// cancelled or timed-out wait can never leave the count behind.
    pub(super) async fn wait(&self) -> Result<Option<Instant>, Rejection> {
        let place = match Place::join(&self.waiting, self.max_waiting.load(Relaxed)) {
            Ok(place) => place,
            Err(reason) => return Err(self.reject(reason)),
        };
        let since = Instant::now();
        let deadline = self.wait_timeout().map(|limit| since + limit);
        let acquired = match deadline {
            None => Some(self.semaphore.acquire().await),
            // `timeout_at` polls the acquire before the timer, so a slot handed over at the
            // very instant the wait expires is taken, not wasted.
            Some(deadline) => tokio::time::timeout_at(deadline, self.semaphore.acquire())
                .await
                .ok(),
        };
        drop(place);
        let now = Instant::now();
        match acquired {
            // Handed over after the deadline, before this task ran again: too late for this
            // call, so the slot goes straight on to the next waiter. No call is ever admitted
            // after waiting longer than the wait timeout.
            Some(Ok(permit)) if deadline.is_some_and(|deadline| now > deadline) => {
                permit.forget();
                self.return_slot();
                Err(self.reject(RejectionReason::WaitTimeout))
            }
            Some(Ok(permit)) => {
                permit.forget();
                Ok(self.entered(now - since, Some(now)))
            }
            // The semaphore is never closed; were it, no slot would ever come.
            Some(Err(_)) => Err(self.reject(RejectionReason::CapacityFull)),
            None => Err(self.reject(RejectionReason::WaitTimeout)),
        }
    }

    /// Counts and announces a call that just took a slot after waiting `waited`.
    fn entered(&self, waited: Duration, now: Option<Instant>) -> Option<Instant> {
        let active = self.active.fetch_add(1, Relaxed) + 1;
        if active > self.peak_active.load(Relaxed) {
            self.peak_active.fetch_max(active, Relaxed);
        }
        if !waited.is_zero() {
            let waited = nanos(waited);
            self.wait_nanos.fetch_add(waited, Relaxed);
            self.peak_wait_nanos.fetch_max(waited, Relaxed);
        }
        self.emitter.emit(|| BulkheadEvent::BulkheadAccepted {
            active,
            waiting: self.waiting.load(Relaxed),
            waited,
        });
        // How long the slot is held is only ever reported in `bulkhead_released`: read the
        // clock for it only when someone listens, so the free-slot path reads no clock.
        now.or_else(|| self.wants(EventKind::BulkheadReleased).then(Instant::now))
    }

    fn wants(&self, kind: EventKind) -> bool {
        (self.emitter.local().wanted() | events::global().wanted()) & kind.bit() != 0
    }

    /// Gives a slot back, counting how the call went.
    pub(super) fn release(&self, started: Option<Instant>, outcome: Outcome) {
        match outcome {
            Outcome::Success => &self.successes,
            Outcome::Failure => &self.failures,
            Outcome::Ignored => &self.ignored,
        }
        .fetch_add(1, Relaxed);
        let active = self.active.fetch_sub(1, Relaxed) - 1;
        self.return_slot();
        self.emitter.emit(|| BulkheadEvent::BulkheadReleased {
            active,
            held: started.map_or(Duration::ZERO, |at| at.elapsed()),
        });
    }

    fn return_slot(&self) {
        let mut debt = self.debt.load(Relaxed);
        loop {
            let (give_back, owed) = state::on_release(debt);
            if give_back {
                // To the longest waiter if there is one (tokio hands it over directly).
                self.semaphore.add_permits(1);
                return;
            }
            match self
                .debt
                .compare_exchange_weak(debt, owed, Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => debt = actual,
            }
        }
    }

    /// Moves from `from` to `to` slots. Called under the config lock, so resizes never
    /// interleave; releases may, and each step keeps "free + held = limit + debt".
    fn resize(&self, from: u32, to: u32) {
        if to > from {
            let mut add = 0;
            let _ = self.debt.fetch_update(Relaxed, Relaxed, |debt| {
                let (added, owed) = state::grow(to - from, debt);
                add = added;
                Some(owed)
            });
            self.semaphore.add_permits(add as usize);
        } else if to < from {
            let removed = from - to;
            let forgotten = self.semaphore.forget_permits(removed as usize);
            let forgotten = u32::try_from(forgotten).unwrap_or(removed);
            let _ = self.debt.fetch_update(Relaxed, Relaxed, |debt| {
                Some(state::shrink(removed, forgotten, debt))
            });
        }
    }

    pub(super) fn reject(&self, reason: RejectionReason) -> Rejection {
        self.rejected[reason_index(reason)].fetch_add(1, Relaxed);
        let (active, waiting) = (self.active.load(Relaxed), self.waiting.load(Relaxed));
        tracing::debug!(target: "resilience::bulkhead", bulkhead = %self.name, %reason, active, waiting, "call rejected");
        self.emitter.emit(|| BulkheadEvent::BulkheadRejected {
            reason,
            active,
            waiting,
        });
        // No honest `retry_after`: when a slot frees depends on calls still running.
        Rejection::new(PatternKind::Bulkhead, Arc::clone(&self.name), reason, None)
    }
}

/// A place in the queue: counted in `waiting` while it lives.
struct Place<'a>(&'a AtomicU32);

impl<'a> Place<'a> {
    fn join(waiting: &'a AtomicU32, max_waiting: u32) -> Result<Self, RejectionReason> {
        let mut current = waiting.load(Relaxed);
        loop {
            let next = state::join_queue(current, max_waiting)?;
            match waiting.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return Ok(Self(waiting)),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Admission for Bulkhead {
    type Permit = Permit;

    fn admit(&self) -> impl Future<Output = Result<Permit, Rejection>> + Send {
        self.acquire()
    }
}

impl AdmissionPermit for Permit {
    /// The outcome feeds `successful_requests` and `failed_requests`.
    fn wants_outcome(&self) -> bool {
        true
    }

    fn complete(self, outcome: Outcome) {
        self.record(outcome);
    }
}

impl Registered for Bulkhead {
    type Config = BulkheadConfig;
    type Metrics = BulkheadMetrics;

    fn create(name: &str, config: BulkheadConfig) -> Result<Self, ConfigError> {
        Self::from_config(name, config)
    }

    fn registered_name(&self) -> &str {
        self.name()
    }

    fn current_config(&self) -> BulkheadConfig {
        self.config()
    }

    fn snapshot(&self) -> BulkheadMetrics {
        self.metrics()
    }
}

/// The bulkhead called `name` in the process-wide [registry](Registry::global), created with
/// `config` if there is none (the seed's `get_bulkhead`). Unlike the seed, asking for an
/// existing name with a different config fails instead of silently ignoring it.
pub fn get_bulkhead(name: &str, config: BulkheadConfig) -> Result<Bulkhead, RegistryError> {
    Registry::<Bulkhead>::global().get_or_create(name, config)
}

impl std::borrow::Borrow<Inner> for Bulkhead {
    fn borrow(&self) -> &Inner {
        &self.inner
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("config", &self.config())
            .finish_non_exhaustive()
    }
}
