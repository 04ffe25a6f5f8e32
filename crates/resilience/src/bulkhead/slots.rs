//! The bulkhead's shared state: the word of free slots and waiters, the FIFO queue, the
//! counters, and entering and leaving a slot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::instruments::Instruments;
use super::{state, BulkheadConfig, BulkheadEvent, BulkheadMetrics};
use crate::classify::Outcome;
use crate::clock::Clock;
use crate::error::Name;
use crate::events::{Emitter, EventBus};
use crate::started::Started;
use crate::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, SeqCst},
};
use crate::sync::{Mutex, MutexGuard, Padded};
use crate::tally::ResettableTally;
use crate::{PatternKind, Rejection, RejectionReason};

/// Which of [`Inner::outcomes`] counts each way a call ended.
const SUCCESSES: usize = 0;
const FAILURES: usize = 1;
const IGNORED: usize = 2;

/// The fields of [`Inner::word`]: free slots in the low 32 bits, queued calls in the high 32.
const FREE: u64 = u32::MAX as u64;
const ONE_WAITER: u64 = 1 << 32;

fn free_of(word: u64) -> u32 {
    (word & FREE) as u32
}

fn waiting_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// What every clone of a [`Bulkhead`](super::Bulkhead) shares. Slots are taken by
/// `try_enter` or `wait` and given back by `release`, which only a permit's
/// [`Ticket`](crate::ticket::Ticket) or a call's lease calls, exactly once per slot.
pub(super) struct Inner {
    name: Arc<str>,
    /// The name again, as every rejection copies it (see [`Name`]).
    rejection_name: Name,
    /// Free slots and queued calls. A free slot is taken with one compare-exchange, and
    /// given back with one addition, neither under a lock. Queued calls are counted here
    /// too, changed only under the queue's lock together with the queue, so the addition
    /// that gives a slot back also tells whether calls wait for it. If they do, the release
    /// hands it on under the lock. Newcomers queue while anybody waits, so a slot free for
    /// that moment is not theirs to take: whenever a slot is free while calls wait, a
    /// release is on its way to hand it over.
    word: Padded<AtomicU64>,
    /// The calls waiting for a slot, first come first served.
    queue: Mutex<Queue>,
    /// The configuration, under a lock only so that concurrent `set_config` calls resize one
    /// at a time; the hot path reads the atomics below.
    config: Mutex<BulkheadConfig>,
    max_waiting: AtomicU32,
    /// The wait timeout in nanoseconds, 0 for none (a zero timeout is invalid).
    wait_timeout: AtomicU64,
    /// Slots owed after a shrink: returning slots pay it off instead of going back.
    debt: AtomicU32,
    /// The configured number of slots. With the debt and the free slots it gives the slots
    /// held (see `active`), so taking and giving back a slot touches no other shared counter.
    max_concurrent: AtomicU32,
    /// Only ever written when it rises: the free-slot path reads it and moves on.
    peak_active: AtomicU32,
    /// The timeline its permits keep when their slots were taken on ([`Started`]): read
    /// only to tell a `bulkhead_released` listener how long a slot was held.
    clock: Clock,
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
}

/// The queued calls, each with the sender that hands it a slot.
struct Queue {
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

struct Waiter {
    id: u64,
    grant: oneshot::Sender<()>,
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
            word: Padded(AtomicU64::new(u64::from(config.max_concurrent))),
            queue: Mutex::new(Queue {
                waiters: VecDeque::new(),
                next_id: 0,
            }),
            max_waiting: AtomicU32::new(config.max_waiting),
            wait_timeout: AtomicU64::new(config.wait_timeout.map_or(0, nanos)),
            config: Mutex::new(config),
            debt: AtomicU32::new(0),
            max_concurrent: AtomicU32::new(config.max_concurrent),
            peak_active: AtomicU32::new(0),
            clock: Clock::new(),
            outcomes: ResettableTally::new(),
            rejected: Default::default(),
            wait_nanos: AtomicU64::new(0),
            peak_wait_nanos: AtomicU64::new(0),
        }
    }

    pub(super) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// `at`, the instant a slot was taken if the clock was read, as its permit keeps it.
    #[inline]
    pub(super) fn started(&self, at: Option<Instant>) -> Started {
        Started::of(&self.clock, at)
    }

    pub(super) fn events(&self) -> &EventBus {
        self.emitter.local()
    }

    /// Slots held now: taken by calls, or handed to a waiter that has yet to run.
    #[inline]
    pub(super) fn active(&self) -> u32 {
        self.held_with(free_of(self.word.load(Relaxed)))
    }

    /// Slots held when `free` are free.
    #[inline]
    fn held_with(&self, free: u32) -> u32 {
        state::held(
            self.max_concurrent.load(Relaxed),
            self.debt.load(Relaxed),
            free,
        )
    }

    pub(super) fn waiting(&self) -> u32 {
        waiting_of(self.word.load(Relaxed))
    }

    /// Whether a newcomer would find no slot to take, from one load of the word.
    pub(super) fn is_full(&self) -> bool {
        let word = self.word.load(Relaxed);
        !state::enters_at_once(free_of(word), waiting_of(word))
    }

    pub(super) fn available_slots(&self) -> u32 {
        free_of(self.word.load(Relaxed))
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
            current_waiting: inner.waiting(),
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

    /// The free-slot path: one compare-exchange, then relaxed loads only; no lock, no
    /// allocation, no clock read unless a listener wants release events. `None` when no
    /// slot is free or calls wait for one.
    #[inline]
    pub(super) fn try_enter(&self) -> Option<Option<Instant>> {
        let mut word = self.word.load(Relaxed);
        loop {
            if !state::enters_at_once(free_of(word), waiting_of(word)) {
                return None;
            }
            match self
                .word
                .compare_exchange_weak(word, word - 1, AcqRel, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => word = actual,
            }
        }
        let active = self.held_with(free_of(word) - 1);
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

    /// Waits in the FIFO queue; `Ok` carries the time the slot was taken, which its permit
    /// holds. The place in the queue is an RAII guard, so a cancelled or timed-out wait
    /// always leaves the queue, and gives back a slot handed to it too late.
    pub(super) async fn wait(&self) -> Result<Option<Instant>, Rejection> {
        let since = Instant::now();
        let mut place = match self.join() {
            Ok(Some(place)) => place,
            // A slot came back since the caller found none.
            Ok(None) => {
                self.entered_after(Duration::ZERO);
                return Ok(Some(since));
            }
            Err(reason) => return Err(self.reject(reason)),
        };
        let deadline = self
            .wait_timeout()
            .map(|limit| crate::time::deadline(since, limit));
        let granted = match deadline {
            None => (&mut place.grant).await.is_ok(),
            // `timeout_at` polls the grant before the timer, so a slot handed over at the
            // very instant the wait expires is taken, not wasted.
            Some(deadline) => matches!(
                tokio::time::timeout_at(deadline, &mut place.grant).await,
                Ok(Ok(()))
            ),
        };
        let now = Instant::now();
        if !granted {
            // Leaves the queue, giving back a slot handed over meanwhile. Only a deadline
            // ends a wait without a grant: the queue never drops a sender unsent.
            drop(place);
            return Err(self.reject(RejectionReason::WaitTimeout));
        }
        place.served = true;
        if deadline.is_some_and(|deadline| now > deadline) {
            // Handed over after the deadline, before this task ran again: too late for this
            // call, so the slot goes straight on to the next waiter. No call is ever
            // admitted after waiting longer than the wait timeout.
            self.return_slot();
            return Err(self.reject(RejectionReason::WaitTimeout));
        }
        self.entered_after(now - since);
        Ok(Some(now))
    }

    /// Why a call would be refused at once, if it is: no slot to take and no room to queue,
    /// both read from one load of the word, as [`join`](Self::join) would decide at that
    /// instant. A caller that must queue otherwise learns it before making a waiting future.
    pub(super) fn refused_at_once(&self) -> Option<RejectionReason> {
        let word = self.word.load(Relaxed);
        if state::enters_at_once(free_of(word), waiting_of(word)) {
            return None;
        }
        state::join_queue(waiting_of(word), self.max_waiting.load(Relaxed)).err()
    }

    /// Under the queue's lock: takes a free slot (`None`) if one came back and nobody
    /// waits, or a place at the end of the queue, or neither when the queue is full or
    /// there is none.
    fn join(&self) -> Result<Option<Place<'_>>, RejectionReason> {
        let mut queue = self.lock_queue();
        let max_waiting = self.max_waiting.load(Relaxed);
        let mut word = self.word.load(Relaxed);
        loop {
            let enters = state::enters_at_once(free_of(word), waiting_of(word));
            let next = if enters {
                word - 1
            } else {
                state::join_queue(waiting_of(word), max_waiting)?;
                word + ONE_WAITER
            };
            match self.word.compare_exchange_weak(word, next, AcqRel, Relaxed) {
                Ok(_) if enters => return Ok(None),
                Ok(_) => break,
                Err(actual) => word = actual,
            }
        }
        let (grant, receiver) = oneshot::channel();
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiters.push_back(Waiter { id, grant });
        self.instruments.queued.increment();
        Ok(Some(Place {
            inner: self,
            id,
            grant: receiver,
            served: false,
        }))
    }

    /// A queued call gives up its place: out of the queue, or, if a slot was handed to it
    /// meanwhile, that slot goes back.
    fn leave(&self, id: u64) {
        let mut queue = self.lock_queue();
        match queue.waiters.iter().position(|waiter| waiter.id == id) {
            Some(index) => {
                queue.waiters.remove(index);
                self.word.fetch_sub(ONE_WAITER, AcqRel);
                self.instruments.queued.decrement();
            }
            None => {
                drop(queue);
                self.return_slot();
            }
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing under this lock panics; a poisoned queue is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
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
            waiting: self.waiting(),
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
    pub(super) fn release(&self, started: Started, outcome: Outcome) {
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
    fn announce_release(&self, started: Started) {
        self.emitter.emit(|| BulkheadEvent::BulkheadReleased {
            active: self.active(),
            held: started
                .instant(&self.clock)
                .map_or(Duration::ZERO, |at| at.elapsed()),
        });
    }

    /// Gives a slot back: to the longest waiting call, or free, or against the debt of a
    /// shrink.
    #[inline]
    fn return_slot(&self) {
        let debt = self.debt.load(Relaxed);
        if debt == 0 {
            self.free_slots(1);
            self.look_at_debt_again();
        } else {
            self.pay_debt(debt);
        }
    }

    /// `count` slots back (a resize may add millions): one addition frees them, and if it
    /// finds calls waiting, they are handed over.
    ///
    /// An addition takes the word's cache line once and cannot fail, where a compare-exchange
    /// from a fresh read takes it twice and starts over whenever another core changed the
    /// word in between. Freeing before looking at the queue is safe because newcomers queue
    /// while anybody waits ([`state::enters_at_once`]).
    #[inline]
    fn free_slots(&self, count: u32) {
        let before = self.word.fetch_add(u64::from(count), AcqRel);
        if waiting_of(before) > 0 {
            self.hand_over();
        }
    }

    /// Under the queue's lock, where the waiters cannot change: free slots go to the first
    /// waiters, as many as there are of both. Another release may have handed over the slot
    /// this one freed, or the waiters may have left; then there is nothing to do.
    #[cold]
    #[inline(never)]
    fn hand_over(&self) {
        let mut queue = self.lock_queue();
        let mut word = self.word.load(Relaxed);
        let served = loop {
            debug_assert_eq!(waiting_of(word) as usize, queue.waiters.len());
            let served = state::hand_over(free_of(word), waiting_of(word));
            if served == 0 {
                return;
            }
            let next = word - u64::from(served) * (ONE_WAITER + 1);
            match self.word.compare_exchange_weak(word, next, AcqRel, Relaxed) {
                Ok(_) => break served,
                Err(actual) => word = actual,
            }
        };
        for waiter in queue.waiters.drain(..served as usize) {
            self.instruments.queued.decrement();
            // A waiter that stopped waiting in the meantime is blocked on this lock; it
            // finds itself out of the queue and gives the slot back (`leave`).
            let _ = waiter.grant.send(());
        }
    }

    /// A shrink may have owed slots between our look at the debt and our slot's return,
    /// and found no free slot to take: look again, and pay it with a free one.
    ///
    /// Both the return's addition and the shrink's taking of free slots are read-modify-writes
    /// of the word, the shrink's after owing (see `resize`). If the shrink's comes first, our
    /// addition acquires it, and with it the debt; if ours does, the shrink sees our slot
    /// and takes it. So looking again is one plain load.
    #[inline]
    fn look_at_debt_again(&self) {
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
                self.free_slots(1);
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
            self.free_slots(add);
        } else if to < from {
            // Owe first, then take the free permits against the debt (see `state::settle`):
            // a slot returning from then on pays the debt, and one that was already on its
            // way back looks at the debt again once returned (`return_slot`). Meanwhile a
            // free permit may be withheld a moment too long, never given out one too many.
            let removed = from - to;
            let _ = self
                .debt
                .fetch_update(SeqCst, SeqCst, |debt| Some(state::shrink(removed, debt)));
            // Taking the free slots is a read-modify-write of the word, made after owing: a
            // return that freed its slot before it has the slot taken; one that frees it
            // after sees the debt (`look_at_debt_again`). Either way the slot is not kept.
            self.pay_debt_from_free(removed);
        }
    }

    /// Takes up to `at_most` free slots against the debt; those the debt no longer covers,
    /// paid meanwhile by returning slots, go back.
    fn pay_debt_from_free(&self, at_most: u32) {
        let mut taken = 0;
        let _ = self.word.fetch_update(AcqRel, Acquire, |word| {
            taken = free_of(word).min(at_most);
            Some(word - u64::from(taken))
        });
        if taken == 0 {
            return;
        }
        let mut back = 0;
        let _ = self.debt.fetch_update(SeqCst, SeqCst, |debt| {
            let (give_back, owed) = state::settle(taken, debt);
            back = give_back;
            Some(owed)
        });
        self.free_slots(back);
    }

    pub(super) fn reject(&self, reason: RejectionReason) -> Rejection {
        self.rejected[reason_index(reason)].fetch_add(1, Relaxed);
        self.rejection(reason)
    }

    /// The rejection, its metric, log line and event, already counted.
    fn rejection(&self, reason: RejectionReason) -> Rejection {
        self.instruments.rejected(reason_index(reason));
        let (active, waiting) = (self.active(), self.waiting());
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

/// A place in the queue, left when dropped unless it was served.
struct Place<'a> {
    inner: &'a Inner,
    id: u64,
    /// Where the slot is handed over.
    grant: oneshot::Receiver<()>,
    /// Whether the call took the slot handed to it.
    served: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.inner.leave(self.id);
        }
    }
}
