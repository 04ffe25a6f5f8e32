//! [`Permit`] and [`OwnedPermit`]: one bulkhead slot, given back on drop.

use std::borrow::Borrow;
use std::fmt;

use tokio::time::Instant;

use super::Bulkhead;
use crate::classify::Outcome;

/// A taken slot; gives it back exactly once, when finished or dropped.
///
/// `B` is how the guard reaches the bulkhead: a borrow inside a [`Permit`], which saves a
/// reference count, or an owned handle inside an [`OwnedPermit`]. Either way it is a
/// [`Bulkhead`], which [`Permit::bulkhead`] hands out.
pub(super) struct Guard<B: Borrow<Bulkhead>> {
    holder: B,
    /// When the slot was taken, if the clock was read (see `Inner::entered`).
    started: Option<Instant>,
    finished: bool,
}

impl<B: Borrow<Bulkhead>> Guard<B> {
    #[inline]
    pub(super) fn new(holder: B, started: Option<Instant>) -> Self {
        Self {
            holder,
            started,
            finished: false,
        }
    }

    #[inline]
    fn bulkhead(&self) -> &Bulkhead {
        self.holder.borrow()
    }

    #[inline]
    fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.bulkhead().inner.release(self.started, outcome);
    }

    fn debug(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(kind)
            .field("bulkhead", &self.bulkhead().name())
            .finish()
    }
}

impl<B: Borrow<Bulkhead>> Drop for Guard<B> {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            // Cancelled, panicked or abandoned: the slot goes back, the outcome is unknown.
            self.bulkhead()
                .inner
                .release(self.started, Outcome::Ignored);
        }
    }
}

/// One slot of a [`Bulkhead`], borrowing it, from [`acquire`](Bulkhead::acquire) or
/// [`try_acquire`](Bulkhead::try_acquire), for callers that run the work themselves;
/// [`OwnedPermit`] is the same without the borrow.
///
/// The slot is given back when the permit is dropped; there is no `release()` to call, so a
/// slot can be neither released twice nor released without having been taken. Reporting the
/// outcome with [`success`](Self::success) or [`failure`](Self::failure) only feeds the
/// metrics; a permit dropped without one counts as ignored.
///
/// ```
/// # use resilience::bulkhead::Bulkhead;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder("exports").max_concurrent(1).build()?;
/// let permit = bulkhead.try_acquire()?;
/// assert!(bulkhead.try_acquire().is_err(), "the only slot is taken");
/// permit.success();
/// assert_eq!(bulkhead.available_slots(), 1);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the permit gives the slot back at once"]
pub struct Permit<'a>(Guard<&'a Bulkhead>);

/// One slot of a [`Bulkhead`], holding a reference to it, from
/// [`acquire_owned`](Bulkhead::acquire_owned) or
/// [`try_acquire_owned`](Bulkhead::try_acquire_owned): what the bulkhead hands out as a
/// [`Stage`](crate::stage::Stage) (to the tower layer and the HTTP adapters). It answers as
/// a [`Permit`] does, and can be moved into a task that outlives the bulkhead's handle.
#[must_use = "dropping the permit gives the slot back at once"]
pub struct OwnedPermit(Guard<Bulkhead>);

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(guard: Guard<&'a Bulkhead>) -> Self {
        Self(guard)
    }

    /// The bulkhead this slot belongs to.
    pub fn bulkhead(&self) -> &'a Bulkhead {
        self.0.holder
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome` and gives the slot back.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.finish(outcome);
    }
}

impl OwnedPermit {
    #[inline]
    pub(super) fn new(guard: Guard<Bulkhead>) -> Self {
        Self(guard)
    }

    /// The bulkhead this slot belongs to.
    pub fn bulkhead(&self) -> &Bulkhead {
        self.0.bulkhead()
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome` and gives the slot back.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.finish(outcome);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("Permit", f)
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("OwnedPermit", f)
    }
}
