//! The controller's shared state: the pure core under a std mutex, the word that counts
//! pending items and admits without the lock while backpressure is off, the counters, and
//! the release path that admits waiters.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::instruments::Instruments;
use super::state::{self, Core, Marks, Switch};
use super::{BackpressureConfig, BackpressureEvent, BackpressureMetrics};
use crate::events::{Emitter, EventBus};
use crate::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use crate::sync::{Mutex, MutexGuard, Padded};
use crate::tally::Tally;
use crate::{PatternKind, Rejection, RejectionReason};

/// The fields of [`Inner::word`]: pending items in the low 32 bits, whether backpressure is
/// on, whether a caller holds the core under the mutex, and above them a generation that
/// every such caller advances.
const PENDING: u64 = u32::MAX as u64;
const ACTIVE: u64 = 1 << 32;
const LOCKED: u64 = 1 << 33;
const GENERATION: u64 = 1 << 34;

fn pending_of(word: u64) -> u32 {
    (word & PENDING) as u32
}

/// What every clone of a [`Backpressure`](super::Backpressure) controller shares.
pub(super) struct Inner {
    name: Arc<str>,
    /// A std mutex, never held across an await: every critical section is a few pure
    /// decisions and, at most, waking the waiters they admit. Listeners run after unlocking.
    shared: Mutex<Shared>,
    /// The pending count and the switch, which producers (and the stream adapter, before
    /// each pull) read without locking.
    ///
    /// The count here is always exact: every admission adds to it before its permit exists,
    /// and every release subtracts from it, with one read-modify-write that cannot fail.
    /// While backpressure is off and an arrival would not turn it on, nothing else changes
    /// and nobody waits, so admission is one compare-exchange here (see
    /// [`state::admits_at_once`]). Every other decision takes the lock through
    /// [`Inner::lock`], which sets `LOCKED`: lock-free admissions then queue on the mutex,
    /// and the core resumes from the word. Releases go on subtracting while it is locked;
    /// a release that finds the word locked or backpressure on then takes the lock itself,
    /// so the core decides on its count. The generation fails a compare-exchange prepared
    /// before a locked section, so a lock-free admission never decides on a high mark older
    /// than the word it changes.
    word: Padded<AtomicU64>,
    /// The high water mark, for the lock-free admission; changed only under the lock.
    high: AtomicU32,
    /// The configured wait timeout in nanoseconds, so `acquire` needs no second lock.
    wait_timeout: AtomicU64,
    /// Producers admitted (yes) and refused at once (no), counted per thread: an admission
    /// pays no atomic read-modify-write for its count.
    decisions: Tally,
    rejected_wait_timeout: AtomicU64,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    pub(super) instruments: Instruments,
}

/// What the lock protects.
pub(super) struct Shared {
    pub(super) core: Core<oneshot::Sender<()>>,
    pub(super) config: BackpressureConfig,
    pub(super) marks: Marks,
}

/// The lock held, with the core resumed from the word; unlocking writes the switch back.
pub(super) struct Locked<'a> {
    word: &'a AtomicU64,
    /// The generation to write back, advanced past the one found.
    generation: u64,
    /// The core's pending count as this section last added it to the word. Releases may
    /// subtract from the word meanwhile, so the section adds what it changed, never its
    /// count.
    published: u32,
    shared: MutexGuard<'a, Shared>,
}

impl Locked<'_> {
    /// Adds to the word what the core's pending count changed since the last time. Before a
    /// granted waiter is woken, so that its release, which may come before this section
    /// ends, finds its admission counted.
    fn publish(&mut self) {
        let pending = self.shared.core.pending();
        if pending > self.published {
            self.word
                .fetch_add(u64::from(pending - self.published), AcqRel);
        } else if pending < self.published {
            self.word
                .fetch_sub(u64::from(self.published - pending), AcqRel);
        }
        self.published = pending;
    }
}

impl Deref for Locked<'_> {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Shared {
        &mut self.shared
    }
}

impl Drop for Locked<'_> {
    /// Before the mutex is released (fields drop after this): a lock-free path that finds
    /// the word unlocked finds the core's count and switch in it. The count is the word's
    /// own, with this section's changes added: releases subtracted from it meanwhile.
    fn drop(&mut self) {
        self.publish();
        let active = if self.shared.core.active() { ACTIVE } else { 0 };
        let rest = self.generation | active;
        let _ = self
            .word
            .fetch_update(Release, Relaxed, |word| Some(rest | (word & PENDING)));
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Inner {
    pub(super) fn new(name: &str, config: BackpressureConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name),
            name,
            shared: Mutex::new(Shared {
                core: Core::new(),
                marks: Marks::from(&config),
                config,
            }),
            word: Padded(AtomicU64::new(0)),
            high: AtomicU32::new(config.high_water_mark),
            wait_timeout: AtomicU64::new(nanos(config.wait_timeout)),
            decisions: Tally::new(),
            rejected_wait_timeout: AtomicU64::new(0),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn events(&self) -> &EventBus {
        self.emitter.local()
    }

    pub(super) fn active(&self) -> bool {
        self.word.load(Relaxed) & ACTIVE != 0
    }

    /// Items admitted and not yet done.
    pub(super) fn pending(&self) -> u32 {
        pending_of(self.word.load(Acquire))
    }

    /// Admits one producer without the lock if backpressure is off and stays off; `false`
    /// when the core must decide.
    #[inline]
    pub(super) fn admit_at_once(&self) -> bool {
        let mut word = self.word.load(Acquire);
        // The high mark read after the word: at least as new as the word's generation.
        while word & (ACTIVE | LOCKED) == 0
            && state::admits_at_once(pending_of(word), self.high.load(Relaxed))
        {
            match self
                .word
                .compare_exchange_weak(word, word + 1, AcqRel, Acquire)
            {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
        false
    }

    /// Counts a producer admitted, at once or from the queue.
    #[inline]
    pub(super) fn admitted(&self) {
        self.decisions.count(true);
        self.instruments.accepted.increment();
    }

    pub(super) fn wait_timeout(&self) -> Duration {
        Duration::from_nanos(self.wait_timeout.load(Relaxed))
    }

    pub(super) fn metrics(&self) -> BackpressureMetrics {
        let inner = self;
        let (pending, waiting, active, config) = {
            let shared = inner.lock();
            let core = &shared.core;
            (core.pending(), core.waiting(), core.active(), shared.config)
        };
        let (admitted, rejected_backpressure) = inner.decisions.totals();
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

    /// Applies a validated config (see `Backpressure::set_config`).
    pub(super) fn reconfigure(&self, config: BackpressureConfig) {
        let inner = self;
        let mut switches = Vec::new();
        let marks = Marks::from(&config);
        {
            let mut shared = inner.lock();
            shared.config = config;
            shared.marks = marks;
            inner.high.store(marks.high, Relaxed);
            inner
                .wait_timeout
                .store(nanos(config.wait_timeout), Relaxed);
            switches.extend(shared.core.reconfigure(marks));
            Self::grant_waiters(&mut shared, &mut switches);
        }
        for switch in switches {
            inner.announce(Some(switch), marks);
        }
    }

    /// Locks the core, with the counts the lock-free paths left in the word.
    pub(super) fn lock(&self) -> Locked<'_> {
        // Nothing under this lock calls user code; a poisoned lock still holds valid state
        // (the word was written back as the panic unwound).
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // From here lock-free admissions queue on the mutex; what they did before is in
        // `word`, and so is every release, before or after.
        let word = self.word.fetch_or(LOCKED, AcqRel);
        let pending = pending_of(word);
        shared.core.resume(pending, word & ACTIVE != 0);
        Locked {
            word: &self.word.0,
            generation: (word & !(PENDING | ACTIVE | LOCKED)).wrapping_add(GENERATION),
            published: pending,
            shared,
        }
    }

    /// An admitted item is done: pending - 1, and, if backpressure was on or another caller
    /// was deciding, the core looks at the new count (see [`state::releases_at_once`]).
    #[inline]
    pub(super) fn release(&self) {
        let before = self.word.fetch_sub(1, AcqRel);
        debug_assert!(pending_of(before) > 0, "a release without an admission");
        if !state::releases_at_once(before & ACTIVE != 0, before & LOCKED != 0) {
            self.after_release();
        }
    }

    /// Under the lock, after a release that may matter to the core: the core resumes from
    /// the word, which counts the release, switches off at the low mark and admits the
    /// waiters that may now go.
    #[cold]
    #[inline(never)]
    fn after_release(&self) {
        let mut shared = self.lock();
        let marks = shared.marks;
        let Some(switch) = shared.core.released(marks) else {
            // Still on, or off with nobody waiting: nothing else can change.
            return;
        };
        let mut switches = vec![switch];
        Self::grant_waiters(&mut shared, &mut switches);
        drop(shared);
        for switch in switches {
            self.announce(Some(switch), marks);
        }
    }

    /// Admits waiters in arrival order while the core allows it, waking each one once its
    /// admission is counted in the word.
    fn grant_waiters(shared: &mut Locked<'_>, switches: &mut Vec<Switch>) {
        let marks = shared.marks;
        while let Some((sender, switch)) = shared.core.grant(marks) {
            switches.extend(switch);
            shared.publish();
            if sender.send(()).is_err() {
                // Its receiver is gone without the waiter leaving the queue, which its guard
                // prevents; should it happen anyway, the slot goes on to the next waiter.
                switches.extend(shared.core.release(marks));
            }
        }
    }

    pub(super) fn reject(&self, reason: RejectionReason) -> Rejection {
        match reason {
            RejectionReason::WaitTimeout => {
                self.rejected_wait_timeout.fetch_add(1, Relaxed);
            }
            _ => self.decisions.count(false),
        }
        self.instruments.rejected.increment();
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
    pub(super) fn announce(&self, switch: Option<Switch>, marks: Marks) {
        match switch {
            Some(Switch::On { pending }) => {
                self.instruments.active.set(1.0);
                tracing::info!(target: "resilience::backpressure", controller = %self.name, pending, high_water_mark = marks.high, "backpressure on");
                self.emitter.emit(|| BackpressureEvent::BackpressureHigh {
                    pending,
                    high_water_mark: marks.high,
                });
            }
            Some(Switch::Off { pending }) => {
                self.instruments.active.set(0.0);
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
