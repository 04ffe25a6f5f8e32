//! Keeping the local breaker and the shared state in step: local transitions reach the sync
//! task through the local breaker's transition hook (`hook.rs`), in the order they happened;
//! the task writes them to Redis and reads the shared state whenever a pub/sub message says
//! it changed, and every `sync_interval` in case a message was lost, following what it finds
//! (`follow.rs`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::MissedTickBehavior;

use super::hook::Change;
use super::permit::Lease;
use super::{bump, epoch_arg, micros, millis, new_epoch, shared, Inner, Reply};
use crate::BackendError;

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
pub(super) const MAX_ROUNDS: usize = 3;

/// The sync task: writes local transitions as they come, and polls when `nudges` wakes it
/// (a transition published by any instance) and every `interval`. Ends when the breaker is
/// dropped (its hook, holding the sender, is replaced).
pub(super) async fn run(
    weak: Weak<Inner>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    nudges: Arc<Notify>,
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
            () = nudges.notified() => None,
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
    /// Writes a local transition (and what follows from the answer), or keeps it for later
    /// if Redis is down.
    pub(super) async fn push(&self, change: Change) {
        let mut next = Some(change);
        for _ in 0..MAX_ROUNDS {
            let Some(change) = next.take() else {
                return;
            };
            if !self.backend.is_healthy() {
                self.backend_metrics.down();
                self.keep(change);
                return;
            }
            match self.write(change).await {
                Ok(then) => {
                    self.answered();
                    next = then;
                }
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
            self.backend_metrics.down();
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
            Ok(state) => {
                self.answered();
                state
            }
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
                self.answered();
                if self.adopt(&state) {
                    bump(&self.counters.applied);
                }
            }
            // The lease expires by itself.
            Err(error) => self.failed(&error),
        }
    }
}
