//! [`Backpressure`]: the async shell around the pure state machine.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::permit::{OwnedPermit, Permit, WaitGuard};
use super::shared::Inner;
use super::state::{Arrival, Patience};
use super::stream::BackpressureStream;
use super::{BackpressureBuilder, BackpressureConfig, BackpressureMetrics};
use crate::classify::Outcome;
use crate::events::EventBus;
use crate::stage::{self, Admit, LeaseToken, Leased, Stage, StagePermit};
use crate::{ConfigError, PatternKind, Rejection, RejectionReason};

/// A backpressure controller: admits work freely until the high water mark, then makes
/// producers wait, in arrival order, until pending work falls to the low water mark.
///
/// Cheap to clone; clones share one pending count and one queue. See the
/// [module docs](super) for how it decides.
#[derive(Clone)]
pub struct Backpressure {
    pub(super) inner: Arc<Inner>,
}

/// How an arrival went, when it was not rejected.
pub(super) enum Arrived {
    /// Admitted at once and counted: the caller makes the permit, or leases the slot.
    Admitted,
    Queued(WaitGuard),
}

impl Backpressure {
    stage::slot_handle_constructors!(
        BackpressureBuilder,
        BackpressureConfig,
        "a backpressure controller"
    );

    stage::entry_points! {
        /// Runs `operation` once admitted, waiting up to the configured `wait_timeout`; the slot
        /// is held until the operation ends or the future is dropped.
        call;
        /// Runs an operation that already returns this crate's [`Error`](crate::Error), such as an inner pattern
        /// of a pipeline, once admitted. Errors pass through unchanged.
        execute;
    }

    /// Admission for one item of work, waiting up to the configured `wait_timeout`
    /// (5 s by default) while backpressure is on. See [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// The permit holds a reference to the controller: a producer that waited usually hands
    /// the item and its permit to a task, and the wait itself holds one.
    pub async fn acquire(&self) -> Result<OwnedPermit, Rejection> {
        Stage::admit(self).await
    }

    /// The configured wait timeout.
    pub(super) fn wait_timeout(&self) -> Duration {
        self.inner.wait_timeout()
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
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<OwnedPermit, Rejection> {
        self.admit_within(timeout).await
    }

    /// Admission now, or a boxed wait of at most `timeout`: the wait (a timer among it) is
    /// most of the future's size, so only a producer that waits pays for it.
    fn admit_within(&self, timeout: Duration) -> Admit<OwnedPermit> {
        match self.arrive(Patience::waiting_up_to(timeout)) {
            Err(rejection) => Admit::rejected(rejection),
            Ok(Arrived::Admitted) => Admit::admitted(OwnedPermit::new(self.clone())),
            Ok(Arrived::Queued(guard)) => Admit::waiting(guard.wait(timeout)),
        }
    }

    /// Admission without waiting: rejected with [`Backpressure`](RejectionReason::Backpressure)
    /// while backpressure is on.
    ///
    /// The permit borrows the controller; for one that must outlive the borrow (moved into a
    /// spawned task), use [`try_acquire_owned`](Self::try_acquire_owned).
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejection> {
        self.admit_now()?;
        Ok(Permit::new(self))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that holds a reference to the
    /// controller instead of borrowing it, so it can be moved into a task and outlive this
    /// handle. Taking and dropping the reference costs two atomic operations the borrowed
    /// permit does not pay.
    ///
    /// ```
    /// use resilience::backpressure::Backpressure;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let backpressure = Backpressure::builder("ingest").build()?;
    /// let permit = backpressure.try_acquire_owned()?;
    /// tokio::spawn(async move {
    ///     let _done_when_dropped = permit;
    ///     // ... work on the item ...
    /// })
    /// .await?;
    /// assert_eq!(backpressure.pending(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejection> {
        self.admit_now()?;
        Ok(OwnedPermit::new(self.clone()))
    }

    /// Admits one item without waiting, or rejects it.
    #[inline]
    fn admit_now(&self) -> Result<(), Rejection> {
        match self.arrive(Patience::Never)? {
            Arrived::Admitted => Ok(()),
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

    /// Decides an arrival and, when it must wait, queues it. An arrival admitted at once is
    /// counted here; its caller holds the slot as a permit or a lease.
    #[inline]
    pub(super) fn arrive(&self, patience: Patience) -> Result<Arrived, Rejection> {
        let inner = &*self.inner;
        if inner.admit_at_once() {
            inner.admitted();
            return Ok(Arrived::Admitted);
        }
        self.arrive_locked(patience)
    }

    /// [`arrive`](Self::arrive) when the core must decide.
    fn arrive_locked(&self, patience: Patience) -> Result<Arrived, Rejection> {
        let inner = &*self.inner;
        let mut shared = inner.lock();
        let marks = shared.marks;
        match shared.core.arrive(marks, patience) {
            Arrival::Admitted(switch) => {
                drop(shared);
                inner.announce(switch, marks);
                inner.admitted();
                Ok(Arrived::Admitted)
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
        self.inner.pending()
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
        self.inner.active()
    }

    /// A snapshot of the state and counters, with aioresilience's field names.
    pub fn metrics(&self) -> BackpressureMetrics {
        self.inner.metrics()
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
        self.inner.reconfigure(config);
        Ok(())
    }

    /// This controller's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.events()
    }
}

/// Admits at once while backpressure is off; otherwise waits in line for up to the
/// configured `wait_timeout`.
impl Stage for Backpressure {
    type Permit = OwnedPermit;

    fn admit(&self) -> Admit<OwnedPermit> {
        self.admit_within(self.wait_timeout())
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Backpressure
    }

    /// A call run by `call` that is admitted at once borrows the controller: no reference
    /// count is taken.
    #[inline]
    fn lease(&self) -> Leased<OwnedPermit> {
        let timeout = self.wait_timeout();
        match self.arrive(Patience::waiting_up_to(timeout)) {
            Ok(Arrived::Admitted) => Leased::Token(LeaseToken::new(0)),
            Ok(Arrived::Queued(guard)) => Leased::Admit(Admit::waiting(guard.wait(timeout))),
            Err(rejection) => Leased::Rejected(rejection),
        }
    }

    #[inline]
    fn end_lease(&self, _: LeaseToken, _: Outcome) {
        self.inner.release();
    }
}

impl StagePermit for OwnedPermit {}

crate::registry::registered!(Backpressure: BackpressureConfig => BackpressureMetrics);

impl fmt::Debug for Backpressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backpressure")
            .field("name", &self.inner.name())
            .field("config", &self.config())
            .finish_non_exhaustive()
    }
}
