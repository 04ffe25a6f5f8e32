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
pub(crate) struct Ticket<S: Slots, H: Borrow<S>> {
    handle: H,
    held: S::Held,
    ended: bool,
}

impl<S: Slots, H: Borrow<S>> Ticket<S, H> {
    /// A ticket for what the caller has already taken from `handle`.
    #[inline]
    pub(crate) fn new(handle: H, held: S::Held) -> Self {
        Self {
            handle,
            held,
            ended: false,
        }
    }

    /// The handle the permit was taken from.
    #[inline]
    pub(crate) fn handle(&self) -> &S {
        self.handle.borrow()
    }

    /// The handle as the permit keeps it: for a borrowing permit, the borrow itself, which
    /// outlives the permit.
    #[inline]
    pub(crate) fn holder(&self) -> &H {
        &self.handle
    }

    /// What the permit holds.
    #[inline]
    pub(crate) fn held(&self) -> S::Held {
        self.held
    }

    /// Ends the permit with `outcome`.
    #[inline]
    pub(crate) fn record(mut self, outcome: Outcome) {
        self.ended = true;
        self.handle.borrow().end(self.held, outcome);
    }
}

impl<S: Slots, H: Borrow<S>> Drop for Ticket<S, H> {
    #[inline]
    fn drop(&mut self) {
        if !self.ended {
            self.handle.borrow().end(self.held, Outcome::Ignored);
        }
    }
}
