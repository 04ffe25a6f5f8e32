//! [`Acquire`], the future of a slot, and [`Permit`] and [`OwnedPermit`], the slot itself.

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
use crate::ticket::{Slots, Ticket};
use crate::{PatternKind, Rejection};

/// A slot of a [`LoadShedder`], borrowing it; dropping it releases the slot (to the oldest
/// waiter, if any). Made by [`try_acquire`](LoadShedder::try_acquire); [`OwnedPermit`] is the
/// same without the borrow.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct Permit<'a>(Ticket<LoadShedder, &'a LoadShedder>);

/// A slot of a [`LoadShedder`], holding a reference to it so that it can be moved into a task
/// and outlive the handle it came from; it releases as a [`Permit`] does. Made by
/// [`try_acquire_owned`](LoadShedder::try_acquire_owned), by [`acquire`](LoadShedder::acquire),
/// and what the shedder hands out as a [`Stage`] (to the tower layer and the HTTP adapters).
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct OwnedPermit(Ticket<LoadShedder, LoadShedder>);

/// A permit holds the priority it was granted for; its release frees the slot or hands it to
/// the oldest waiter.
impl Slots for LoadShedder {
    type Held = Priority;

    #[inline]
    fn end(&self, _: Priority, _: Outcome) {
        self.gave_slot_back();
    }
}

impl<'a> Permit<'a> {
    /// The permit of a slot `shedder` has just counted as taken.
    #[inline]
    pub(super) fn new(shedder: &'a LoadShedder, priority: Priority) -> Self {
        Self(Ticket::new(shedder, priority))
    }

    /// The priority the slot was granted for.
    pub fn priority(&self) -> Priority {
        self.0.held()
    }

    /// The shedder this slot belongs to.
    pub fn shedder(&self) -> &LoadShedder {
        self.0.handle()
    }
}

impl OwnedPermit {
    /// The permit of a slot `shedder` has just counted as taken.
    pub(super) fn new(shedder: LoadShedder, priority: Priority) -> Self {
        Self(Ticket::new(shedder, priority))
    }

    /// The priority the slot was granted for.
    pub fn priority(&self) -> Priority {
        self.0.held()
    }

    /// The shedder this slot belongs to.
    pub fn shedder(&self) -> &LoadShedder {
        self.0.handle()
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("shedder", &self.shedder().name())
            .field("priority", &self.priority())
            .finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("shedder", &self.shedder().name())
            .field("priority", &self.priority())
            .finish()
    }
}

impl StagePermit for OwnedPermit {}

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

/// The future returned by [`LoadShedder::acquire`]: resolves to an [`OwnedPermit`] or to the
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
    type Output = Result<OwnedPermit, Rejection>;

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
                    shedder.took_slot();
                    return Poll::Ready(Ok(OwnedPermit::new(shedder, priority)));
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
            shedder.took_slot();
            return Poll::Ready(Ok(OwnedPermit::new(shedder, priority)));
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
    pub(super) fn took_slot(&self) {
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
    fn lease_at(&self, priority: Priority) -> Leased<OwnedPermit> {
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

    /// [`Stage::admit`] at `priority`: decided now, so requests are admitted in the order
    /// they arrive; only a queued request waits (boxed: the others pay nothing for the
    /// queue). What [`acquire`](Self::acquire) does, with an answer that can be read without
    /// polling ([`Admit::now`]).
    pub fn admit_at(&self, priority: Priority) -> Admit<OwnedPermit> {
        match self.lease_at(priority) {
            Leased::Token(_) => Admit::admitted(OwnedPermit::new(self.clone(), priority)),
            Leased::Rejected(rejection) => Admit::rejected(rejection),
            Leased::Admit(queued) => queued,
        }
    }
}

/// Admits at [`Priority::Normal`].
impl Stage for LoadShedder {
    type Permit = OwnedPermit;

    fn admit(&self) -> Admit<OwnedPermit> {
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
    fn lease(&self) -> Leased<OwnedPermit> {
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
    type Permit = OwnedPermit;

    fn admit(&self) -> Admit<OwnedPermit> {
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
    fn lease(&self) -> Leased<OwnedPermit> {
        self.shedder.borrow().lease_at(self.priority)
    }

    #[inline]
    fn end_lease(&self, _: LeaseToken, _: Outcome) {
        self.shedder.borrow().gave_slot_back();
    }
}
