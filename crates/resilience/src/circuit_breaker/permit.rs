//! [`Permit`]: admission by a circuit breaker, with the outcome reported by the caller.

use std::borrow::Borrow;
use std::fmt;

use tokio::time::Instant;

use super::handle::Inner;
use super::state::Ticket;
use super::{CircuitBreaker, CircuitState};
use crate::classify::Outcome;

/// An admitted call whose outcome is still to be reported. Releases itself on drop.
///
/// `B` is how the guard reaches the breaker: a borrow inside `call`, which saves a reference
/// count on the hot path, or an owned handle inside a [`Permit`].
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

/// Admission to make one call through a [`CircuitBreaker`], from
/// [`try_acquire`](CircuitBreaker::try_acquire), for callers that run the call themselves.
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
pub struct Permit(Guard<CircuitBreaker>);

impl Permit {
    #[inline]
    pub(super) fn new(guard: Guard<CircuitBreaker>) -> Self {
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

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.0.holder.name())
            .field("admitted_in", &self.0.ticket.admitted_in)
            .finish()
    }
}
