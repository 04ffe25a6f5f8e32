//! [`Held`]: a response body's guard, and the watchdog that gives it back when the client
//! stops reading.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::{BodyEnd, Guard};

/// The guard and the moment it is given back: once, at the end of the body, on drop, or
/// (when watched) after the client has left the body waiting too long.
pub(super) enum Held<G: Guard> {
    /// Given back by the body alone.
    Owned(Option<G>),
    /// Shared with a watchdog timer that gives it back if the client stops reading.
    Watched(Arc<Watched<G>>),
}

/// A guard a watchdog may take: the state body and watchdog share.
///
/// The watchdog is a timer whose waker is this state itself, not a task: a client that
/// stops reading stops hyper from polling the body (the socket is full), so nothing inside
/// the body would ever run to notice, but the runtime's timer still fires. A task per
/// response would cost a spawn, an abort and the task's run at the end of every body; a
/// timer costs its registration, and almost every body ends long before it fires.
pub(super) struct Watched<G> {
    state: Mutex<Watch<G>>,
    /// How long the body may wait for the client.
    idle: Duration,
    /// Time zero of `waiting_since`.
    epoch: Instant,
    /// Since when (nanoseconds after `epoch`) the body has had nothing to do but wait for
    /// the client to ask for the next chunk; [`NOT_WAITING`] while the client is waiting
    /// for the body instead (a slow stream is the server's business, not an idle client).
    waiting_since: AtomicU64,
}

/// What the body and the watchdog take in turns.
struct Watch<G> {
    guard: Option<G>,
    /// Armed while the guard is held. Its registration holds a waker, so a reference to the
    /// state: it is dropped with the guard, or the state would outlive the body until the
    /// timer fires.
    timer: Option<Pin<Box<Sleep>>>,
}

const NOT_WAITING: u64 = u64::MAX;

/// Tokio's own "far future" for a sleep that cannot be reached: 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

impl<G: Guard> Watched<G> {
    fn lock(&self) -> MutexGuard<'_, Watch<G>> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The guard, taken for good, and the timer disarmed.
    fn take(&self) -> Option<G> {
        let (guard, timer) = {
            let mut state = self.lock();
            (state.guard.take(), state.timer.take())
        };
        drop(timer);
        guard
    }

    fn now(&self) -> u64 {
        self.since_epoch(Instant::now())
    }

    fn since_epoch(&self, instant: Instant) -> u64 {
        let nanos = instant.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(NOT_WAITING - 1)
    }

    /// Gives the guard back if the body has waited `idle` for the client; otherwise sets the
    /// timer for when it would have: the end of the current wait, or a whole `idle` while
    /// the client is not the one being waited for.
    fn check(self: &Arc<Self>) {
        let idle_nanos = u64::try_from(self.idle.as_nanos()).unwrap_or(u64::MAX);
        let waker = Waker::from(Arc::clone(self));
        let mut cx = Context::from_waker(&waker);
        let mut state = self.lock();
        loop {
            if state.guard.is_none() {
                state.timer = None;
                return;
            }
            let since = self.waiting_since.load(Ordering::Relaxed);
            let instant = Instant::now();
            let now = self.since_epoch(instant);
            let wake_in = if since == NOT_WAITING {
                idle_nanos
            } else {
                let deadline = since.saturating_add(idle_nanos);
                if now >= deadline {
                    let (guard, timer) = (state.guard.take(), state.timer.take());
                    drop(state);
                    drop(timer);
                    if let Some(guard) = guard {
                        tracing::debug!(target: "resilience::http", idle = ?self.idle, "the client stopped reading the response: permits released");
                        guard.finish(BodyEnd::Stalled);
                    }
                    return;
                }
                deadline - now
            };
            let deadline = instant
                .checked_add(Duration::from_nanos(wake_in))
                .unwrap_or(instant + FAR_FUTURE);
            // Polled under the lock: a sleep's poll never wakes its waker itself (tokio wakes
            // a stored waker on a reset only, and the timer is reset here only once it has
            // fired, its waker gone), so `wake` cannot come back in here.
            let timer = match &mut state.timer {
                Some(timer) => {
                    timer.as_mut().reset(deadline);
                    timer
                }
                None => state
                    .timer
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            if timer.as_mut().poll(&mut cx).is_pending() {
                return;
            }
        }
    }
}

/// The timer fired.
impl<G: Guard> Wake for Watched<G> {
    fn wake(self: Arc<Self>) {
        self.check();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.check();
    }
}

impl<G: Guard> Held<G> {
    /// `guard`, watched for an idle client after `idle` if set (and a runtime can run the
    /// watchdog, and the guard holds anything).
    pub(super) fn new(guard: G, idle: Option<Duration>) -> Self {
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        let (Some(idle), true, true) = (idle, in_runtime, guard.holds_anything()) else {
            return Self::Owned(Some(guard));
        };
        let watched = Arc::new(Watched {
            state: Mutex::new(Watch {
                guard: Some(guard),
                timer: None,
            }),
            idle,
            epoch: Instant::now(),
            // The head is on its way: the client is to ask for the body next.
            waiting_since: AtomicU64::new(0),
        });
        watched.check();
        Self::Watched(watched)
    }

    pub(super) fn finish(&mut self, end: BodyEnd) {
        match self {
            Self::Owned(guard) => {
                if let Some(guard) = guard.take() {
                    guard.finish(end);
                }
            }
            Self::Watched(watched) => {
                if let Some(guard) = watched.take() {
                    guard.finish(end);
                }
            }
        }
    }

    pub(super) fn is_holding(&self) -> bool {
        match self {
            Self::Owned(guard) => guard.is_some(),
            Self::Watched(watched) => watched.lock().guard.is_some(),
        }
    }

    /// The client asked for a chunk: whatever happens next, it is not idle.
    pub(super) fn asked(&self) {
        if let Self::Watched(watched) = self {
            watched.waiting_since.store(NOT_WAITING, Ordering::Relaxed);
        }
    }

    /// The client got a chunk: from now on the body waits for it to ask again.
    pub(super) fn answered(&self) {
        if let Self::Watched(watched) = self {
            watched
                .waiting_since
                .store(watched.now(), Ordering::Relaxed);
        }
    }
}

impl<G: Guard> Drop for Held<G> {
    fn drop(&mut self) {
        self.finish(BodyEnd::Dropped);
    }
}
