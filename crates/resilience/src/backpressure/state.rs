//! The pure core of backpressure: the pending count, the on/off switch with its hysteresis
//! and the FIFO queue of waiting producers, as plain data and plain functions.
//!
//! No clock, no lock, no channel: the handle runs these under its std `Mutex`, wakes the
//! producers they name after the decision, and announces switches after unlocking. Waiters
//! are a type parameter `W` (a oneshot sender in the handle, a plain id in the tests).
//!
//! While backpressure is off and an admission would not turn it on, nothing but the pending
//! count changes and nobody waits: the handle admits those without the lock
//! ([`admits_at_once`]). Every release subtracts from the handle's count without the lock,
//! and only a release that found backpressure on, or the core deciding, takes the lock
//! after it ([`releases_at_once`], [`Core::released`]). The handle hands its count back to
//! the core with [`Core::resume`] before any other decision.
//!
//! The rules, in one place:
//! * **Off**: a producer is admitted at once (pending + 1). Reaching the high water mark
//!   turns backpressure **on**. While off nobody waits, and pending is below the high mark.
//! * **On**: every producer waits, newcomers behind earlier waiters, whatever the pending
//!   count, so newcomers never overtake waiters between the marks. A producer
//!   that would not wait, or that finds `pending + waiting` at `max_pending`, is rejected.
//! * A finished item (pending - 1) that brings pending down to the low water mark turns
//!   backpressure **off**; waiters are then admitted in arrival order *while pending stays
//!   below the high water mark*, which may turn it on again with the rest still queued
//!   (not all at once, which would be a thundering herd up to `max_pending`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::BackpressureConfig;
use crate::RejectionReason;

/// The three thresholds, copied out of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) max_pending: u32,
    pub(crate) high: u32,
    pub(crate) low: u32,
}

impl From<&BackpressureConfig> for Marks {
    fn from(config: &BackpressureConfig) -> Self {
        Self {
            max_pending: config.max_pending,
            high: config.high_water_mark,
            low: config.low_water_mark,
        }
    }
}

/// Backpressure turned on or off, with the pending count at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Switch {
    On { pending: u32 },
    Off { pending: u32 },
}

/// What a producer is prepared to do when it cannot be admitted at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Nothing: reject instead of waiting (`try_acquire`, a zero wait timeout).
    Never,
    /// Wait, if `max_pending` leaves room for one more waiter.
    Queue,
    /// Wait in any case: one stream adapter, which has nothing else to do and holds nothing
    /// while it waits, so it is never turned away.
    Always,
}

impl Patience {
    /// What a producer willing to wait up to `timeout` is prepared to do: a zero timeout
    /// never waits.
    pub(crate) fn waiting_up_to(timeout: Duration) -> Self {
        if timeout.is_zero() {
            Self::Never
        } else {
            Self::Queue
        }
    }
}

/// The decision on a producer's arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Admitted at once; pending counts it.
    Admitted(Option<Switch>),
    /// It must wait: the handle enqueues it with [`Core::enqueue`].
    Wait,
    /// Refused at once.
    Rejected(RejectionReason),
}

#[derive(Debug)]
pub(crate) struct Core<W> {
    pending: u32,
    active: bool,
    /// Waiting producers by ticket; tickets only grow, so the first entry is the longest
    /// waiter and removal by ticket (a cancelled wait) is cheap.
    waiters: BTreeMap<u64, W>,
    next_ticket: u64,
}

/// Whether an arrival finding `pending` items and backpressure off is admitted without
/// turning it on at the high mark `high`: exactly when [`Core::arrive`] would admit it with
/// no switch (off, nobody waits and `pending` is below the high mark, so below
/// `max_pending` too).
pub(crate) fn admits_at_once(pending: u32, high: u32) -> bool {
    pending.saturating_add(1) < high
}

/// Whether a release, already subtracted from the handle's count, needs nothing more: it
/// found backpressure off (so [`Core::release`] would switch nothing and nobody waits to be
/// granted) and no other caller deciding under the lock (whose core, resumed before the
/// release, does not count it).
pub(crate) fn releases_at_once(active: bool, locked: bool) -> bool {
    !active && !locked
}

impl<W> Core<W> {
    pub(crate) fn new() -> Self {
        Self {
            pending: 0,
            active: false,
            waiters: BTreeMap::new(),
            next_ticket: 0,
        }
    }

    /// Takes in the pending count and the switch as the handle's lock-free admissions and
    /// releases left them (see [`admits_at_once`]).
    pub(crate) fn resume(&mut self, pending: u32, active: bool) {
        self.pending = pending;
        self.active = active;
    }

    pub(crate) fn pending(&self) -> u32 {
        self.pending
    }

    pub(crate) fn active(&self) -> bool {
        self.active
    }

    pub(crate) fn waiting(&self) -> u32 {
        u32::try_from(self.waiters.len()).unwrap_or(u32::MAX)
    }

    /// Whether `pending + waiting` has reached `max_pending`.
    pub(crate) fn overloaded(&self, marks: Marks) -> bool {
        u64::from(self.pending) + self.waiters.len() as u64 >= u64::from(marks.max_pending)
    }

    pub(crate) fn arrive(&mut self, marks: Marks, patience: Patience) -> Arrival {
        if patience != Patience::Always && self.overloaded(marks) {
            return Arrival::Rejected(RejectionReason::Backpressure);
        }
        if !self.active {
            return Arrival::Admitted(self.admit(marks));
        }
        match patience {
            Patience::Never => Arrival::Rejected(RejectionReason::Backpressure),
            Patience::Queue | Patience::Always => Arrival::Wait,
        }
    }

    /// Queues a producer behind every earlier one; returns its ticket.
    pub(crate) fn enqueue(&mut self, waiter: W) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiters.insert(ticket, waiter);
        ticket
    }

    /// Removes a waiter that gives up; `false` if it is no longer queued (it was admitted).
    pub(crate) fn leave(&mut self, ticket: u64) -> bool {
        self.waiters.remove(&ticket).is_some()
    }

    /// An admitted item is done.
    pub(crate) fn release(&mut self, marks: Marks) -> Option<Switch> {
        debug_assert!(self.pending > 0, "a release without an admission");
        self.pending = self.pending.saturating_sub(1);
        self.released(marks)
    }

    /// Pending has come down by releases counted before [`resume`](Self::resume): switches
    /// off at the low mark (then call [`grant`](Self::grant)).
    pub(crate) fn released(&mut self, marks: Marks) -> Option<Switch> {
        self.switch_off_at_low(marks)
    }

    /// The longest waiter, admitted now if backpressure is off (pending is then below the high
    /// mark, so the check against it is implied); `None` when nobody may be admitted. Call
    /// until `None` after every change that may turn backpressure off.
    pub(crate) fn grant(&mut self, marks: Marks) -> Option<(W, Option<Switch>)> {
        if self.active {
            return None;
        }
        let (_, waiter) = self.waiters.pop_first()?;
        Some((waiter, self.admit(marks)))
    }

    /// New thresholds: the switch follows them at once (then call [`grant`](Self::grant)).
    pub(crate) fn reconfigure(&mut self, marks: Marks) -> Option<Switch> {
        if self.active {
            self.switch_off_at_low(marks)
        } else if self.pending >= marks.high {
            self.active = true;
            Some(Switch::On {
                pending: self.pending,
            })
        } else {
            None
        }
    }

    fn admit(&mut self, marks: Marks) -> Option<Switch> {
        self.pending += 1;
        if !self.active && self.pending >= marks.high {
            self.active = true;
            return Some(Switch::On {
                pending: self.pending,
            });
        }
        None
    }

    fn switch_off_at_low(&mut self, marks: Marks) -> Option<Switch> {
        if self.active && self.pending <= marks.low {
            self.active = false;
            return Some(Switch::Off {
                pending: self.pending,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests;
