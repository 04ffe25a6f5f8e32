//! The FIFO queue of a [`LoadShedder`](super::LoadShedder): the slow path of admission, and
//! the hand-over of released slots to waiters.
//!
//! Every change of `queued` in the handle's counts word happens under the queue lock together
//! with the matching change to the waiters here, so the two always agree. `active` may still
//! change outside the lock (fast-path releases above a lowered cap), hence compare-exchange.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::handle::{Admitted, Inner};
use super::state::{self, Counts, Decision, Limits, SystemLoad, ONE_ACTIVE};
use super::Priority;

/// A request waiting in the queue; the slot is handed over through `grant`.
struct Waiter {
    id: u64,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
pub(super) struct Queue {
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

impl Inner {
    /// The slow path: joins the queue, unless a slot freed up meanwhile.
    pub(super) fn enqueue(
        &self,
        priority: Priority,
        limits: &Limits,
        system: Option<SystemLoad>,
    ) -> Admitted {
        let mut queue = self.lock_queue();
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let counts = Counts::unpack(word);
            let (decision, after) = state::decide(counts, priority, limits, system);
            if let Err(actual) = self.exchange(word, after) {
                word = actual;
                continue;
            }
            return match decision {
                Decision::Admit => {
                    drop(queue);
                    self.accepted(priority, after.active)
                }
                Decision::Shed(reason) => {
                    drop(queue);
                    self.shed(priority, counts.active, reason)
                }
                Decision::Queue => {
                    let (grant, granted) = oneshot::channel();
                    let id = queue.next_id;
                    queue.next_id += 1;
                    queue.waiters.push_back(Waiter { id, grant });
                    drop(queue);
                    tracing::trace!(target: "resilience::load_shed", shedder = %self.name, %priority, queued = after.queued, "request queued");
                    Admitted::Queued {
                        id,
                        grant: granted,
                        deadline: crate::time::deadline(Instant::now(), self.wait_timeout()),
                    }
                }
            };
        }
    }

    /// A waiter that timed out or was cancelled leaves the queue. Returns whether it had been
    /// granted a slot before it could leave (the caller then owns that slot).
    pub(super) fn leave(&self, id: u64, grant: &mut oneshot::Receiver<()>) -> bool {
        let mut queue = self.lock_queue();
        if let Some(position) = queue.waiters.iter().position(|waiter| waiter.id == id) {
            queue.waiters.remove(position);
            self.update(state::leave_queue);
            return false;
        }
        drop(queue);
        // Not queued any more, so a releaser popped it and sent the grant under the lock.
        grant.try_recv().is_ok()
    }

    /// Releases a slot: frees it, then, if anybody waits, admits the oldest waiters the
    /// room allows (the slot just freed among it).
    ///
    /// Freeing first is one read-modify-write that cannot fail. Reading the word and then
    /// swapping in a new one takes its cache line from the other cores twice, and has to
    /// start over whenever another core changed the word in between: with two threads taking
    /// and releasing slots of one shedder, the swap made a release about half again as dear.
    /// While anybody waits, newcomers queue behind them, so the slot freed for an instant is
    /// not taken from the queue.
    #[inline]
    pub(super) fn release(&self) {
        let before = Counts::unpack(self.word.fetch_sub(ONE_ACTIVE, Ordering::AcqRel));
        debug_assert!(before.active > 0, "a release without a permit");
        if before.queued > 0 {
            self.admit_waiters();
        }
    }

    /// Admits the oldest waiters while there is room: after a release that found somebody
    /// waiting, or after the cap was raised.
    #[cold]
    #[inline(never)]
    pub(super) fn admit_waiters(&self) {
        let max_requests = self.max_requests.load(Ordering::Relaxed);
        let mut queue = self.lock_queue();
        loop {
            let word = self.word.load(Ordering::Acquire);
            let Some(after) = state::admit_waiter(Counts::unpack(word), max_requests) else {
                return;
            };
            if self.exchange(word, after).is_err() {
                continue;
            }
            let waiter = queue.waiters.pop_front().expect("queued > 0");
            if waiter.grant.send(()).is_err() {
                drop(queue);
                self.release();
                queue = self.lock_queue();
            }
        }
    }
}
