//! [`Backpressure`]: the async shell around the pure state machine.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::permit::{Permit, WaitGuard};
use super::state::{Arrival, Core, Marks, Patience, Switch};
use super::stream::BackpressureStream;
use super::{BackpressureBuilder, BackpressureConfig, BackpressureEvent, BackpressureMetrics};
use crate::admission::{Admission, AdmissionPermit};
use crate::events::{Emitter, EventBus};
use crate::registry::Registered;
use crate::{ConfigError, Error, PatternKind, Rejection, RejectionReason};

/// A backpressure controller: admits work freely until the high water mark, then makes
/// producers wait, in arrival order, until pending work falls to the low water mark.
///
/// Cheap to clone; clones share one pending count and one queue. See the
/// [module docs](super) for how it decides.
#[derive(Clone)]
pub struct Backpressure {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    name: Arc<str>,
    /// A std mutex, never held across an await: every critical section is a few pure
    /// decisions and, at most, waking the waiters they admit. Listeners run after unlocking.
    shared: Mutex<Shared>,
    /// Whether backpressure is on, copied out of the core under the lock after every
    /// change, so producers (and the stream adapter, before each pull) can ask without
    /// locking.
    active: AtomicBool,
    /// The configured wait timeout in nanoseconds, so `acquire` needs no second lock.
    wait_timeout: AtomicU64,
    rejected_backpressure: AtomicU64,
    rejected_wait_timeout: AtomicU64,
    emitter: Emitter,
}

pub(super) struct Shared {
    pub(super) core: Core<oneshot::Sender<()>>,
    config: BackpressureConfig,
    marks: Marks,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// How an arrival went, when it was not rejected.
pub(super) enum Arrived {
    Admitted(Permit),
    Queued(WaitGuard),
}

impl Backpressure {
    /// Starts building a controller named `name`.
    pub fn builder(name: impl Into<String>) -> BackpressureBuilder {
        BackpressureBuilder::new(name.into())
    }

    /// A controller from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: BackpressureConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: BackpressureConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                shared: Mutex::new(Shared {
                    core: Core::new(),
                    marks: Marks::from(&config),
                    config,
                }),
                active: AtomicBool::new(false),
                wait_timeout: AtomicU64::new(nanos(config.wait_timeout)),
                rejected_backpressure: AtomicU64::new(0),
                rejected_wait_timeout: AtomicU64::new(0),
            }),
        }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `operation` once admitted, waiting up to the configured `wait_timeout`; the slot
    /// is held until the operation ends or the future is dropped.
    pub async fn call<T, E, F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _permit = self.acquire().await?;
        operation().await.map_err(Error::Inner)
    }

    /// Runs an operation that already returns this crate's [`Error`], such as an inner pattern
    /// of a pipeline, once admitted. Errors pass through unchanged.
    pub async fn execute<T, E, F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        let _permit = self.acquire().await?;
        operation().await
    }

    /// Admission for one item of work, waiting up to the configured `wait_timeout`
    /// (5 s by default) while backpressure is on. See [`acquire_timeout`](Self::acquire_timeout).
    pub async fn acquire(&self) -> Result<Permit, Rejection> {
        self.acquire_timeout(self.wait_timeout()).await
    }

    /// The configured wait timeout.
    pub(super) fn wait_timeout(&self) -> Duration {
        Duration::from_nanos(self.inner.wait_timeout.load(Relaxed))
    }

    /// Admission for one item of work, waiting up to `timeout` while backpressure is on.
    ///
    /// * Admitted at once while backpressure is off.
    /// * While it is on, waits behind every earlier waiter, until pending work falls to the
    ///   low water mark and its turn comes; rejected with
    ///   [`WaitTimeout`](RejectionReason::WaitTimeout) exactly at `timeout` (a zero timeout
    ///   never waits).
    /// * Rejected at once with [`Backpressure`](RejectionReason::Backpressure) if it would have
    ///   to wait and cannot (zero timeout), or if `max_pending` items are already pending or
    ///   waiting ([`is_overloaded`](Self::is_overloaded)).
    ///
    /// Dropping the future leaves the queue; a slot granted at that very moment is handed on to
    /// the next waiter, never lost.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Permit, Rejection> {
        let patience = if timeout.is_zero() {
            Patience::Never
        } else {
            Patience::Queue
        };
        let mut guard = match self.arrive(patience)? {
            Arrived::Admitted(permit) => return Ok(permit),
            Arrived::Queued(guard) => guard,
        };
        let mut sleep = pin!(tokio::time::sleep_until(Instant::now() + timeout));
        // The grant is polled before the timer, so a slot granted at the very instant the
        // wait expires is taken, not wasted.
        let granted = poll_fn(|cx| match guard.poll_granted(cx) {
            Poll::Ready(granted) => Poll::Ready(Some(granted)),
            Poll::Pending => sleep.as_mut().poll(cx).map(|()| None),
        })
        .await;
        match granted {
            Some(granted) => granted,
            None => guard.expire(),
        }
    }

    /// Admission without waiting: rejected with [`Backpressure`](RejectionReason::Backpressure)
    /// while backpressure is on.
    pub fn try_acquire(&self) -> Result<Permit, Rejection> {
        match self.arrive(Patience::Never)? {
            Arrived::Admitted(permit) => Ok(permit),
            // `Never` is never told to wait; were it, dropping the guard leaves the queue.
            Arrived::Queued(guard) => {
                drop(guard);
                Err(self.inner.reject(RejectionReason::Backpressure))
            }
        }
    }

    /// Applies this controller to a stream of work: each item comes with its [`Permit`],
    /// and the source is not polled while backpressure is on. See [`BackpressureStream`].
    pub fn stream<S: futures_core::Stream>(&self, source: S) -> BackpressureStream<S> {
        BackpressureStream::new(source, self.clone())
    }

    /// Decides an arrival and, when it must wait, queues it.
    pub(super) fn arrive(&self, patience: Patience) -> Result<Arrived, Rejection> {
        let inner = &*self.inner;
        let mut shared = inner.lock();
        let marks = shared.marks;
        match shared.core.arrive(marks, patience) {
            Arrival::Admitted(switch) => {
                inner.publish(&shared);
                drop(shared);
                inner.announce(switch, marks);
                Ok(Arrived::Admitted(Permit::new(self.clone())))
            }
            Arrival::Wait => {
                // Only a producer that waits pays for its channel.
                let (sender, receiver) = oneshot::channel();
                let ticket = shared.core.enqueue(sender);
                drop(shared);
                Ok(Arrived::Queued(WaitGuard::new(
                    self.clone(),
                    ticket,
                    receiver,
                )))
            }
            Arrival::Rejected(reason) => {
                drop(shared);
                Err(inner.reject(reason))
            }
        }
    }

    /// Items admitted and not yet done.
    pub fn pending(&self) -> u32 {
        self.inner.lock().core.pending()
    }

    /// Producers waiting to be admitted.
    pub fn waiting(&self) -> u32 {
        self.inner.lock().core.waiting()
    }

    /// Whether `max_pending` items are pending or waiting: a producer that would have to
    /// wait is rejected at once.
    pub fn is_overloaded(&self) -> bool {
        let shared = self.inner.lock();
        shared.core.overloaded(shared.marks)
    }

    /// Whether backpressure is on: from the moment pending work reached the high water mark
    /// until it fell back to the low water mark. Producers should slow down.
    pub fn should_apply_backpressure(&self) -> bool {
        self.inner.active.load(Relaxed)
    }

    /// A snapshot of the state and counters, with the seed's field names.
    pub fn metrics(&self) -> BackpressureMetrics {
        let inner = &*self.inner;
        let (pending, waiting, active, admitted, config) = {
            let shared = inner.lock();
            let core = &shared.core;
            (
                core.pending(),
                core.waiting(),
                core.active(),
                core.admitted(),
                shared.config,
            )
        };
        let rejected_backpressure = inner.rejected_backpressure.load(Relaxed);
        let rejected_wait_timeout = inner.rejected_wait_timeout.load(Relaxed);
        let in_system = u64::from(pending) + u64::from(waiting);
        BackpressureMetrics {
            name: inner.name.to_string(),
            pending_count: pending,
            waiting_count: waiting,
            max_pending: config.max_pending,
            high_water_mark: config.high_water_mark,
            low_water_mark: config.low_water_mark,
            backpressure_active: active,
            total_accepted: admitted,
            total_rejected: rejected_backpressure + rejected_wait_timeout,
            rejected_backpressure,
            rejected_wait_timeout,
            utilization: (in_system as f64 / f64::from(config.max_pending)).min(1.0),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> BackpressureConfig {
        self.inner.lock().config
    }

    /// Replaces the configuration at run time, keeping the pending count, the queue, the
    /// counters and the listeners. The switch follows the new marks at once: waiters are
    /// admitted if backpressure turns off.
    pub fn set_config(&self, config: BackpressureConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = &*self.inner;
        let mut switches = Vec::new();
        let marks = Marks::from(&config);
        {
            let mut shared = inner.lock();
            shared.config = config;
            shared.marks = marks;
            inner
                .wait_timeout
                .store(nanos(config.wait_timeout), Relaxed);
            switches.extend(shared.core.reconfigure(marks));
            Inner::grant_waiters(&mut shared, &mut switches);
            inner.publish(&shared);
        }
        for switch in switches {
            inner.announce(Some(switch), marks);
        }
        Ok(())
    }

    /// This controller's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing under this lock calls user code; a poisoned lock still holds valid state.
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn publish(&self, shared: &Shared) {
        self.active.store(shared.core.active(), Relaxed);
    }

    /// An admitted item is done: pending - 1, and the waiters that may now go are admitted.
    pub(super) fn release(&self) {
        let mut shared = self.lock();
        let marks = shared.marks;
        let Some(switch) = shared.core.release(marks) else {
            // Still on, or off with nobody waiting: nothing else can change (the fast path).
            return;
        };
        let mut switches = vec![switch];
        Self::grant_waiters(&mut shared, &mut switches);
        self.publish(&shared);
        drop(shared);
        for switch in switches {
            self.announce(Some(switch), marks);
        }
    }

    /// Admits waiters in arrival order while the core allows it, waking each one.
    fn grant_waiters(shared: &mut Shared, switches: &mut Vec<Switch>) {
        let marks = shared.marks;
        while let Some((sender, switch)) = shared.core.grant(marks) {
            switches.extend(switch);
            if sender.send(()).is_err() {
                // Its receiver is gone without the waiter leaving the queue, which its guard
                // prevents; should it happen anyway, the slot goes on to the next waiter.
                switches.extend(shared.core.release(marks));
            }
        }
    }

    pub(super) fn reject(&self, reason: RejectionReason) -> Rejection {
        let counter = match reason {
            RejectionReason::WaitTimeout => &self.rejected_wait_timeout,
            _ => &self.rejected_backpressure,
        };
        counter.fetch_add(1, Relaxed);
        tracing::debug!(target: "resilience::backpressure", controller = %self.name, %reason, "producer rejected");
        // No honest `retry_after`: when pending work falls to the low mark depends on
        // consumers, not on a clock.
        Rejection::new(
            PatternKind::Backpressure,
            Arc::clone(&self.name),
            reason,
            None,
        )
    }

    /// Reports a switch; never called under the lock.
    fn announce(&self, switch: Option<Switch>, marks: Marks) {
        match switch {
            Some(Switch::On { pending }) => {
                tracing::info!(target: "resilience::backpressure", controller = %self.name, pending, high_water_mark = marks.high, "backpressure on");
                self.emitter.emit(|| BackpressureEvent::BackpressureHigh {
                    pending,
                    high_water_mark: marks.high,
                });
            }
            Some(Switch::Off { pending }) => {
                tracing::info!(target: "resilience::backpressure", controller = %self.name, pending, low_water_mark = marks.low, "backpressure off");
                self.emitter.emit(|| BackpressureEvent::BackpressureLow {
                    pending,
                    low_water_mark: marks.low,
                });
            }
            None => {}
        }
    }
}

impl Admission for Backpressure {
    type Permit = Permit;

    fn admit(&self) -> impl Future<Output = Result<Permit, Rejection>> + Send {
        self.acquire()
    }
}

impl AdmissionPermit for Permit {}

impl Registered for Backpressure {
    type Config = BackpressureConfig;
    type Metrics = BackpressureMetrics;

    fn create(name: &str, config: BackpressureConfig) -> Result<Self, ConfigError> {
        Self::from_config(name, config)
    }

    fn registered_name(&self) -> &str {
        self.name()
    }

    fn current_config(&self) -> BackpressureConfig {
        self.config()
    }

    fn snapshot(&self) -> BackpressureMetrics {
        self.metrics()
    }
}

impl fmt::Debug for Backpressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backpressure")
            .field("name", &self.inner.name)
            .field("config", &self.config())
            .finish_non_exhaustive()
    }
}
