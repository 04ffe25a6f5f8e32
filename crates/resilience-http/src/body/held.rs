//! [`Held`]: a response body's guard, and the watchdog that gives it back when the client
//! stops reading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{BodyEnd, Guard};

/// The guard and the moment it is given back: once, at the end of the body, on drop, or
/// (when watched) after the client has left the body waiting too long.
///
/// The watch starts with the first chunk that goes out while more are to come: a body sent
/// in one chunk (most answers) never needs one, and so costs no task.
pub(super) enum Held<G: Guard> {
    /// Given back by the body alone, watched from its first chunk on if `idle` is set.
    Owned {
        guard: Option<G>,
        idle: Option<Duration>,
    },
    /// Shared with a watchdog task that gives it back if the client stops reading.
    Watched {
        watched: Arc<Watched<G>>,
        watchdog: AbortHandle,
    },
}

/// A guard a watchdog may take: the state body and watchdog share.
pub(super) struct Watched<G> {
    guard: Mutex<Option<G>>,
    /// Time zero of `waiting_since`.
    epoch: Instant,
    /// Since when (nanoseconds after `epoch`) the body has had nothing to do but wait for
    /// the client to ask for the next chunk; [`NOT_WAITING`] while the client is waiting
    /// for the body instead (a slow stream is the server's business, not an idle client).
    waiting_since: AtomicU64,
}

const NOT_WAITING: u64 = u64::MAX;

impl<G: Guard> Watched<G> {
    fn take(&self) -> Option<G> {
        self.guard
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
    }

    fn now(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        u64::try_from(nanos).unwrap_or(NOT_WAITING - 1)
    }
}

impl<G: Guard> Held<G> {
    /// `guard`, watched for an idle client after `idle` if set (once a chunk has gone out,
    /// inside a tokio runtime, if the guard holds anything).
    pub(super) fn new(guard: G, idle: Option<Duration>) -> Self {
        Self::Owned {
            idle: idle.filter(|_| guard.holds_anything()),
            guard: Some(guard),
        }
    }

    /// Holds nothing.
    pub(super) fn empty() -> Self {
        Self::Owned {
            guard: None,
            idle: None,
        }
    }

    pub(super) fn finish(&mut self, end: BodyEnd) {
        match self {
            Self::Owned { guard, .. } => {
                if let Some(guard) = guard.take() {
                    guard.finish(end);
                }
            }
            Self::Watched { watched, watchdog } => {
                watchdog.abort();
                if let Some(guard) = watched.take() {
                    guard.finish(end);
                }
            }
        }
    }

    pub(super) fn is_holding(&self) -> bool {
        match self {
            Self::Owned { guard, .. } => guard.is_some(),
            Self::Watched { watched, .. } => watched
                .guard
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .is_some(),
        }
    }

    /// The client asked for a chunk: whatever happens next, it is not idle.
    pub(super) fn asked(&self) {
        if let Self::Watched { watched, .. } = self {
            watched.waiting_since.store(NOT_WAITING, Ordering::Relaxed);
        }
    }

    /// The client got a chunk: from now on the body waits for it to ask again. The first
    /// time, a body to be watched hands its guard to a watchdog.
    pub(super) fn answered(&mut self) {
        match self {
            Self::Watched { watched, .. } => {
                watched
                    .waiting_since
                    .store(watched.now(), Ordering::Relaxed);
            }
            Self::Owned {
                guard,
                idle: Some(idle),
            } if guard.is_some() => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let idle = *idle;
                let watched = Arc::new(Watched {
                    guard: Mutex::new(guard.take()),
                    epoch: Instant::now(),
                    // Time zero is now: the chunk has just gone out.
                    waiting_since: AtomicU64::new(0),
                });
                let watchdog = runtime.spawn(watch(Arc::clone(&watched), idle));
                *self = Self::Watched {
                    watched,
                    watchdog: watchdog.abort_handle(),
                };
            }
            Self::Owned { .. } => {}
        }
    }
}

impl<G: Guard> Drop for Held<G> {
    fn drop(&mut self) {
        self.finish(BodyEnd::Dropped);
    }
}

/// Gives the guard back once the body has waited `idle` for the client to ask for a chunk.
///
/// A task of its own because a client that stops reading stops hyper from polling the body
/// (the socket is full), so nothing inside the body would ever run to notice. It sleeps to
/// the deadline of the current wait, or a whole `idle` while the client is not the one
/// being waited for, and ends when the body ends (aborted) or after releasing.
async fn watch<G: Guard>(watched: Arc<Watched<G>>, idle: Duration) {
    let idle_nanos = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
    loop {
        let since = watched.waiting_since.load(Ordering::Relaxed);
        let now = watched.now();
        let wake_in = if since == NOT_WAITING {
            idle_nanos
        } else {
            let deadline = since.saturating_add(idle_nanos);
            if now >= deadline {
                if let Some(guard) = watched.take() {
                    tracing::debug!(target: "resilience::http", ?idle, "the client stopped reading the response: permits released");
                    guard.finish(BodyEnd::Stalled);
                }
                return;
            }
            deadline - now
        };
        tokio::time::sleep(Duration::from_nanos(wake_in)).await;
    }
}
