//! Keeping the local breaker and the shared state in step: local transitions are written to
//! Redis by a background task, which also polls the shared version every `sync_interval`.

use std::cell::Cell;
use std::sync::{MutexGuard, Weak};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreakerEvent, CircuitState};
use resilience::events::Event;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::{bump, micros, millis, shared, Inner, Reply, SharedState};
use crate::BackendError;

/// A transition of the local breaker that the shared state should follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The detector tripped (or `trip()`): open for `open_for`.
    Opened { open_for: Duration },
    /// `force_open()`.
    ForcedOpen,
    /// Closed: after successful probes (`conditional`, compare-and-set on the version seen)
    /// or by an operator's reset (unconditional).
    Reset { conditional: bool },
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

thread_local! {
    /// Set while a shared state is being applied to a local breaker: the transitions that
    /// causes came from Redis and must not be written back. Listeners run synchronously on
    /// the thread that made the transition, so a thread-local tells them apart exactly.
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

/// The local breaker's listener: forwards its transitions to the sync task. Runs on the
/// caller's thread, so it only sends on an unbounded channel (no await, no lock).
pub(super) fn listener(changes: mpsc::UnboundedSender<Change>) -> impl Fn(&Event) + Send + Sync {
    move |event| {
        if APPLYING.with(Cell::get) {
            return;
        }
        let change = match event.as_circuit_breaker() {
            Some(CircuitBreakerEvent::CircuitOpened { open_for, .. }) => Change::Opened {
                open_for: *open_for,
            },
            Some(CircuitBreakerEvent::StateChange { from, to, .. }) => match to {
                CircuitState::ForcedOpen => Change::ForcedOpen,
                CircuitState::Closed => Change::Reset {
                    conditional: *from == CircuitState::HalfOpen,
                },
                _ => return,
            },
            _ => return,
        };
        let _ = changes.send(change);
    }
}

/// The sync task: writes local transitions as they come and polls every `interval`. Ends
/// when the breaker is dropped (its listener, holding the sender, is removed).
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

impl Inner {
    fn known(&self) -> MutexGuard<'_, u64> {
        self.known
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Applies a shared state newer than the last one applied; returns whether it did.
    pub(super) fn adopt(&self, state: &SharedState) -> bool {
        let mut known = self.known();
        if state.version <= *known {
            return false;
        }
        *known = state.version;
        self.apply(state.state);
        true
    }

    /// Brings the local breaker to `state`, without writing the transition back.
    pub(super) fn apply(&self, state: CircuitState) {
        let local = &self.local;
        let current = local.state();
        APPLYING.with(|applying| applying.set(true));
        match state {
            CircuitState::Closed
                if !matches!(current, CircuitState::Closed | CircuitState::Disabled) =>
            {
                local.reset();
            }
            // An open circuit reopens a local half-open one too (a probe failed elsewhere).
            CircuitState::Open
                if matches!(current, CircuitState::Closed | CircuitState::HalfOpen) =>
            {
                local.trip();
            }
            CircuitState::HalfOpen if current == CircuitState::Closed => local.trip(),
            CircuitState::ForcedOpen
                if !matches!(current, CircuitState::ForcedOpen | CircuitState::Disabled) =>
            {
                local.force_open();
            }
            _ => {}
        }
        APPLYING.with(|applying| applying.set(false));
    }

    /// Writes a local transition, or keeps it for later if Redis is down.
    pub(super) async fn push(&self, change: Change) {
        if !self.backend.is_healthy() {
            self.keep(change);
            return;
        }
        if let Err(error) = self.write(change).await {
            self.failed(&error);
            self.keep(change);
        }
    }

    fn keep(&self, change: Change) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(change);
    }

    async fn write(&self, change: Change) -> Result<(), BackendError> {
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
                    .arg(format!("{:016x}", self.instance));
                self.backend.run(&invocation).await?
            }
            Change::Reset { conditional } => {
                let expected = if conditional {
                    i64::try_from(*self.known()).unwrap_or(i64::MAX)
                } else {
                    -1
                };
                let mut invocation = self.scripts.reset.key(&self.state_key);
                invocation
                    .key(&self.probes_key)
                    .key(&self.votes_key)
                    .arg(expected)
                    .arg(ttl);
                self.backend.run(&invocation).await?
            }
        };
        let state = shared(&reply)?;
        bump(&self.counters.writes);
        if reply.0 == 1 {
            // Our own transition: the local breaker is already there.
            let mut known = self.known();
            *known = (*known).max(state.version);
        } else {
            bump(&self.counters.conflicts);
            if self.adopt(&state) {
                bump(&self.counters.applied);
            }
        }
        Ok(())
    }

    /// One sync round: retry a kept write, then read the shared state and apply it if newer.
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
        let lost = {
            let mut known = self.known();
            let lost = state.version < *known;
            if lost {
                *known = state.version;
            }
            lost
        };
        if lost {
            // The shared state expired or Redis lost it: write ours again if it is open.
            let change = match self.local.state() {
                CircuitState::ForcedOpen => Some(Change::ForcedOpen),
                CircuitState::Open => Some(Change::Opened {
                    open_for: self
                        .local
                        .metrics()
                        .remaining_open_time
                        .unwrap_or(Duration::ZERO),
                }),
                _ => None,
            };
            if let Some(change) = change {
                self.push(change).await;
            }
        } else if self.adopt(&state) {
            bump(&self.counters.applied);
        }
    }

    /// Gives a probe lease back and counts its outcome; applies the shared state it returns.
    pub(super) async fn release(&self, lease: &str, version: u64, outcome: Outcome) {
        let config = self.local.config();
        let mut invocation = self.scripts.release.key(&self.state_key);
        invocation
            .key(&self.probes_key)
            .arg(lease)
            .arg(version)
            .arg(outcome.as_str())
            .arg(config.success_threshold)
            .arg(micros(config.open_duration))
            .arg(millis(self.state_ttl));
        let reply: Result<Reply, _> = self.backend.run(&invocation).await;
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
