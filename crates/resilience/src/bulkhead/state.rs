//! The pure core of the bulkhead: every decision as a plain function of plain numbers.
//!
//! The slots themselves are a word of free slots and queued calls (see `slots.rs`): a slot
//! given back while calls wait goes on to the longest waiting one (FIFO), and a wait dropped
//! while queued leaves the queue. What else is decided lives here, so it is tested without a
//! runtime:
//! * whether a call takes a free slot at once ([`enters_at_once`]): only when nobody waits,
//!   so a slot on its way to the queue is never taken by a newcomer;
//! * whether a call that cannot enter at once may join the queue ([`join_queue`]), which
//!   keeps the three rejection reasons apart;
//! * how many free slots go to waiting calls when a release finds some ([`hand_over`]);
//! * the bookkeeping of a live resize: growing frees slots (first paying off any debt),
//!   shrinking owes the removed slots as a *debt*, then takes the free slots against it;
//!   returning slots pay off the rest, one each ([`grow`], [`shrink`], [`settle`],
//!   [`on_release`]);
//! * the slots held, derived from the limit, the debt and the free slots ([`held`]), so
//!   the hot path keeps no counter of its own;
//! * the derived figures of a metric snapshot ([`ratio`], [`average`]).

use std::time::Duration;

use crate::RejectionReason;

/// Whether a call takes a free slot at once: one must be free, and nobody may be waiting.
///
/// A release frees its slot first and only then hands it to the queue. While calls wait, a
/// free slot is on its way to them, so a newcomer queues behind them instead of taking it.
pub(crate) fn enters_at_once(free: u32, waiting: u32) -> bool {
    free > 0 && waiting == 0
}

/// How many of `free` slots go to the `waiting` calls: as many as there are of both. A
/// release that finds calls waiting hands over every free slot it can, not only its own, so
/// a slot freed by a release still on its way is served too (that release then finds none).
pub(crate) fn hand_over(free: u32, waiting: u32) -> u32 {
    free.min(waiting)
}

/// Whether a call that cannot enter at once may wait, given how many wait already.
///
/// `Ok` carries the new number of waiters. Without a queue (`max_waiting == 0`) the call is
/// rejected as [`CapacityFull`](RejectionReason::CapacityFull); with a full one as
/// [`QueueFull`](RejectionReason::QueueFull).
pub(crate) fn join_queue(waiting: u32, max_waiting: u32) -> Result<u32, RejectionReason> {
    if max_waiting == 0 {
        Err(RejectionReason::CapacityFull)
    } else if waiting >= max_waiting {
        Err(RejectionReason::QueueFull)
    } else {
        Ok(waiting + 1)
    }
}

/// Growing by `added` slots while `debt` slots are owed: the growth first cancels the debt.
/// Returns `(slots to free, new debt)`.
pub(crate) fn grow(added: u32, debt: u32) -> (u32, u32) {
    let paid = added.min(debt);
    (added - paid, debt - paid)
}

/// Shrinking by `removed` slots, first step: all of them are owed, so that a slot returning
/// from now on pays the debt instead of going back. Returns the new debt.
pub(crate) fn shrink(removed: u32, debt: u32) -> u32 {
    debt.saturating_add(removed)
}

/// Shrinking, second step: `forgotten` free slots were taken, and they pay the debt off.
/// Those the debt no longer covers (returning slots paid it meanwhile) go back. Returns
/// `(slots to give back, new debt)`.
///
/// Owing before forgetting is what keeps a release racing the shrink honest: were the debt
/// recorded after the free slots were taken, a slot returning in between would go back
/// unowed, and the bulkhead would keep one slot too many until a later release.
pub(crate) fn settle(forgotten: u32, debt: u32) -> (u32, u32) {
    let paid = forgotten.min(debt);
    (forgotten - paid, debt - paid)
}

/// A slot comes back: it is freed (`true`) unless a debt is owed, which it pays
/// off instead. Returns `(give back, new debt)`.
pub(crate) fn on_release(debt: u32) -> (bool, u32) {
    match debt {
        0 => (true, 0),
        owed => (false, owed - 1),
    }
}

/// Slots held, from what is cheap to read: every slot is free, held or owed, so the held
/// ones are `limit + debt - free` (saturating, for a reading taken in the middle of a resize).
pub(crate) fn held(limit: u32, debt: u32, free: u32) -> u32 {
    let held = (u64::from(limit) + u64::from(debt)).saturating_sub(u64::from(free));
    u32::try_from(held).unwrap_or(u32::MAX)
}

/// `part / whole`, clamped to `0..=1`; 0 when `whole` is 0.
pub(crate) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).min(1.0)
    }
}

/// `total / count`, zero when `count` is 0.
pub(crate) fn average(total: Duration, count: u64) -> Duration {
    match u32::try_from(count) {
        Ok(0) => Duration::ZERO,
        Ok(count) => total / count,
        Err(_) => Duration::from_secs_f64(total.as_secs_f64() / count as f64),
    }
}

#[cfg(test)]
mod tests;
