//! Keeping the local breaker and the shared state in step: local transitions reach the sync
//! task through the local breaker's transition hook, in the order they happened; the task
//! writes them to Redis and polls the shared state every `sync_interval`.

use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitState, StateTransition};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::permit::Lease;
use super::{bump, epoch_arg, micros, millis, new_epoch, shared, Inner, Known, Reply, SharedState};
use crate::BackendError;

/// A transition of the local breaker that the shared state should follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The detector tripped (or `trip()`): open for `open_for`.
    Opened { open_for: Duration },
    /// `force_open()`.
    ForcedOpen,
    /// Closed. After successful local probes, `expected` is the shared state this instance
    /// knew when its breaker closed: the close applies only if the shared state is still
    /// that one. An operator's reset has none and applies whatever the shared state.
    Reset { expected: Option<Known> },
}

/// A probe's outcome, counted in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Success,
    Failure,
    Ignored,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Ignored => "ignored",
        }
    }
}

/// How many writes one change may lead to (a rewrite after a lost state, a renewal after a
/// regressed one). A record changing under us that often is left to the next poll.
const MAX_ROUNDS: usize = 3;

thread_local! {
    /// Set while this crate drives the local breaker itself (applying a shared state, an
    /// operator's reset): the transitions that causes must not be written back as the
    /// breaker's own. The hook runs synchronously on the thread that made the transition,
    /// so a thread-local tells the two apart exactly.
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the transition hook silenced on this thread.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            APPLYING.with(|applying| applying.set(self.0));
        }
    }
    let _restore = Restore(APPLYING.with(|applying| applying.replace(true)));
    f()
}

/// The local breaker's transition hook: forwards its transitions to the sync task. It runs
/// under the breaker's lock, so the changes queue up in the order the transitions happened,
/// and it only reads `seen` (never held while calling the breaker) and sends on an
/// unbounded channel: no await, no lock that could wait for the breaker.
pub(super) fn hook(
    changes: mpsc::UnboundedSender<Change>,
    seen: Arc<Mutex<Known>>,
) -> impl Fn(&StateTransition) + Send + Sync {
    move |transition| {
        if APPLYING.with(Cell::get) {
            return;
        }
        let change = match transition.to {
            CircuitState::Open => Change::Opened {
                open_for: transition.open_for.unwrap_or_default(),
            },
            CircuitState::ForcedOpen => Change::ForcedOpen,
            // Captured now, not when the write happens: a reopen adopted in between must
            // make this close fail, not be overwritten by it.
            CircuitState::Closed if transition.from == CircuitState::HalfOpen => Change::Reset {
                expected: Some(*seen.lock().unwrap_or_else(|p| p.into_inner())),
            },
            CircuitState::Closed => Change::Reset { expected: None },
            _ => return,
        };
        let _ = changes.send(change);
    }
}

/// The sync task: writes local transitions as they come and polls every `interval`. Ends
/// when the breaker is dropped (its hook, holding the sender, is replaced).
pub(super) async fn run(
    weak: Weak<Inner>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let change = tokio::select! {
            change = changes.recv() => match change {
                Some(change) => Some(change),
                None => return,
            },
            _ = tick.tick() => None,
        };
        let Some(inner) = weak.upgrade() else {
            return;
        };
        match change {
            Some(change) => inner.push(change).await,
            None => inner.poll().await,
        }
    }
}

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
    async fn settle(
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

    /// Writes a local transition (and what follows from the answer), or keeps it for later
    /// if Redis is down.
    pub(super) async fn push(&self, change: Change) {
        let mut next = Some(change);
        for _ in 0..MAX_ROUNDS {
            let Some(change) = next.take() else {
                return;
            };
            if !self.backend.is_healthy() {
                self.keep(change);
                return;
            }
            match self.write(change).await {
                Ok(then) => next = then,
                Err(error) => {
                    self.failed(&error);
                    self.keep(change);
                    return;
                }
            }
        }
    }

    fn keep(&self, change: Change) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(change);
    }

    async fn write(&self, change: Change) -> Result<Option<Change>, BackendError> {
        let ttl = millis(self.state_ttl);
        let reply: Reply = match change {
            Change::Opened { .. } | Change::ForcedOpen => {
                let (open_for, force) = match change {
                    Change::Opened { open_for } => (open_for, 0),
                    _ => (Duration::ZERO, 1),
                };
                let mut invocation = self.scripts.trip.key(&self.state_key);
                invocation
                    .key(&self.probes_key)
                    .key(&self.votes_key)
                    .arg(micros(open_for))
                    .arg(ttl)
                    .arg(force)
                    .arg(self.quorum)
                    .arg(micros(self.quorum_window))
                    .arg(format!("{:016x}", self.instance))
                    .arg(new_epoch());
                self.backend.run(&invocation).await?
            }
            Change::Reset { expected } => {
                let (epoch, version) = match expected {
                    Some(known) => (
                        epoch_arg(known.epoch),
                        i64::try_from(known.version).unwrap_or(i64::MAX),
                    ),
                    None => (String::new(), -1),
                };
                let mut invocation = self.scripts.reset.key(&self.state_key);
                invocation
                    .key(&self.probes_key)
                    .key(&self.votes_key)
                    .arg(epoch)
                    .arg(version)
                    .arg(ttl)
                    .arg(new_epoch());
                self.backend.run(&invocation).await?
            }
        };
        let state = shared(&reply)?;
        bump(&self.counters.writes);
        let own = reply.0 == 1;
        if !own {
            bump(&self.counters.conflicts);
        }
        self.settle(state, own).await
    }

    /// One sync round: retry a kept write, then read the shared state and follow it.
    pub(super) async fn poll(&self) {
        if !self.backend.is_healthy() {
            return;
        }
        let kept = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(change) = kept {
            self.push(change).await;
        }
        let reply: Result<Reply, _> = self
            .backend
            .run(&self.scripts.read.key(&self.state_key))
            .await;
        let state = match reply.and_then(|reply| shared(&reply)) {
            Ok(state) => state,
            Err(error) => {
                self.failed(&error);
                return;
            }
        };
        match self.settle(state, false).await {
            Ok(Some(change)) => self.push(change).await,
            Ok(None) => {}
            Err(error) => self.failed(&error),
        }
    }

    fn release_invocation<'a>(
        &'a self,
        lease: &'a Lease,
        outcome: Outcome,
    ) -> redis::ScriptInvocation<'a> {
        let config = self.local.config();
        let mut invocation = self.scripts.release.key(&self.state_key);
        invocation
            .key(&self.probes_key)
            .arg(&lease.id)
            .arg(epoch_arg(lease.epoch))
            .arg(lease.version)
            .arg(outcome.as_str())
            .arg(config.success_threshold)
            .arg(micros(config.open_duration))
            .arg(millis(self.state_ttl))
            .arg(new_epoch());
        invocation
    }

    /// Gives a probe lease back and counts its outcome; applies the shared state it returns.
    pub(super) async fn release(&self, lease: &Lease, outcome: Outcome) {
        let reply = self
            .backend
            .run::<Reply>(&self.release_invocation(lease, outcome))
            .await;
        self.released(reply);
    }

    /// `release` for a thread without a runtime.
    pub(super) fn release_blocking(&self, lease: &Lease, outcome: Outcome) {
        let reply = self
            .backend
            .run_blocking::<Reply>(&self.release_invocation(lease, outcome));
        self.released(reply);
    }

    fn released(&self, reply: Result<Reply, BackendError>) {
        match reply.and_then(|reply| shared(&reply)) {
            Ok(state) => {
                if self.adopt(&state) {
                    bump(&self.counters.applied);
                }
            }
            // The lease expires by itself.
            Err(error) => self.failed(&error),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use resilience::circuit_breaker::CircuitBreaker;

    #[test]
    fn a_close_after_probes_expects_the_shared_state_known_when_it_closed() {
        let (sender, mut changes) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Known {
            epoch: 7,
            version: 4,
        }));
        let breaker = CircuitBreaker::builder("capture")
            .success_threshold(1)
            .build()
            .unwrap();
        breaker.set_transition_hook(hook(sender, Arc::clone(&seen)));
        breaker.open_for(Duration::ZERO);
        breaker.try_acquire().unwrap().success();
        // A reopen adopted after the close, before the sync task writes it.
        *seen.lock().unwrap() = Known {
            epoch: 7,
            version: 5,
        };
        assert_eq!(
            changes.try_recv().unwrap(),
            Change::Opened {
                open_for: Duration::ZERO
            }
        );
        assert_eq!(
            changes.try_recv().unwrap(),
            Change::Reset {
                expected: Some(Known {
                    epoch: 7,
                    version: 4
                })
            }
        );
        // Transitions made while applying a shared state are not sent back.
        quietly(|| breaker.trip());
        assert!(changes.try_recv().is_err());
    }
}
