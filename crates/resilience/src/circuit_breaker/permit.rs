//! [`Permit`] and [`OwnedPermit`]: admission by a circuit breaker, with the outcome reported
//! by the caller.

use std::fmt;

use super::handle::{ticket_of_tag, Inner};
use super::{CircuitBreaker, CircuitState};
use crate::classify::Outcome;
use crate::started::Started;
use crate::ticket::{Slots, Ticket};

/// What a breaker's permit holds: the ticket its call was admitted with, packed in one word
/// as the breaker publishes its state, and when the call started. With the handle, three
/// words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted {
    pub(super) ticket: u64,
    pub(super) started: Started,
}

impl Admitted {
    /// The state the call was admitted in.
    pub(super) fn admitted_in(self) -> CircuitState {
        ticket_of_tag(self.ticket).admitted_in
    }
}

impl Slots for Inner {
    type Held = Admitted;

    /// A permit dropped without an outcome (a cancelled or abandoned call) counts as neither
    /// success nor failure, and a half-open probe's slot goes back.
    #[inline]
    fn end(&self, admitted: Admitted, outcome: Outcome) {
        self.complete(admitted, outcome);
    }
}

/// Admission to make one call through a [`CircuitBreaker`], borrowing it, from
/// [`try_acquire`](CircuitBreaker::try_acquire), for callers that run the call themselves;
/// [`OwnedPermit`] is the same without the borrow.
///
/// Report the outcome with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignore`](Self::ignore). Dropping the permit without reporting counts as ignored, so a
/// cancelled call never leaks a half-open probe slot.
///
/// ```
/// # use resilience::circuit_breaker::CircuitBreaker;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder("ledger").build()?;
/// let permit = breaker.try_acquire()?;
/// let answer: Result<u32, &str> = Ok(42); // the call, made by hand
/// match answer {
///     Ok(_) => permit.success(),
///     Err(_) => permit.failure(),
/// }
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the permit counts the call as ignored"]
pub struct Permit<'a>(Ticket<Inner, &'a Inner>);

/// Admission to make one call through a [`CircuitBreaker`], holding a reference to it, from
/// [`try_acquire_owned`](CircuitBreaker::try_acquire_owned): what the breaker hands out as a
/// [`Stage`](crate::stage::Stage) (to the tower layer and the HTTP adapters). It answers as a
/// [`Permit`] does, and can be moved into a task that outlives the breaker's handle.
#[must_use = "dropping the permit counts the call as ignored"]
pub struct OwnedPermit(Ticket<Inner, CircuitBreaker>);

fn debug<H: std::borrow::Borrow<Inner>>(
    ticket: &Ticket<Inner, H>,
    kind: &str,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    f.debug_struct(kind)
        .field("breaker", &ticket.handle().name())
        .field("admitted_in", &ticket.held().admitted_in())
        .finish()
}

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(inner: &'a Inner, admitted: Admitted) -> Self {
        Self(Ticket::new(inner, admitted))
    }

    /// The state the call was admitted in ([`HalfOpen`](CircuitState::HalfOpen) for a probe).
    pub fn admitted_in(&self) -> CircuitState {
        self.0.held().admitted_in()
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}

impl OwnedPermit {
    #[inline]
    pub(super) fn new(breaker: CircuitBreaker, admitted: Admitted) -> Self {
        Self(Ticket::new(breaker, admitted))
    }

    /// The state the call was admitted in ([`HalfOpen`](CircuitState::HalfOpen) for a probe).
    pub fn admitted_in(&self) -> CircuitState {
        self.0.held().admitted_in()
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`, as [`Permit::record`] does.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.0, "Permit", f)
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.0, "OwnedPermit", f)
    }
}
