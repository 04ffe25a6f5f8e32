//! [`Permit`] and [`OwnedPermit`]: one bulkhead slot, given back on drop.

use std::fmt;

use tokio::time::Instant;

use super::Bulkhead;
use crate::classify::Outcome;
use crate::started::Started;
use crate::ticket::{Slots, Ticket};

/// A permit holds when its slot was taken, if the clock was read for a listener of
/// `bulkhead_released` (see `Inner::try_enter`).
impl Slots for Bulkhead {
    type Held = Started;

    #[inline(always)]
    fn end(&self, started: Started, outcome: Outcome) {
        self.inner.release(started, outcome);
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
pub struct Permit<'a>(Ticket<Bulkhead, &'a Bulkhead>);

/// One slot of a [`Bulkhead`], holding a reference to it, from
/// [`acquire_owned`](Bulkhead::acquire_owned) or
/// [`try_acquire_owned`](Bulkhead::try_acquire_owned): what the bulkhead hands out as a
/// [`Stage`](crate::stage::Stage) (to the tower layer and the HTTP adapters). It answers as
/// a [`Permit`] does, and can be moved into a task that outlives the bulkhead's handle.
#[must_use = "dropping the permit gives the slot back at once"]
pub struct OwnedPermit(Ticket<Bulkhead, Bulkhead>);

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(bulkhead: &'a Bulkhead, started: Option<Instant>) -> Self {
        let started = bulkhead.inner.started(started);
        Self(Ticket::new(bulkhead, started))
    }

    /// The bulkhead this slot belongs to.
    pub fn bulkhead(&self) -> &'a Bulkhead {
        self.0.holder()
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome` and gives the slot back.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}

impl OwnedPermit {
    #[inline]
    pub(super) fn new(bulkhead: Bulkhead, started: Option<Instant>) -> Self {
        let started = bulkhead.inner.started(started);
        Self(Ticket::new(bulkhead, started))
    }

    /// The bulkhead this slot belongs to.
    pub fn bulkhead(&self) -> &Bulkhead {
        self.0.handle()
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome` and gives the slot back.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("bulkhead", &self.bulkhead().name())
            .finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("bulkhead", &self.bulkhead().name())
            .finish()
    }
}
