//! [`SharedPermit`]: admission by a shared breaker, released on drop.

use std::fmt;

use resilience::circuit_breaker::{CircuitState, OwnedPermit};
use resilience::stage::StagePermit;

use super::sync::Outcome;
use super::RedisCircuitBreaker;

/// One of the fleet's half-open probe leases, with the shared state it was granted in.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) id: String,
    pub(super) epoch: u64,
    pub(super) version: u64,
}

/// Admission by a [`RedisCircuitBreaker`]: report the call's outcome with
/// [`success`](Self::success), [`failure`](Self::failure) or [`ignore`](Self::ignore).
/// Dropping it without one counts as ignored.
///
/// A half-open probe also holds one of the fleet's probe leases; reporting (or dropping)
/// gives it back and counts the outcome in Redis, from a spawned task, so reporting never
/// waits on Redis. Outside a Tokio runtime (a permit dropped after shutdown, or handed to
/// a plain thread) it is given back from a short-lived thread of its own, over a blocking
/// connection, so the lease does not block the fleet's probes until it expires.
pub struct SharedPermit {
    breaker: RedisCircuitBreaker,
    local: Option<OwnedPermit>,
    lease: Option<Lease>,
}

impl SharedPermit {
    pub(super) fn new(
        breaker: RedisCircuitBreaker,
        local: OwnedPermit,
        lease: Option<Lease>,
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
            .map_or(CircuitState::Closed, OwnedPermit::admitted_in)
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

    /// Gives a lease back in the background: on the current runtime if there is one, else
    /// from a thread of its own over a blocking connection (the backend's connection is
    /// driven by a runtime that may be gone).
    pub(super) fn release(breaker: RedisCircuitBreaker, lease: Option<Lease>, outcome: Outcome) {
        let Some(lease) = lease else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { breaker.inner.release(&lease, outcome).await });
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("resilience-redis-release".into())
            .spawn(move || breaker.inner.release_blocking(&lease, outcome));
        if let Err(error) = spawned {
            // No thread either: the lease expires by itself after `probe_lease`.
            tracing::debug!(target: "resilience::redis", %error, "could not give a probe lease back");
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

/// A probe lease asked for and not yet known to be granted or refused. Dropped armed (the
/// asking future was cancelled, or Redis's answer was lost), it gives the lease back: the
/// script may have granted it, and releasing a lease that does not exist is harmless.
pub(super) struct PendingLease {
    breaker: Option<RedisCircuitBreaker>,
    id: String,
}

impl PendingLease {
    pub(super) fn new(breaker: RedisCircuitBreaker, id: String) -> Self {
        Self {
            breaker: Some(breaker),
            id,
        }
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The script granted it in this shared state: the caller owns it now.
    pub(super) fn granted(mut self, epoch: u64, version: u64) -> Lease {
        self.breaker = None;
        Lease {
            id: std::mem::take(&mut self.id),
            epoch,
            version,
        }
    }

    /// The script refused it: there is nothing to give back.
    pub(super) fn forget(mut self) {
        self.breaker = None;
    }
}

impl Drop for PendingLease {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take() {
            let lease = Lease {
                id: std::mem::take(&mut self.id),
                epoch: 0,
                version: 0,
            };
            SharedPermit::release(breaker, Some(lease), Outcome::Ignored);
        }
    }
}
