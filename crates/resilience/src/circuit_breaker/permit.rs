//! [`Permit`] and [`OwnedPermit`]: admission by a circuit breaker, with the outcome reported
//! by the caller.

use std::borrow::Borrow;
use std::fmt;

use tokio::time::Instant;

use super::handle::Inner;
use super::state::Ticket;
use super::{CircuitBreaker, CircuitState};
use crate::classify::Outcome;

/// An admitted call whose outcome is still to be reported. Releases itself on drop.
///
/// `B` is how the guard reaches the breaker: a borrow inside a [`Permit`], which saves a
/// reference count on the hot path, or an owned handle inside an [`OwnedPermit`].
pub(super) struct Guard<B: Borrow<Inner>> {
    holder: B,
    ticket: Ticket,
    started: Option<Instant>,
    finished: bool,
}

impl<B: Borrow<Inner>> Guard<B> {
    #[inline]
    pub(super) fn new(holder: B, ticket: Ticket, started: Option<Instant>) -> Self {
        Self {
            holder,
            ticket,
            started,
            finished: false,
        }
    }

    /// The ticket and start time, for a lease that ends the call itself; the guard no longer
    /// releases anything.
    #[inline]
    pub(super) fn into_parts(mut self) -> (Ticket, Option<Instant>) {
        self.finished = true;
        (self.ticket, self.started)
    }

    #[inline]
    pub(super) fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.holder
            .borrow()
            .complete(self.ticket, outcome, self.started);
    }
}

impl<B: Borrow<Inner>> Drop for Guard<B> {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            // Cancelled or abandoned: neither success nor failure, and a probe slot goes back.
            self.holder
                .borrow()
                .complete(self.ticket, Outcome::Ignored, self.started);
        }
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
pub struct Permit<'a>(Guard<&'a Inner>);

/// Admission to make one call through a [`CircuitBreaker`], holding a reference to it, from
/// [`try_acquire_owned`](CircuitBreaker::try_acquire_owned): what the breaker hands out as a
/// [`Stage`](crate::stage::Stage) (to the tower layer and the HTTP adapters). It answers as a
/// [`Permit`] does, and can be moved into a task that outlives the breaker's handle.
#[must_use = "dropping the permit counts the call as ignored"]
pub struct OwnedPermit(Guard<CircuitBreaker>);

impl<B: Borrow<Inner>> Guard<B> {
    fn debug(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(kind)
            .field("breaker", &self.holder.borrow().name())
            .field("admitted_in", &self.ticket.admitted_in)
            .finish()
    }
}

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(guard: Guard<&'a Inner>) -> Self {
        Self(guard)
    }

    /// The state the call was admitted in ([`HalfOpen`](CircuitState::HalfOpen) for a probe).
    pub fn admitted_in(&self) -> CircuitState {
        self.0.ticket.admitted_in
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.finish(outcome);
    }
}

impl OwnedPermit {
    #[inline]
    pub(super) fn new(guard: Guard<CircuitBreaker>) -> Self {
        Self(guard)
    }

    /// The state the call was admitted in ([`HalfOpen`](CircuitState::HalfOpen) for a probe).
    pub fn admitted_in(&self) -> CircuitState {
        self.0.ticket.admitted_in
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`, as [`Permit::record`] does.
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
