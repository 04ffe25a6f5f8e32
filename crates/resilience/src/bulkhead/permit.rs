//! [`Permit`]: one bulkhead slot, given back on drop.

use std::fmt;

use tokio::time::Instant;

use super::Bulkhead;
use crate::classify::Outcome;

/// A taken slot; gives it back exactly once, when finished or dropped.
pub(super) struct Guard {
    holder: Bulkhead,
    /// When the slot was taken, if the clock was read (see `Inner::entered`).
    started: Option<Instant>,
    finished: bool,
}

impl Guard {
    #[inline]
    pub(super) fn new(holder: Bulkhead, started: Option<Instant>) -> Self {
        Self {
            holder,
            started,
            finished: false,
        }
    }

    #[inline]
    pub(super) fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.holder.inner.release(self.started, outcome);
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            // Cancelled, panicked or abandoned: the slot goes back, the outcome is unknown.
            self.holder.inner.release(self.started, Outcome::Ignored);
        }
    }
}

/// One slot of a [`Bulkhead`], from [`acquire`](Bulkhead::acquire) or
/// [`try_acquire`](Bulkhead::try_acquire), for callers that run the work themselves.
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
pub struct Permit(Guard);

impl Permit {
    #[inline]
    pub(super) fn new(guard: Guard) -> Self {
        Self(guard)
    }

    /// The bulkhead this slot belongs to.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.0.holder
    }

    /// The work succeeded; gives the slot back.
    pub fn success(self) {
        self.0.finish(Outcome::Success);
    }

    /// The work failed; gives the slot back.
    pub fn failure(self) {
        self.0.finish(Outcome::Failure);
    }

    /// Reports `outcome` and gives the slot back.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.finish(outcome);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("bulkhead", &self.0.holder.name())
            .finish()
    }
}
