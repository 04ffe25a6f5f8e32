//! The bulkhead's shared state: tokio's semaphore, the counters, and entering and leaving
//! a slot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::instruments::Instruments;
use super::{state, BulkheadConfig, BulkheadEvent, BulkheadMetrics};
use crate::classify::Outcome;
use crate::error::Name;
use crate::events::{Emitter, EventBus};
use crate::sync::atomic::{
    fence, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, SeqCst},
};
use crate::sync::{Mutex, MutexGuard};
use crate::tally::ResettableTally;
use crate::telemetry::Gauge;
use crate::{PatternKind, Rejection, RejectionReason};

/// Which of [`Inner::outcomes`] counts each way a call ended.
const SUCCESSES: usize = 0;
const FAILURES: usize = 1;
const IGNORED: usize = 2;

/// What every clone of a [`Bulkhead`](super::Bulkhead) shares. Slots are taken by
/// `try_enter` or `wait` and given back by `release`, which only a permit's
/// [`Ticket`](crate::ticket::Ticket) or a call's lease calls, exactly once per slot.
pub(super) struct Inner {
    name: Arc<str>,
    /// The name again, as every rejection copies it (see [`Name`]).
    rejection_name: Name,
    /// The slots, and the FIFO queue of calls waiting for one. Permits taken from it are
    /// `forget`-ed and given back by our own permits, so tokio's permit type does not leak
    /// into them (borrowed inside `call` and a [`Permit`](super::Permit), owned inside an
    /// [`OwnedPermit`](super::OwnedPermit)) and
    /// a live resize can withhold returning slots.
    semaphore: Semaphore,
    /// The configuration, under a lock only so that concurrent `set_config` calls resize one
    /// at a time; the hot path reads the atomics below.
    config: Mutex<BulkheadConfig>,
    max_waiting: AtomicU32,
    /// The wait timeout in nanoseconds, 0 for none (a zero timeout is invalid).
    wait_timeout: AtomicU64,
    /// Slots owed after a shrink: returning slots pay it off instead of going back.
    debt: AtomicU32,
    /// The configured number of slots. With the debt and the semaphore's free permits it
    /// gives the slots held (see `active`), so taking and giving back a slot touches no
    /// shared counter of ours.
    max_concurrent: AtomicU32,
    waiting: AtomicU32,
    /// Only ever written when it rises: the free-slot path reads it and moves on.
    peak_active: AtomicU32,
    /// How calls ended, by [`Outcome`] (success, failure, ignored), counted per thread: a
    /// returning slot pays no atomic read-modify-write for its count.
    outcomes: ResettableTally<3>,
    /// Rejections by reason: capacity full, queue full, wait timeout.
    rejected: [AtomicU64; 3],
    wait_nanos: AtomicU64,
    peak_wait_nanos: AtomicU64,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    instruments: Instruments,
    /// loom does not see inside tokio's semaphore, so it cannot see the read-modify-writes on
    /// the permit count that order a returning slot's second look at the debt against a
    /// shrink (see `return_slot`). Under loom this counter makes them where loom sees them.
    #[cfg(loom)]
    permit_count_rmw: AtomicU32,
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

impl Inner {
    pub(super) fn new(name: &str, config: BulkheadConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name),
            rejection_name: Name::new(&name),
            name,
            semaphore: Semaphore::new(config.max_concurrent as usize),
            max_waiting: AtomicU32::new(config.max_waiting),
            wait_timeout: AtomicU64::new(config.wait_timeout.map_or(0, nanos)),
            config: Mutex::new(config),
            debt: AtomicU32::new(0),
            max_concurrent: AtomicU32::new(config.max_concurrent),
            waiting: AtomicU32::new(0),
            peak_active: AtomicU32::new(0),
            outcomes: ResettableTally::new(),
            rejected: Default::default(),
            wait_nanos: AtomicU64::new(0),
            peak_wait_nanos: AtomicU64::new(0),
            #[cfg(loom)]
            permit_count_rmw: AtomicU32::new(0),
        }
    }

    pub(super) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(super) fn events(&self) -> &EventBus {
        self.emitter.local()
    }

    /// Slots held now: taken by calls, or handed to a waiter that has yet to run.
    #[inline]
    pub(super) fn active(&self) -> u32 {
        state::held(
            self.max_concurrent.load(Relaxed),
            self.debt.load(Relaxed),
            self.semaphore.available_permits(),
        )
    }

    pub(super) fn waiting(&self) -> u32 {
        self.waiting.load(Relaxed)
    }

    pub(super) fn available_slots(&self) -> u32 {
        u32::try_from(self.semaphore.available_permits()).unwrap_or(u32::MAX)
    }

    pub(super) fn config(&self) -> BulkheadConfig {
        *self.lock_config()
    }

    pub(super) fn metrics(&self) -> BulkheadMetrics {
        let inner = self;
        let load = |counter: &AtomicU64| counter.load(Relaxed);
        let config = *inner.lock_config();
        let [capacity_full, queue_full, wait_timeout] = inner.rejected.each_ref().map(load);
        let outcomes = inner.outcomes.counts();
        let (successes, failures, ignored) =
            (outcomes[SUCCESSES], outcomes[FAILURES], outcomes[IGNORED]);
        let active = inner.active();
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
            available_slots: inner.available_slots(),
            peak_active: inner.peak_active.load(Relaxed),
            total_wait_time,
            average_wait_time: state::average(total_wait_time, accepted),
            peak_wait_time: Duration::from_nanos(load(&inner.peak_wait_nanos)),
            rejection_rate: state::ratio(rejected, accepted + rejected),
            utilization: state::ratio(u64::from(active), u64::from(config.max_concurrent)),
        }
    }

    pub(super) fn reset_metrics(&self) {
        let inner = self;
        inner.outcomes.reset();
        for counter in [&inner.wait_nanos, &inner.peak_wait_nanos]
            .into_iter()
            .chain(&inner.rejected)
        {
            counter.store(0, Relaxed);
        }
        inner.peak_active.store(inner.active(), Relaxed);
    }

    /// Applies a validated config (see `Bulkhead::set_config`).
    pub(super) fn reconfigure(&self, config: BulkheadConfig) {
        let inner = self;
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
    }

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

    /// The uncontended path: tokio's one compare-exchange, then relaxed loads only; no lock,
    /// no allocation, no clock read unless a listener wants release events.
    #[inline]
    pub(super) fn try_enter(&self) -> Option<Option<Instant>> {
        let permit = self.semaphore.try_acquire().ok()?;
        permit.forget();
        let active = self.active();
        self.note_peak(active);
        self.instruments.entered(Duration::ZERO);
        if self.emitter.wants(BulkheadEvent::BULKHEAD_ACCEPTED) {
            self.announce_entry(active, Duration::ZERO);
        }
        // How long the slot is held is only ever reported in `bulkhead_released`: read the
        // clock for it only when someone listens.
        Some(
            self.emitter
                .wants(BulkheadEvent::BULKHEAD_RELEASED)
                .then(Instant::now),
        )
    }

    /// Waits in the semaphore's FIFO queue; `Ok` carries the time the slot was taken, which
    /// its permit holds. The place in the queue is an RAII guard on the
    /// waiting count, so a cancelled or timed-out wait can never leave the count behind.
    pub(super) async fn wait(&self) -> Result<Option<Instant>, Rejection> {
        let place = match Place::join(
            &self.waiting,
            &self.instruments.queued,
            self.max_waiting.load(Relaxed),
        ) {
            Ok(place) => place,
            Err(reason) => return Err(self.reject(reason)),
        };
        let since = Instant::now();
        let deadline = self
            .wait_timeout()
            .map(|limit| crate::time::deadline(since, limit));
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
                self.entered_after(now - since);
                Ok(Some(now))
            }
            // The semaphore is never closed; were it, no slot would ever come.
            Some(Err(_)) => Err(self.reject(RejectionReason::CapacityFull)),
            None => Err(self.reject(RejectionReason::WaitTimeout)),
        }
    }

    /// Raises the peak to `active` if it is higher: a load on every entry, a write only when
    /// the peak moves.
    #[inline]
    fn note_peak(&self, active: u32) {
        if active > self.peak_active.load(Relaxed) {
            self.peak_active.fetch_max(active, Relaxed);
        }
    }

    /// The event of a call that took a slot (built only if someone listens).
    #[cold]
    fn announce_entry(&self, active: u32, waited: Duration) {
        self.emitter.emit(|| BulkheadEvent::BulkheadAccepted {
            active,
            waiting: self.waiting.load(Relaxed),
            waited,
        });
    }

    /// Counts and announces a call that took a slot after waiting `waited`.
    fn entered_after(&self, waited: Duration) {
        let active = self.active();
        self.note_peak(active);
        let nanos = nanos(waited);
        self.wait_nanos.fetch_add(nanos, Relaxed);
        self.peak_wait_nanos.fetch_max(nanos, Relaxed);
        self.instruments.entered(waited);
        self.announce_entry(active, waited);
    }

    /// Gives a slot back, counting how the call went.
    #[inline(always)]
    pub(super) fn release(&self, started: Option<Instant>, outcome: Outcome) {
        self.return_slot();
        self.outcomes.add(match outcome {
            Outcome::Success => SUCCESSES,
            Outcome::Failure => FAILURES,
            Outcome::Ignored => IGNORED,
        });
        self.instruments.active.decrement();
        if self.emitter.wants(BulkheadEvent::BULKHEAD_RELEASED) {
            self.announce_release(started);
        }
    }

    /// The event of a slot given back (built only if someone listens).
    #[cold]
    fn announce_release(&self, started: Option<Instant>) {
        self.emitter.emit(|| BulkheadEvent::BulkheadReleased {
            active: self.active(),
            held: started.map_or(Duration::ZERO, |at| at.elapsed()),
        });
    }

    /// Gives a slot back: to the semaphore, or against the debt of a shrink.
    #[inline]
    fn return_slot(&self) {
        let debt = self.debt.load(Relaxed);
        if debt == 0 {
            // To the longest waiter if there is one (tokio hands it over directly).
            self.semaphore.add_permits(1);
            self.look_at_debt_again();
        } else {
            self.pay_debt(debt);
        }
    }

    /// A shrink may have owed slots between our look at the debt and our permit's return,
    /// and found no free permit to take: look again, and pay it with a free one.
    ///
    /// What orders this second look against the shrink is the permit count in tokio's
    /// semaphore: the return adds to it and the shrink takes from it, both read-modify-writes,
    /// the shrink's after owing (see `resize`). If the shrink's comes first, the acquire fence
    /// makes its debt visible here; if ours does, the shrink sees our permit and takes it. So
    /// the return costs no read-modify-write of its own, and the fence no instruction on x86.
    #[inline]
    fn look_at_debt_again(&self) {
        #[cfg(loom)]
        self.permit_count_rmw
            .fetch_add(0, crate::sync::atomic::Ordering::Release);
        fence(Acquire);
        if self.debt.load(Relaxed) > 0 {
            self.pay_debt_from_free(1);
        }
    }

    /// A returning slot pays one of the `debt` owed instead of going back (or goes back, if
    /// the debt was paid meanwhile).
    #[cold]
    fn pay_debt(&self, mut debt: u32) {
        loop {
            let (give_back, owed) = state::on_release(debt);
            if give_back {
                self.semaphore.add_permits(1);
                self.look_at_debt_again();
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
        // First, so that `active` (limit + debt - free) reads right once the permits follow.
        self.max_concurrent.store(to, Relaxed);
        if to > from {
            let mut add = 0;
            let _ = self.debt.fetch_update(Relaxed, Relaxed, |debt| {
                let (added, owed) = state::grow(to - from, debt);
                add = added;
                Some(owed)
            });
            self.semaphore.add_permits(add as usize);
        } else if to < from {
            // Owe first, then take the free permits against the debt (see `state::settle`):
            // a slot returning from then on pays the debt, and one that was already on its
            // way back looks at the debt again once returned (`return_slot`). Meanwhile a
            // free permit may be withheld a moment too long, never given out one too many.
            let removed = from - to;
            let _ = self
                .debt
                .fetch_update(SeqCst, SeqCst, |debt| Some(state::shrink(removed, debt)));
            // Taking the free permits is a read-modify-write of the semaphore's permit count,
            // made after owing: a return that added to the count before it has its permit
            // taken; one that adds after it sees the debt (`look_at_debt_again`). Either way
            // the slot is not kept.
            #[cfg(loom)]
            self.permit_count_rmw
                .fetch_add(0, crate::sync::atomic::Ordering::AcqRel);
            self.pay_debt_from_free(removed);
        }
    }

    /// Takes up to `at_most` free permits out of the semaphore against the debt; those the
    /// debt no longer covers, paid meanwhile by returning slots, go back.
    fn pay_debt_from_free(&self, at_most: u32) {
        let forgotten = self.semaphore.forget_permits(at_most as usize);
        if forgotten == 0 {
            return;
        }
        let forgotten = u32::try_from(forgotten).unwrap_or(at_most);
        let mut back = 0;
        let _ = self.debt.fetch_update(SeqCst, SeqCst, |debt| {
            let (give_back, owed) = state::settle(forgotten, debt);
            back = give_back;
            Some(owed)
        });
        if back > 0 {
            self.semaphore.add_permits(back as usize);
        }
    }

    pub(super) fn reject(&self, reason: RejectionReason) -> Rejection {
        self.rejected[reason_index(reason)].fetch_add(1, Relaxed);
        self.rejection(reason)
    }

    /// The rejection, its metric, log line and event, already counted.
    fn rejection(&self, reason: RejectionReason) -> Rejection {
        self.instruments.rejected(reason_index(reason));
        let (active, waiting) = (self.active(), self.waiting.load(Relaxed));
        tracing::debug!(target: "resilience::bulkhead", bulkhead = %self.name, %reason, active, waiting, "call rejected");
        self.emitter.emit(|| BulkheadEvent::BulkheadRejected {
            reason,
            active,
            waiting,
        });
        // No honest `retry_after`: when a slot frees depends on calls still running.
        Rejection::named(
            PatternKind::Bulkhead,
            self.rejection_name.clone(),
            reason,
            None,
        )
    }
}

/// A place in the queue: counted in `waiting` (and the queued gauge) while it lives.
struct Place<'a>(&'a AtomicU32, &'a Gauge);

impl<'a> Place<'a> {
    fn join(
        waiting: &'a AtomicU32,
        queued: &'a Gauge,
        max_waiting: u32,
    ) -> Result<Self, RejectionReason> {
        let mut current = waiting.load(Relaxed);
        loop {
            let next = state::join_queue(current, max_waiting)?;
            match waiting.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => {
                    queued.increment();
                    return Ok(Self(waiting, queued));
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
        self.1.decrement();
    }
}
