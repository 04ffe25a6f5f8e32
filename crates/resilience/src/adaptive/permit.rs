//! [`Permit`]: a slot of an adaptive limiter, reporting its call's outcome and latency.

use std::fmt;

use tokio::time::Instant;

use super::AdaptiveLimiter;
use crate::classify::Outcome;

/// A slot of an [`AdaptiveLimiter`], from [`try_acquire`](AdaptiveLimiter::try_acquire) or
/// [`acquire`](AdaptiveLimiter::acquire).
///
/// Report how the call went with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignore`](Self::ignore); the latency from admission to that moment goes to the algorithm
/// with the outcome. Dropping the permit without reporting counts as ignored (as a cancelled
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
pub struct Permit {
    limiter: AdaptiveLimiter,
    started: Instant,
    in_flight: u32,
    finished: bool,
}

impl Permit {
    pub(super) fn new(limiter: AdaptiveLimiter, started: Instant, in_flight: u32) -> Self {
        Self {
            limiter,
            started,
            in_flight,
            finished: false,
        }
    }

    /// When the call was admitted.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Calls in flight when it was admitted, itself included.
    pub fn in_flight_at_admission(&self) -> u32 {
        self.in_flight
    }

    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        self.finished = true;
        self.limiter
            .inner
            .complete(self.started, self.in_flight, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Outcome::Ignored);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("limiter", &self.limiter.name())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
