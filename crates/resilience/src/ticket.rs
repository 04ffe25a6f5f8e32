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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::mem::size_of;
    use std::rc::Rc;

    use super::*;

    /// Every end it is told of, in order.
    #[derive(Default)]
    struct Ends(RefCell<Vec<(u64, Outcome)>>);

    impl Slots for Ends {
        type Held = u64;

        fn end(&self, held: u64, outcome: Outcome) {
            self.0.borrow_mut().push((held, outcome));
        }
    }

    #[test]
    fn a_permit_ends_exactly_once_recorded_or_dropped() {
        let ends = Ends::default();
        Ticket::<Ends, _>::new(&ends, 1).record(Outcome::Success);
        drop(Ticket::<Ends, _>::new(&ends, 2));
        let owned = Rc::new(Ends::default());
        Ticket::<Ends, _>::new(Rc::clone(&owned), 3).record(Outcome::Failure);
        assert_eq!(
            *ends.0.borrow(),
            [(1, Outcome::Success), (2, Outcome::Ignored)]
        );
        assert_eq!(*owned.0.borrow(), [(3, Outcome::Failure)]);
        assert_eq!(Rc::strong_count(&owned), 1, "the handle is given back");
    }

    #[test]
    fn permits_fit_in_registers() {
        let word = size_of::<usize>();
        // A handle and one word: moved in two registers, never through memory.
        for (name, size) in [
            ("bulkhead", size_of::<crate::bulkhead::OwnedPermit>()),
            (
                "bulkhead borrowed",
                size_of::<crate::bulkhead::Permit<'_>>(),
            ),
            (
                "bulkhead kept",
                size_of::<Option<crate::bulkhead::OwnedPermit>>(),
            ),
            ("throttle", size_of::<crate::throttle::OwnedPermit>()),
            ("load shedder", size_of::<crate::load_shed::OwnedPermit>()),
            (
                "load shedder kept",
                size_of::<Option<crate::load_shed::OwnedPermit>>(),
            ),
        ] {
            assert_eq!(size, 2 * word, "{name}");
        }
        assert_eq!(size_of::<crate::backpressure::OwnedPermit>(), word);
        // The adaptive limiter keeps a start time and a count in flight besides its handle;
        // the count's zero niche keeps the tower layer's `Option` of a permit no larger.
        assert_eq!(size_of::<crate::adaptive::OwnedPermit>(), 3 * word);
        assert_eq!(size_of::<Option<crate::adaptive::OwnedPermit>>(), 3 * word);
        // The circuit breaker keeps the state its call was admitted in, and its start.
        assert_eq!(size_of::<crate::circuit_breaker::OwnedPermit>(), 3 * word);
        assert_eq!(size_of::<crate::circuit_breaker::Permit<'_>>(), 3 * word);
        assert_eq!(
            size_of::<Option<crate::circuit_breaker::OwnedPermit>>(),
            3 * word
        );
    }
}
