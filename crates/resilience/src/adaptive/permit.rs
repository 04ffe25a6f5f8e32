//! [`Permit`] and [`OwnedPermit`]: a slot of an adaptive limiter, reporting its call's
//! outcome and latency.

use std::fmt;
use std::num::NonZeroU32;

use tokio::time::Instant;

use super::AdaptiveLimiter;
use crate::classify::Outcome;
use crate::started::Started;
use crate::ticket::{Slots, Ticket};

/// A slot of an [`AdaptiveLimiter`], borrowing it. Made by
/// [`try_acquire`](AdaptiveLimiter::try_acquire); [`OwnedPermit`] is the same without the
/// borrow.
///
/// Report how the call went with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignore`](Self::ignore); the outcome goes to the algorithm, with the latency from
/// admission to that moment if the algorithm learns from latency (AIMD does not). Dropping the permit without reporting counts as ignored (as a cancelled
/// call should), and the slot is always released: there is no `release()` to forget or to
/// call twice.
///
/// ```
/// # use resilience::adaptive::AdaptiveLimiter;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = AdaptiveLimiter::builder("search").build()?;
/// let permit = limiter.try_acquire()?;
/// let answer: Result<u32, &str> = Ok(42); // the call, made by hand
/// match answer {
///     Ok(_) => permit.success(),
///     Err(_) => permit.failure(),
/// }
/// assert_eq!(limiter.in_flight(), 0);
/// # Ok(())
/// # }
/// ```
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct Permit<'a>(Ticket<AdaptiveLimiter, &'a AdaptiveLimiter>);

/// A slot of an [`AdaptiveLimiter`], holding a reference to it so that it can be moved into a
/// task and outlive the handle it came from; it reports and releases as a [`Permit`] does.
/// Made by [`try_acquire_owned`](AdaptiveLimiter::try_acquire_owned), by
/// [`acquire`](AdaptiveLimiter::acquire), and what the limiter hands out as a
/// [`Stage`](crate::stage::Stage) (to the tower layer and the HTTP adapters).
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct OwnedPermit(Ticket<AdaptiveLimiter, AdaptiveLimiter>);

/// When a call was admitted, and the calls in flight with it: what its sample needs besides
/// the outcome.
///
/// The count includes the call itself, so it is never zero: that leaves room for the `None` of
/// an `Option` of a permit (where the tower layer keeps the permit for the next call), which
/// then is no larger than the permit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    pub(super) started: Started,
    pub(super) in_flight: NonZeroU32,
}

/// A permit ends its call: the slot is freed and the sample goes to the algorithm.
impl Slots for AdaptiveLimiter {
    type Held = Admission;

    #[inline]
    fn end(&self, admission: Admission, outcome: Outcome) {
        self.inner
            .complete(admission.started, admission.in_flight.get(), outcome);
    }
}

/// The accessors and the outcome shortcuts of both permits.
macro_rules! permit_methods {
    () => {
        /// When the call was admitted, if the limiter times its calls: it does when its
        /// algorithm learns from latency (Vegas, Gradient2, a custom one), not for AIMD,
        /// whose calls read no clock when admitted.
        pub fn started(&self) -> Option<Instant> {
            self.0.handle().inner.started_at(self.0.held().started)
        }

        /// Calls in flight when it was admitted, itself included.
        pub fn in_flight_at_admission(&self) -> u32 {
            self.0.held().in_flight.get()
        }

        /// The limiter this slot belongs to.
        pub fn limiter(&self) -> &AdaptiveLimiter {
            self.0.handle()
        }

        crate::classify::outcome_shortcuts!();

        /// Reports `outcome`.
        #[inline]
        pub fn record(self, outcome: Outcome) {
            self.0.record(outcome);
        }
    };
}

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(limiter: &'a AdaptiveLimiter, admission: Admission) -> Self {
        Self(Ticket::new(limiter, admission))
    }

    permit_methods!();
}

impl OwnedPermit {
    pub(super) fn new(limiter: AdaptiveLimiter, admission: Admission) -> Self {
        Self(Ticket::new(limiter, admission))
    }

    permit_methods!();
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("limiter", &self.limiter().name())
            .field("in_flight", &self.in_flight_at_admission())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("limiter", &self.limiter().name())
            .field("in_flight", &self.in_flight_at_admission())
            .finish_non_exhaustive()
    }
}
