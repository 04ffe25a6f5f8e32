//! [`SharedPermit`]: admission by a shared breaker, released on drop.

use std::fmt;

use resilience::circuit_breaker::{CircuitState, Permit};
use resilience::stage::StagePermit;

use super::sync::Outcome;
use super::RedisCircuitBreaker;

/// Admission by a [`RedisCircuitBreaker`]: report the call's outcome with
/// [`success`](Self::success), [`failure`](Self::failure) or [`ignore`](Self::ignore).
/// Dropping it without one counts as ignored.
///
/// A half-open probe also holds one of the fleet's probe leases; reporting (or dropping)
/// gives it back and counts the outcome in Redis, from a spawned task, so reporting never
/// waits on Redis.
pub struct SharedPermit {
    breaker: RedisCircuitBreaker,
    local: Option<Permit>,
    /// The probe lease and the shared version it was granted in.
    lease: Option<(String, u64)>,
}

impl SharedPermit {
    pub(super) fn new(
        breaker: RedisCircuitBreaker,
        local: Permit,
        lease: Option<(String, u64)>,
    ) -> Self {
        Self {
            breaker,
            local: Some(local),
            lease,
        }
    }

    /// The state the call was admitted in.
    pub fn admitted_in(&self) -> CircuitState {
        self.local
            .as_ref()
            .map_or(CircuitState::Closed, Permit::admitted_in)
    }

    /// Whether this call holds one of the shared half-open probe leases.
    pub fn is_shared_probe(&self) -> bool {
        self.lease.is_some()
    }

    /// The call succeeded.
    pub fn success(mut self) {
        self.finish(Outcome::Success);
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.finish(Outcome::Failure);
    }

    /// The call's outcome says nothing about the dependency's health.
    pub fn ignore(mut self) {
        self.finish(Outcome::Ignored);
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(local) = self.local.take() {
            match outcome {
                Outcome::Success => local.success(),
                Outcome::Failure => local.failure(),
                Outcome::Ignored => local.ignore(),
            }
        }
        Self::release(self.breaker.clone(), self.lease.take(), outcome);
    }

    /// Gives a lease back in the background. Without a runtime (a permit dropped after
    /// shutdown) the lease simply expires.
    pub(super) fn release(
        breaker: RedisCircuitBreaker,
        lease: Option<(String, u64)>,
        outcome: Outcome,
    ) {
        let Some((id, version)) = lease else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { breaker.inner.release(&id, version, outcome).await });
        }
    }
}

impl StagePermit for SharedPermit {
    /// The outcome counts locally and, for a probe, in Redis.
    fn wants_outcome(&self) -> bool {
        true
    }

    fn record(mut self, outcome: resilience::classify::Outcome) {
        use resilience::classify::Outcome as Judged;
        self.finish(match outcome {
            Judged::Success => Outcome::Success,
            Judged::Failure => Outcome::Failure,
            Judged::Ignored => Outcome::Ignored,
        });
    }
}

impl Drop for SharedPermit {
    fn drop(&mut self) {
        self.finish(Outcome::Ignored);
    }
}

impl fmt::Debug for SharedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPermit")
            .field("breaker", &self.breaker.name())
            .field("admitted_in", &self.admitted_in())
            .field("shared_probe", &self.is_shared_probe())
            .finish()
    }
}
