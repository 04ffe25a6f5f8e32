//! Admission control as one trait, so a pipeline (or any caller) can use any limiter alike.
//!
//! An [`Admission`] decides, before a call runs, whether it may run, waiting if its policy says
//! so (a bulkhead queue, backpressure), and hands out an [`AdmissionPermit`] that holds the
//! slot while the call runs. The permit is released when dropped, whether the call finished,
//! failed, panicked or was cancelled, so nothing can leak. Limiters that learn from outcomes
//! (adaptive concurrency) take the outcome through [`AdmissionPermit::complete`].
//!
//! Implemented by the bulkhead, load shedder, backpressure controller, adaptive concurrency
//! limiter and rate limiters, by `()` (admits everything, at no cost) and by pairs, which admit
//! through both in order, so several limiters can share one pipeline slot.

use std::future::Future;

use crate::classify::Outcome;
use crate::Rejection;

/// Something that admits or refuses calls before they run.
pub trait Admission: Send + Sync {
    /// What an admitted call holds while it runs.
    type Permit: AdmissionPermit;

    /// Waits for admission as the policy allows (for example a bounded queue), or refuses with
    /// a [`Rejection`] saying why and, when known, when to come back. Dropping the future
    /// gives up the place in any queue.
    fn admit(&self) -> impl Future<Output = Result<Self::Permit, Rejection>> + Send;
}

/// Held by an admitted call; dropping it releases the slot.
pub trait AdmissionPermit: Send {
    /// Whether [`complete`](Self::complete) uses the outcome, so callers can skip judging the
    /// result (which runs user predicates) for permits that would ignore it.
    fn wants_outcome(&self) -> bool {
        false
    }

    /// Reports how the call went, then releases. Dropping without calling this releases too,
    /// with the outcome unknown (as for a cancelled call).
    fn complete(self, outcome: Outcome)
    where
        Self: Sized,
    {
        let _ = outcome;
    }
}

impl Admission for () {
    type Permit = ();

    async fn admit(&self) -> Result<(), Rejection> {
        Ok(())
    }
}

impl AdmissionPermit for () {}

impl<A: Admission, B: Admission> Admission for (A, B) {
    type Permit = (A::Permit, B::Permit);

    /// Admits through `A`, then `B`; a refusal by `B` releases `A`'s permit.
    async fn admit(&self) -> Result<Self::Permit, Rejection> {
        let first = self.0.admit().await?;
        let second = self.1.admit().await?;
        Ok((first, second))
    }
}

impl<A: AdmissionPermit, B: AdmissionPermit> AdmissionPermit for (A, B) {
    fn wants_outcome(&self) -> bool {
        self.0.wants_outcome() || self.1.wants_outcome()
    }

    fn complete(self, outcome: Outcome) {
        self.1.complete(outcome);
        self.0.complete(outcome);
    }
}
