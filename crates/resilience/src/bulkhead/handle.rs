//! [`Bulkhead`]: the async shell around the slots and the pure bookkeeping.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use super::permit::{OwnedPermit, Permit};
use super::slots::Inner;
use super::{BulkheadBuilder, BulkheadConfig, BulkheadMetrics};
use crate::classify::Outcome;
use crate::events::EventBus;
use crate::registry::{Registry, RegistryError};
use crate::stage::{self, Admit, LeaseToken, Leased, Stage, StagePermit};
use crate::{ConfigError, PatternKind, Rejection, RejectionReason};

/// A bulkhead: at most `max_concurrent` calls run at once, at most `max_waiting` more wait
/// for a slot in arrival order, the rest are rejected.
///
/// Cheap to clone; clones share one set of slots, so a bulkhead built once can be handed to
/// every task, service and layer that uses the same resource. See the [module docs](super).
#[derive(Clone)]
pub struct Bulkhead {
    pub(super) inner: Arc<Inner>,
}

impl Bulkhead {
    stage::slot_handle_constructors!(BulkheadBuilder, BulkheadConfig, "a bulkhead");

    stage::entry_points! {
        /// Runs `operation` in a slot, waiting for one as configured; `Ok` counts as a success and
        /// `Err` as a failure in the metrics.
        ///
        /// The slot is released when the operation ends, fails, panics or when the returned future
        /// is dropped, at any await point: a cancelled wait leaves the queue, a cancelled call
        /// gives its slot back.
        call;
        /// Runs an operation that already returns this crate's [`Error`](crate::Error), such as an inner pattern
        /// of a pipeline. Errors pass through unchanged; an inner rejection counts as neither
        /// success nor failure.
        execute;
    }

    /// Waits for a slot as configured (queue, wait timeout) and returns it as a [`Permit`]
    /// that borrows the bulkhead, for callers that run the work themselves. Dropping the
    /// future gives up the place in the queue.
    ///
    /// For a permit that must outlive the borrow (moved into a spawned task), use
    /// [`acquire_owned`](Self::acquire_owned).
    pub async fn acquire(&self) -> Result<Permit<'_>, Rejection> {
        let started = match self.inner.try_enter() {
            Some(started) => started,
            None => self.inner.wait().await?,
        };
        Ok(Permit::new(self, started))
    }

    /// Like [`acquire`](Self::acquire), with a permit that holds a reference to the bulkhead
    /// instead of borrowing it.
    pub async fn acquire_owned(&self) -> Result<OwnedPermit, Rejection> {
        Stage::admit(self).await
    }

    /// Takes a free slot without waiting, or fails with
    /// [`CapacityFull`](RejectionReason::CapacityFull) (whether or not a queue is configured:
    /// this call never queues). While calls wait in the queue, a slot coming back goes to
    /// them, so this fails then too. The permit borrows the bulkhead.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejection> {
        let started = self.enter_now()?;
        Ok(Permit::new(self, started))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that holds a reference to the
    /// bulkhead instead of borrowing it, so it can be moved into a task and outlive this
    /// handle. Taking and dropping the reference costs two atomic operations the borrowed
    /// permit does not pay.
    ///
    /// ```
    /// use resilience::bulkhead::Bulkhead;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Bulkhead::builder("exports").max_concurrent(4).build()?;
    /// let permit = bulkhead.try_acquire_owned()?;
    /// tokio::spawn(async move {
    ///     // ... the work ...
    ///     permit.success();
    /// })
    /// .await?;
    /// assert_eq!(bulkhead.available_slots(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejection> {
        let started = self.enter_now()?;
        Ok(OwnedPermit::new(self.clone(), started))
    }

    /// A free slot now (when it was taken, if the clock is read), or the rejection of a call
    /// that may not queue.
    #[inline]
    fn enter_now(&self) -> Result<Option<Instant>, Rejection> {
        match self.inner.try_enter() {
            Some(started) => Ok(started),
            None => Err(self.inner.reject(RejectionReason::CapacityFull)),
        }
    }

    /// Calls running now.
    pub fn active(&self) -> u32 {
        self.inner.active()
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> u32 {
        self.inner.waiting()
    }

    /// Free slots now. While calls wait, a slot given back shows here for the moment
    /// before it is handed to the longest waiting one.
    pub fn available_slots(&self) -> u32 {
        self.inner.available_slots()
    }

    /// Whether a call arriving now finds no slot to take: every slot is taken, or calls
    /// wait for the next one.
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// A snapshot of the counters, with aioresilience's field names.
    pub fn metrics(&self) -> BulkheadMetrics {
        self.inner.metrics()
    }

    /// Zeroes the counters (aioresilience's `reset_metrics`). Calls running now still count when
    /// they end, so the totals keep adding up; the peak restarts from the calls running now.
    pub fn reset_metrics(&self) {
        self.inner.reset_metrics();
    }

    /// The current configuration.
    pub fn config(&self) -> BulkheadConfig {
        self.inner.config()
    }

    /// Replaces the configuration at run time, keeping the counters, events and listeners.
    ///
    /// More slots are usable at once, and go to queued calls first. Fewer slots take effect
    /// as running calls finish: a returning slot is withheld until the new limit holds. Calls
    /// already queued stay queued when `max_waiting` shrinks; the new wait timeout applies to
    /// calls that start waiting from now on.
    pub fn set_config(&self, config: BulkheadConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.inner.reconfigure(config);
        Ok(())
    }

    /// Changes only `max_concurrent`; see [`set_config`](Self::set_config).
    pub fn set_max_concurrent(&self, max_concurrent: u32) -> Result<(), ConfigError> {
        self.set_config(BulkheadConfig {
            max_concurrent,
            ..self.config()
        })
    }

    /// This bulkhead's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.events()
    }
}

/// Takes a free slot at once; otherwise waits in the queue as configured (boxed: only a call
/// that must wait pays for it).
impl Stage for Bulkhead {
    type Permit = OwnedPermit;

    #[inline]
    fn admit(&self) -> Admit<OwnedPermit> {
        match self.inner.try_enter() {
            Some(started) => Admit::admitted(OwnedPermit::new(self.clone(), started)),
            // Refused without queueing: answered at once, with no waiting future to make.
            None => {
                if let Some(reason) = self.inner.refused_at_once() {
                    Admit::ready(Err(self.inner.reject(reason)))
                } else {
                    let bulkhead = self.clone();
                    Admit::waiting(async move {
                        let started = bulkhead.inner.wait().await?;
                        Ok(OwnedPermit::new(bulkhead, started))
                    })
                }
            }
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Bulkhead
    }

    /// A call run by `call` that finds a free slot borrows the bulkhead: no reference count
    /// is taken.
    #[inline]
    fn lease(&self) -> Leased<OwnedPermit> {
        match self.inner.try_enter() {
            Some(started) => {
                Leased::Token(LeaseToken::new(0).started_at(started).wanting_outcome())
            }
            None => Leased::Admit(self.admit()),
        }
    }

    #[inline]
    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        self.inner
            .release(self.inner.started(token.started()), outcome);
    }
}

// The stage's entry points are inlined into the generic runners (`stage::call`, the tower
// layer), which are compiled in the caller's crate: called instead, each passes the permit
// through memory, read back with wide loads right after it was written field by field.
impl StagePermit for OwnedPermit {
    /// The outcome feeds `successful_requests` and `failed_requests`.
    #[inline]
    fn wants_outcome(&self) -> bool {
        true
    }

    #[inline]
    fn record(self, outcome: Outcome) {
        Self::record(self, outcome);
    }
}

crate::registry::registered!(Bulkhead: BulkheadConfig => BulkheadMetrics);

/// The bulkhead called `name` in the process-wide [registry](Registry::global), created with
/// `config` if there is none (aioresilience's `get_bulkhead`). Asking for an
/// existing name with a different config fails instead of silently ignoring it.
pub fn get_bulkhead(name: &str, config: BulkheadConfig) -> Result<Bulkhead, RegistryError> {
    Registry::<Bulkhead>::global().get_or_create(name, config)
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", self.inner.name())
            .field("config", &self.config())
            .finish_non_exhaustive()
    }
}
