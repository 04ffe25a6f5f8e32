//! [`Ticket`]: what a permit holds, written once for the permit that borrows
//! the handle and the one that owns a clone of it.
//!
//! A borrowed permit (`&'a Handle`) costs nothing to take and give back; an owned one
//! (`Handle`, a reference count) outlives the borrow, for a permit moved into a task or held
//! by a tower response future. Both end the same way: exactly once, by
//! [`record`](Ticket::record) or when dropped.

use std::borrow::Borrow;

use crate::classify::Outcome;

/// A handle whose permits hold something (a slot, a place in flight) until they end.
pub(crate) trait Slots {
    /// What a permit keeps besides the handle, handed back when it ends.
    type Held: Copy;

    /// Ends a permit: gives back what it held, with its call's outcome
    /// ([`Outcome::Ignored`] for a permit dropped without one).
    fn end(&self, held: Self::Held, outcome: Outcome);
}

/// A permit of handle `S`, which it borrows or owns as `H`, holding `S::Held`.
///
/// The handle is given up when the permit ends: that is how the permit knows it has ended,
/// without a flag of its own. Every handle is a reference or a reference count, so `None`
/// costs no room, and a permit whose `Held` is one word is two words, which move in
/// registers; a larger permit is copied through memory each time it moves, and read back
/// right after it was written, which costs more than the copy.
pub(crate) struct Ticket<S: Slots, H: Borrow<S>> {
    /// `None` once the permit has ended.
    handle: Option<H>,
    held: S::Held,
}

impl<S: Slots, H: Borrow<S>> Ticket<S, H> {
    /// A ticket for what the caller has already taken from `handle`.
    #[inline]
    pub(crate) fn new(handle: H, held: S::Held) -> Self {
        Self {
            handle: Some(handle),
            held,
        }
    }

    /// The handle the permit was taken from.
    #[inline]
    pub(crate) fn handle(&self) -> &S {
        self.holder().borrow()
    }

    /// The handle as the permit keeps it: for a borrowing permit, the borrow itself, which
    /// outlives the permit.
    #[inline]
    pub(crate) fn holder(&self) -> &H {
        self.handle
            .as_ref()
            .expect("a permit ends only when it is recorded or dropped")
    }

    /// What the permit holds.
    #[inline]
    pub(crate) fn held(&self) -> S::Held {
        self.held
    }

    /// Ends the permit with `outcome`.
    #[inline]
    pub(crate) fn record(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    /// Gives back what the permit holds, once.
    #[inline]
    fn end(&mut self, outcome: Outcome) {
        if let Some(handle) = self.handle.take() {
            handle.borrow().end(self.held, outcome);
        }
    }
}

impl<S: Slots, H: Borrow<S>> Drop for Ticket<S, H> {
    #[inline]
    fn drop(&mut self) {
        self.end(Outcome::Ignored);
    }
}
