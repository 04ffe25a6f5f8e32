//! From Redis to the local breaker: deciding what a shared state read or written means here
//! (newer, a new lifetime of the record, or a regression), and bringing the local breaker to
//! it.

use std::cmp::Ordering;
use std::sync::MutexGuard;
use std::time::Duration;

use resilience::circuit_breaker::CircuitState;

use super::hook::{quietly, Change};
use super::sync::MAX_ROUNDS;
use super::{bump, epoch_arg, millis, new_epoch, shared, Inner, Known, Reply, SharedState};
use crate::BackendError;

/// What to do after reading a shared state.
enum Next {
    Done,
    /// Redis lost an open circuit this instance still holds: write it again.
    Rewrite(Change),
    /// The record went back in time within its lifetime: give it a new epoch.
    Renew(Known),
}

fn blocks(state: CircuitState) -> bool {
    matches!(state, CircuitState::Open | CircuitState::ForcedOpen)
}

impl Inner {
    pub(super) fn known(&self) -> MutexGuard<'_, Known> {
        self.known
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn set_known(&self, known: &mut Known, to: Known) {
        *known = to;
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }

    /// Adopts the shared state found on start-up, whatever its lifetime: this instance has
    /// seen none before.
    pub(super) fn start_from(&self, state: &SharedState) {
        let mut known = self.known();
        self.set_known(&mut known, Known::of(state));
        self.apply(state);
    }

    /// Applies a shared state newer than the last one applied, in the same lifetime of the
    /// record; returns whether it did. For answers that may arrive out of order (probes and
    /// their releases run concurrently); the sync task's `settle` handles the rest.
    pub(super) fn adopt(&self, state: &SharedState) -> bool {
        let mut known = self.known();
        if state.epoch != known.epoch || state.version <= known.version {
            return false;
        }
        self.set_known(&mut known, Known::of(state));
        self.apply(state);
        true
    }

    /// Brings the local breaker to `state`, without writing the transition back. An open
    /// circuit opens the local breaker for the shared time left, not for its own duration.
    pub(super) fn apply(&self, state: &SharedState) {
        let local = &self.local;
        let current = local.state();
        quietly(|| match state.state {
            CircuitState::Closed
                if !matches!(current, CircuitState::Closed | CircuitState::Disabled) =>
            {
                local.reset();
            }
            // An open circuit reopens a local half-open one too (a probe failed elsewhere).
            CircuitState::Open
                if matches!(
                    current,
                    CircuitState::Closed | CircuitState::HalfOpen | CircuitState::Open
                ) =>
            {
                local.open_for(state.open_remaining.unwrap_or_default());
            }
            // The shared open period is over: the local breaker probes at its next call.
            CircuitState::HalfOpen
                if matches!(current, CircuitState::Closed | CircuitState::Open) =>
            {
                local.open_for(Duration::ZERO);
            }
            CircuitState::ForcedOpen
                if !matches!(current, CircuitState::ForcedOpen | CircuitState::Disabled) =>
            {
                local.force_open();
            }
            _ => {}
        });
    }

    /// Decides what a shared state read (or written, `own`) by the sync task means here.
    /// The sync task makes one request at a time, so its answers arrive in order and a
    /// version lower than a known one is a regression, not a late answer.
    fn reconcile(&self, state: &SharedState, own: bool) -> Next {
        let mut known = self.known();
        let read = Known::of(state);
        if state.epoch == known.epoch {
            return match state.version.cmp(&known.version) {
                Ordering::Greater => {
                    self.set_known(&mut known, read);
                    if !own {
                        self.apply(state);
                        bump(&self.counters.applied);
                    }
                    Next::Done
                }
                Ordering::Equal if !own => Next::Done,
                // Lower than a version seen before (or our own write made one we had seen):
                // Redis lost the newer writes, for example by failing over to a replica that
                // had not received them. Another instance may still hold the lost version's
                // number with another state, so the record needs a new lifetime.
                _ => Next::Renew(read),
            };
        }
        // Another lifetime of the record: whatever Redis holds now is the truth, even with
        // a lower version, except that an open circuit this instance holds must not be
        // forgotten because Redis forgot it.
        self.set_known(&mut known, read);
        if own {
            return Next::Done;
        }
        let local = self.local.state();
        let rewrite = match local {
            CircuitState::ForcedOpen if state.state != CircuitState::ForcedOpen => {
                Some(Change::ForcedOpen)
            }
            CircuitState::Open if !blocks(state.state) => Some(Change::Opened {
                open_for: self
                    .local
                    .metrics()
                    .remaining_open_time
                    .unwrap_or(Duration::ZERO),
            }),
            _ => None,
        };
        if let Some(change) = rewrite {
            return Next::Rewrite(change);
        }
        self.apply(state);
        bump(&self.counters.applied);
        Next::Done
    }

    /// Follows a shared state the sync task read or wrote, renewing a regressed record;
    /// returns a write still to make.
    pub(super) async fn settle(
        &self,
        mut state: SharedState,
        mut own: bool,
    ) -> Result<Option<Change>, BackendError> {
        for _ in 0..MAX_ROUNDS {
            match self.reconcile(&state, own) {
                Next::Done => return Ok(None),
                Next::Rewrite(change) => return Ok(Some(change)),
                Next::Renew(read) => {
                    let mut invocation = self.scripts.renew.key(&self.state_key);
                    invocation
                        .arg(epoch_arg(read.epoch))
                        .arg(read.version)
                        .arg(millis(self.state_ttl))
                        .arg(new_epoch());
                    let reply: Reply = self.backend.run(&invocation).await?;
                    state = shared(&reply)?;
                    own = false;
                }
            }
        }
        Ok(None)
    }
}

impl Known {
    fn of(state: &SharedState) -> Self {
        Self {
            epoch: state.epoch,
            version: state.version,
        }
    }
}
