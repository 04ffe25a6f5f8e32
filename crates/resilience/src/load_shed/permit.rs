//! [`Acquire`], the future of a slot, and [`Permit`], the slot itself.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tokio::time::Sleep;

use super::handle::Admitted;
use super::state::ShedReason;
use super::{LoadShedder, Priority};
use crate::classify::Outcome;
use crate::stage::{Admit, LeaseToken, Leased, Stage, StagePermit};
use crate::{PatternKind, Rejection};

/// A slot of a [`LoadShedder`]; dropping it releases the slot (to the oldest waiter, if any).
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct Permit {
    shedder: LoadShedder,
    priority: Priority,
}

impl Permit {
    pub(super) fn new(shedder: LoadShedder, priority: Priority) -> Self {
        shedder.took_slot();
        Self::holding(shedder, priority)
    }

    /// The permit of a slot already counted as taken.
    fn holding(shedder: LoadShedder, priority: Priority) -> Self {
        Self { shedder, priority }
    }

    /// The priority the slot was granted for.
    pub fn priority(&self) -> Priority {
        self.priority
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shedder.gave_slot_back();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("shedder", &self.shedder.name())
            .field("priority", &self.priority)
            .finish()
    }
}

impl StagePermit for Permit {}

enum State {
    Start,
    Waiting {
        id: u64,
        grant: oneshot::Receiver<()>,
        // Boxed: only queued requests pay for it, and it keeps `Acquire` `Unpin`.
        sleep: Pin<Box<Sleep>>,
    },
    Done,
}

/// The future returned by [`LoadShedder::acquire`]: resolves to a [`Permit`] or to the
/// [`Rejection`] that shed the request.
///
/// Decides on its first poll. Dropped while queued, it leaves the queue; if a slot was handed
/// to it in the meantime, it passes the slot on. Either way nothing leaks.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    shedder: Option<LoadShedder>,
    priority: Priority,
    state: State,
}

impl Acquire {
    pub(super) fn new(shedder: LoadShedder, priority: Priority) -> Self {
        Self {
            shedder: Some(shedder),
            priority,
            state: State::Start,
        }
    }

    /// An acquisition already decided to queue.
    fn queued(
        shedder: LoadShedder,
        priority: Priority,
        id: u64,
        grant: oneshot::Receiver<()>,
        deadline: tokio::time::Instant,
    ) -> Self {
        Self {
            shedder: Some(shedder),
            priority,
            state: State::Waiting {
                id,
                grant,
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
            },
        }
    }
}

impl Future for Acquire {
    type Output = Result<Permit, Rejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Taken for the poll (no reference count touched) and put back if still waiting.
        let Some(shedder) = this.shedder.take() else {
            panic!("Acquire polled after completion");
        };
        let priority = this.priority;
        if let State::Start = this.state {
            match shedder.inner.admit(priority, true) {
                Admitted::Now => {
                    this.state = State::Done;
                    return Poll::Ready(Ok(Permit::new(shedder, priority)));
                }
                Admitted::Shed(rejection) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(rejection));
                }
                Admitted::Queued {
                    id,
                    grant,
                    deadline,
                } => {
                    this.state = State::Waiting {
                        id,
                        grant,
                        sleep: Box::pin(tokio::time::sleep_until(deadline)),
                    };
                }
            }
        }
        let inner = &shedder.inner;
        let State::Waiting { id, grant, sleep } = &mut this.state else {
            panic!("Acquire polled after completion");
        };
        let granted = match Pin::new(&mut *grant).poll(cx) {
            Poll::Ready(result) => result.is_ok() || inner.leave(*id, grant),
            Poll::Pending => match sleep.as_mut().poll(cx) {
                // Exactly at the deadline: a slot handed over first still counts.
                Poll::Ready(()) => inner.leave(*id, grant),
                Poll::Pending => {
                    this.shedder = Some(shedder);
                    return Poll::Pending;
                }
            },
        };
        this.state = State::Done;
        if granted {
            inner.accepted(priority, inner.active());
            return Poll::Ready(Ok(Permit::new(shedder, priority)));
        }
        let Admitted::Shed(rejection) =
            inner.shed(priority, inner.active(), ShedReason::WaitTimeout)
        else {
            unreachable!("shed always sheds");
        };
        Poll::Ready(Err(rejection))
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let (Some(shedder), State::Waiting { id, grant, .. }) = (&self.shedder, &mut self.state)
        {
            if shedder.inner.leave(*id, grant) {
                // Granted after the caller gave up: pass the slot on.
                shedder.inner.release();
            }
        }
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "start",
            State::Waiting { .. } => "queued",
            State::Done => "done",
        };
        f.debug_struct("Acquire")
            .field("priority", &self.priority)
            .field("state", &state)
            .finish()
    }
}

/// A [`LoadShedder`] admitting at one fixed priority, a [`Stage`] of its own: see
/// [`LoadShedder::prioritized`]. (`call` and `execute` use one that borrows the shedder.)
#[derive(Debug, Clone)]
pub struct Prioritized<S = LoadShedder> {
    pub(super) shedder: S,
    pub(super) priority: Priority,
}

impl LoadShedder {
    /// This shedder as a [`Stage`] admitting at `priority` (the shedder itself admits at
    /// [`Priority::Normal`]).
    pub fn prioritized(&self, priority: Priority) -> Prioritized {
        Prioritized {
            shedder: self.clone(),
            priority,
        }
    }
}

impl LoadShedder {
    /// Counts a slot taken by a permit or a lease.
    #[inline]
    fn took_slot(&self) {
        self.inner.instruments.active.increment();
    }

    /// Gives back a slot taken by a permit or a lease (to the oldest waiter, if any).
    #[inline]
    fn gave_slot_back(&self) {
        self.inner.instruments.active.decrement();
        self.inner.release();
    }

    /// Admission at `priority` for a call that borrows the shedder: a slot granted at once is
    /// counted as taken and leased, with no reference count; a queued request waits for its
    /// permit.
    #[inline]
    fn lease_at(&self, priority: Priority) -> Leased<Permit> {
        match self.inner.admit(priority, true) {
            Admitted::Now => {
                self.took_slot();
                Leased::Token(LeaseToken::new(0))
            }
            Admitted::Shed(rejection) => Leased::Rejected(rejection),
            Admitted::Queued {
                id,
                grant,
                deadline,
            } => Leased::Admit(Admit::waiting(Acquire::queued(
                self.clone(),
                priority,
                id,
                grant,
                deadline,
            ))),
        }
    }

    /// Admission at `priority`, decided now so requests are admitted in the order they
    /// arrive; only a queued request waits (boxed: the others pay nothing for the queue).
    pub(super) fn admit_at(&self, priority: Priority) -> Admit<Permit> {
        match self.lease_at(priority) {
            Leased::Token(_) => Admit::admitted(Permit::holding(self.clone(), priority)),
            Leased::Rejected(rejection) => Admit::rejected(rejection),
            Leased::Admit(queued) => queued,
        }
    }
}

/// Admits at [`Priority::Normal`].
impl Stage for LoadShedder {
    type Permit = Permit;

    fn admit(&self) -> Admit<Permit> {
        self.admit_at(Priority::Normal)
    }

    fn name(&self) -> &str {
        Self::name(self)
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::LoadShedder
    }

    /// A call run by `call` that is admitted at once borrows the shedder.
    #[inline]
    fn lease(&self) -> Leased<Permit> {
        self.lease_at(Priority::Normal)
    }

    #[inline]
    fn end_lease(&self, _: LeaseToken, _: Outcome) {
        self.gave_slot_back();
    }
}

/// Admits at its fixed priority.
impl<S> Stage for Prioritized<S>
where
    S: Borrow<LoadShedder> + Send + Sync,
{
    type Permit = Permit;

    fn admit(&self) -> Admit<Permit> {
        self.shedder.borrow().admit_at(self.priority)
    }

    fn name(&self) -> &str {
        self.shedder.borrow().name()
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::LoadShedder
    }

    /// A call run by `call` that is admitted at once borrows the shedder.
    #[inline]
    fn lease(&self) -> Leased<Permit> {
        self.shedder.borrow().lease_at(self.priority)
    }

    #[inline]
    fn end_lease(&self, _: LeaseToken, _: Outcome) {
        self.shedder.borrow().gave_slot_back();
    }
}
