//! Leases: admission for a call that ends while the stage is still borrowed, as [`call`]
//! runs it, so a stage need not hand out a permit that owns a handle to it.
//!
//! [`call`]: super::call

use std::fmt;

use tokio::time::Instant;

use super::{Admit, Stage};
use crate::classify::Outcome;
use crate::Rejection;

/// The answer of [`Stage::lease`].
#[derive(Debug)]
pub enum Leased<P> {
    /// Admitted now; the stage keeps its own account of the call and learns its end through
    /// [`Stage::end_lease`] with this token.
    Token(LeaseToken),
    /// Refused now.
    Rejected(Rejection),
    /// Answered the way [`Stage::admit`] answers: a permit, a rejection, or a wait.
    Admit(Admit<P>),
}

/// What a stage needs to close the account of a call it admitted by lease: a word of its own
/// (which state or generation admitted the call, say) and, if it measures calls, when the
/// call started.
///
/// It is handed back exactly once, to [`Stage::end_lease`] of the stage that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseToken {
    tag: u64,
    started: Option<Instant>,
    wants_outcome: bool,
}

impl LeaseToken {
    /// A token carrying `tag`, with no start time, for a stage that ignores outcomes.
    #[inline]
    pub fn new(tag: u64) -> Self {
        Self {
            tag,
            started: None,
            wants_outcome: false,
        }
    }

    /// With the time the call started, for a stage that measures how long calls take.
    #[inline]
    #[must_use]
    pub fn started_at(self, started: Option<Instant>) -> Self {
        Self { started, ..self }
    }

    /// Asks for the call's outcome (see [`StagePermit::wants_outcome`](super::StagePermit::wants_outcome)): without it,
    /// [`end_lease`](Stage::end_lease) is told [`Outcome::Ignored`] and the result is not
    /// judged.
    #[inline]
    #[must_use]
    pub fn wanting_outcome(self) -> Self {
        Self {
            wants_outcome: true,
            ..self
        }
    }

    /// The stage's own word.
    #[inline]
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// When the call started, if the stage recorded it.
    #[inline]
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Whether the stage wants the call's outcome.
    #[inline]
    pub fn wants_outcome(&self) -> bool {
        self.wants_outcome
    }
}

/// What a call admitted by lease holds while [`call`](super::call) runs it: the borrowed
/// stage and its token. Ends the lease when told the outcome or when dropped, so a cancelled
/// call releases what it held.
pub(super) struct Lease<'a, S: Stage + ?Sized> {
    stage: &'a S,
    /// `None` once the lease has ended.
    token: Option<LeaseToken>,
}

impl<'a, S: Stage + ?Sized> Lease<'a, S> {
    #[inline]
    pub(super) fn new(stage: &'a S, token: LeaseToken) -> Self {
        Self {
            stage,
            token: Some(token),
        }
    }

    /// Whether the stage wants the call's outcome.
    #[inline]
    pub(super) fn wants_outcome(&self) -> bool {
        self.token.is_some_and(|token| token.wants_outcome)
    }

    /// Ends the lease with `outcome`, once: a lease that has ended ignores it.
    ///
    /// Through a borrow rather than by value, so that ending a lease reads the token where
    /// it lies instead of moving the whole lease first.
    #[inline]
    pub(super) fn end(&mut self, outcome: Outcome) {
        if let Some(token) = self.token.take() {
            self.stage.end_lease(token, outcome);
        }
    }
}

impl<S: Stage + ?Sized> Drop for Lease<'_, S> {
    #[inline]
    fn drop(&mut self) {
        // Cancelled, panicked or abandoned, if it has not ended: the outcome is unknown.
        self.end(Outcome::Ignored);
    }
}

impl<S: Stage + ?Sized> fmt::Debug for Lease<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("stage", &self.stage.name())
            .field("token", &self.token)
            .finish()
    }
}
