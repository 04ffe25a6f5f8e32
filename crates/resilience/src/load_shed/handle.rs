//! [`LoadShedder`]: the async shell around the pure decisions of `state.rs`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::instruments::Instruments;
use super::monitor::{self, Monitor};
use super::permit::{Acquire, OwnedPermit, Permit, Prioritized};
use super::queue::Queue;
use super::state::{self, Counts, Decision, Limits, ShedReason, SystemLoad};
use super::{
    LoadLevel, LoadShedderBuilder, LoadShedderConfig, LoadShedderEvent, LoadShedderMetrics,
    Priority,
};
use crate::classify::EveryError;
use crate::events::{Emitter, EventBus};
use crate::stage;
use crate::tally::Tally;
use crate::{ConfigError, Error, PatternKind, Rejection};

/// A load shedder: refuses work early when the service is overloaded, least important first.
///
/// Cheap to clone; clones share one set of slots and one queue. See the [module docs](super)
/// for how it decides.
#[derive(Clone)]
pub struct LoadShedder {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) name: Arc<str>,
    /// [`Counts`] packed: active requests and queue length, so the uncontended path is one
    /// compare-exchange and "nobody is queued" is part of the same word.
    pub(super) word: AtomicU64,
    pub(super) max_requests: AtomicU32,
    max_queue_depth: AtomicU32,
    /// [`Limits::most_within`] for low, normal and high priority.
    most_within: [AtomicU32; 3],
    wait_timeout: AtomicU64,
    /// Requests accepted (yes) and shed (no), counted per thread: an accepted request pays
    /// no atomic read-modify-write for its count.
    decisions: Tally,
    /// The waiters, oldest first. Every change of `queued` in `word` happens under this lock,
    /// together with the matching change here, so the two always agree.
    pub(super) queue: Mutex<Queue>,
    config: Mutex<LoadShedderConfig>,
    monitor: Monitor,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    pub(super) instruments: Instruments,
}

/// What the first admission attempt found.
pub(super) enum Admitted {
    Now,
    Queued {
        id: u64,
        grant: oneshot::Receiver<()>,
        deadline: Instant,
    },
    Shed(Rejection),
}

impl LoadShedder {
    /// Starts building a shedder named `name`.
    pub fn builder(name: impl Into<String>) -> LoadShedderBuilder {
        LoadShedderBuilder::new(name.into())
    }

    /// A shedder from a plain config, validated the same way as the builder's. With a
    /// `system` config it must be called inside a Tokio runtime (the sampler is a task).
    pub fn from_config(
        name: impl Into<String>,
        config: LoadShedderConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new(name: &str, monitor: Monitor, config: LoadShedderConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let inner = Inner {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name),
            name,
            word: AtomicU64::new(0),
            max_requests: AtomicU32::new(0),
            max_queue_depth: AtomicU32::new(0),
            most_within: Default::default(),
            wait_timeout: AtomicU64::new(0),
            decisions: Tally::new(),
            queue: Mutex::new(Queue::default()),
            config: Mutex::new(config),
            monitor,
        };
        inner.publish(&inner.lock_config());
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The shedder's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Asks for a slot for a request of `priority`: at once if it may run, after waiting in
    /// the FIFO queue (at most `wait_timeout`) if every slot is taken and the queue has room,
    /// or never, with a [`Rejection`] saying why.
    ///
    /// Dropping the future gives up the place in the queue (or the slot, if it was granted
    /// meanwhile): nothing leaks.
    pub fn acquire(&self, priority: Priority) -> Acquire {
        Acquire::new(self.clone(), priority)
    }

    /// Takes a slot only if one is free now, without queueing.
    ///
    /// The permit borrows the shedder; for one that must outlive the borrow (moved into a
    /// spawned task), use [`try_acquire_owned`](Self::try_acquire_owned).
    #[inline]
    pub fn try_acquire(&self, priority: Priority) -> Result<Permit<'_>, Rejection> {
        self.take_now(priority)?;
        Ok(Permit::new(self, priority))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that holds a reference to the
    /// shedder instead of borrowing it, so it can be moved into a task and outlive this
    /// handle. Taking and dropping the reference costs two atomic operations the borrowed
    /// permit does not pay.
    ///
    /// ```
    /// use resilience::load_shed::{LoadShedder, Priority};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let shedder = LoadShedder::builder("api").build()?;
    /// let permit = shedder.try_acquire_owned(Priority::High)?;
    /// tokio::spawn(async move {
    ///     let _released_when_dropped = permit;
    ///     // ... handle the request ...
    /// })
    /// .await?;
    /// assert_eq!(shedder.metrics().active_requests, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned(&self, priority: Priority) -> Result<OwnedPermit, Rejection> {
        self.take_now(priority)?;
        Ok(OwnedPermit::new(self.clone(), priority))
    }

    /// Takes a slot, counted as taken, if one is free now.
    #[inline]
    fn take_now(&self, priority: Priority) -> Result<(), Rejection> {
        match self.inner.admit(priority, false) {
            Admitted::Now => {
                self.took_slot();
                Ok(())
            }
            Admitted::Shed(rejection) => Err(rejection),
            Admitted::Queued { .. } => unreachable!("admit without queueing never queues"),
        }
    }

    /// Runs `operation` with a slot for `priority`, or rejects it without running it.
    pub async fn call<T, E, F, Fut>(&self, priority: Priority, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let stage = Prioritized {
            shedder: self,
            priority,
        };
        stage::call(&stage, operation).await
    }

    /// Runs an operation that already returns this crate's [`Error`] (an inner pattern of a
    /// pipeline); its errors pass through unchanged.
    pub async fn execute<T, E, F, Fut>(
        &self,
        priority: Priority,
        operation: F,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        let stage = Prioritized {
            shedder: self,
            priority,
        };
        stage::execute(&stage, &EveryError, operation).await
    }

    /// The load level now: from utilisation, or from CPU and memory if those are higher.
    pub fn load_level(&self) -> LoadLevel {
        let counts = self.inner.counts();
        self.inner.load_level(counts.active)
    }

    /// A snapshot with aioresilience's keys; `utilization` is a ratio in `0..=1`.
    pub fn metrics(&self) -> LoadShedderMetrics {
        let inner = &*self.inner;
        let counts = inner.counts();
        let max_requests = inner.max_requests.load(Ordering::Relaxed);
        let system = inner.system_load();
        let (total_accepted, total_shed) = inner.decisions.totals();
        LoadShedderMetrics {
            name: inner.name.to_string(),
            active_requests: counts.active,
            queue_depth: counts.queued,
            total_shed,
            total_accepted,
            load_level: inner.load_level(counts.active),
            max_requests,
            max_queue_depth: inner.max_queue_depth.load(Ordering::Relaxed),
            utilization: state::utilization(counts.active, max_requests),
            cpu_usage: system.map(|load| load.cpu),
            memory_usage: system.map(|load| load.memory),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> LoadShedderConfig {
        self.inner.lock_config().clone()
    }

    /// Replaces the configuration at run time, keeping requests, queue, counters and
    /// listeners. A raised cap admits waiting requests at once; a lowered one lets running
    /// requests finish and frees slots until the new cap is reached. System shedding cannot be
    /// turned on or off this way (the sampler task is started by `build`), but its thresholds
    /// and interval can change.
    pub fn set_config(&self, config: LoadShedderConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = &*self.inner;
        {
            let mut current = inner.lock_config();
            monitor::check_system_unchanged(&current, &config)?;
            inner.publish(&config);
            *current = config;
        }
        inner.admit_waiters();
        Ok(())
    }

    /// This shedder's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    pub(super) fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing user-written runs under this lock; a poisoned queue is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock_config(&self) -> MutexGuard<'_, LoadShedderConfig> {
        self.config
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Copies the numbers every decision reads into atomics.
    fn publish(&self, config: &LoadShedderConfig) {
        let limits = Limits::of(config);
        self.max_requests
            .store(limits.max_requests, Ordering::Relaxed);
        self.max_queue_depth
            .store(limits.max_queue_depth, Ordering::Relaxed);
        for (slot, most) in self.most_within.iter().zip(limits.most_within) {
            slot.store(most, Ordering::Relaxed);
        }
        let wait = u64::try_from(config.wait_timeout.as_nanos()).unwrap_or(u64::MAX);
        self.wait_timeout.store(wait, Ordering::Relaxed);
        self.configure_system(config);
    }

    fn limits(&self) -> Limits {
        Limits {
            max_requests: self.max_requests.load(Ordering::Relaxed),
            max_queue_depth: self.max_queue_depth.load(Ordering::Relaxed),
            most_within: self
                .most_within
                .each_ref()
                .map(|slot| slot.load(Ordering::Relaxed)),
        }
    }

    pub(super) fn counts(&self) -> Counts {
        Counts::unpack(self.word.load(Ordering::Acquire))
    }

    pub(super) fn active(&self) -> u32 {
        self.counts().active
    }

    pub(super) fn wait_timeout(&self) -> Duration {
        Duration::from_nanos(self.wait_timeout.load(Ordering::Relaxed))
    }

    fn load_level(&self, active: u32) -> LoadLevel {
        let utilization = state::utilization(active, self.max_requests.load(Ordering::Relaxed));
        let level = LoadLevel::from_utilization(utilization);
        match self.system_load() {
            Some(load) => level.max(state::system_level(load)),
            None => level,
        }
    }

    /// Decides a request: lock-free while nobody is queued, under the queue lock otherwise.
    /// With `queue` false, a request that would have to wait is shed instead.
    pub(super) fn admit(&self, priority: Priority, queue: bool) -> Admitted {
        let limits = self.limits();
        let system = self.system_load();
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let counts = Counts::unpack(word);
            match state::decide(counts, priority, &limits, system) {
                (Decision::Admit, after) => {
                    match self.exchange(word, after) {
                        Ok(()) => return self.accepted(priority, after.active),
                        Err(actual) => word = actual,
                    }
                    continue;
                }
                (Decision::Shed(reason), _) => return self.shed(priority, counts.active, reason),
                (Decision::Queue, _) if !queue => {
                    return self.shed(priority, counts.active, ShedReason::MaxRequests);
                }
                (Decision::Queue, _) => break,
            }
        }
        self.enqueue(priority, &limits, system)
    }

    /// Applies `change` to the counts atomically (for queue changes, made under the lock while
    /// releases, which take no lock, may still change `active`).
    pub(super) fn update(&self, change: fn(Counts) -> Counts) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(change(Counts::unpack(word)).pack())
            });
    }

    pub(super) fn exchange(&self, current: u64, after: Counts) -> Result<(), u64> {
        self.word
            .compare_exchange_weak(current, after.pack(), Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
    }

    pub(super) fn accepted(&self, priority: Priority, active: u32) -> Admitted {
        self.decisions.count(true);
        self.instruments.accepted(priority);
        self.emitter.emit(|| LoadShedderEvent::RequestAccepted {
            active,
            priority: priority.as_str(),
            load_level: self.load_level(active).as_str(),
        });
        Admitted::Now
    }

    pub(super) fn shed(&self, priority: Priority, active: u32, reason: ShedReason) -> Admitted {
        self.decisions.count(false);
        self.instruments.shed(priority);
        let load_level = self.load_level(active);
        tracing::debug!(target: "resilience::load_shed", shedder = %self.name, %priority, reason = reason.as_str(), %load_level, "request shed");
        self.emitter.emit(|| LoadShedderEvent::RequestShed {
            active,
            priority: priority.as_str(),
            load_level: load_level.as_str(),
            reason: reason.as_str(),
        });
        Admitted::Shed(Rejection::new(
            PatternKind::LoadShedder,
            Arc::clone(&self.name),
            reason.rejection_reason(),
            self.retry_after(reason),
        ))
    }

    fn retry_after(&self, reason: ShedReason) -> Option<Duration> {
        monitor::retry_after(&self.monitor, reason)
    }

    fn system_load(&self) -> Option<SystemLoad> {
        monitor::system_load(&self.monitor)
    }

    fn configure_system(&self, config: &LoadShedderConfig) {
        monitor::configure_system(&self.monitor, config);
    }
}

impl fmt::Debug for LoadShedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = self.inner.counts();
        f.debug_struct("LoadShedder")
            .field("name", &self.inner.name)
            .field("active", &counts.active)
            .field("queued", &counts.queued)
            .field("config", &*self.inner.lock_config())
            .finish()
    }
}

crate::registry::registered!(LoadShedder: LoadShedderConfig => LoadShedderMetrics);
