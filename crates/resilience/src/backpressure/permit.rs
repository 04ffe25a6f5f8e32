//! [`Permit`] and [`OwnedPermit`]: one admitted item of work; and the guard of a producer
//! waiting for one.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Backpressure;
use crate::classify::Outcome;
use crate::ticket::{Slots, Ticket};
use crate::time::deadline;
use crate::{Rejection, RejectionReason};

/// One admitted item of work, counted as pending until the permit is dropped; it borrows the
/// controller. Made by [`try_acquire`](Backpressure::try_acquire); [`OwnedPermit`] is the same
/// without the borrow.
///
/// There is no `release()`: dropping the permit is the release, so pending work can be
/// neither released twice nor released without having been admitted, and the count never
/// drifts. Keep the permit for as long as the item is being worked on; to move it into the
/// task that handles the item, take an [`OwnedPermit`].
///
/// ```
/// # use resilience::backpressure::Backpressure;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backpressure = Backpressure::builder("ingest").build()?;
/// let permit = backpressure.try_acquire()?;
/// assert_eq!(backpressure.pending(), 1);
/// drop(permit);
/// assert_eq!(backpressure.pending(), 0);
/// # Ok(())
/// # }
/// ```
#[must_use = "the item is done as soon as the permit is dropped"]
pub struct Permit<'a>(Ticket<Backpressure, &'a Backpressure>);

/// One admitted item of work, holding a reference to the controller so that it can be moved
/// into a task and outlive the handle it came from; it releases as a [`Permit`] does. Made
/// by [`try_acquire_owned`](Backpressure::try_acquire_owned), [`acquire`](Backpressure::acquire),
/// [`BackpressureStream`](super::BackpressureStream), and what the controller hands out as a
/// [`Stage`](crate::stage::Stage) (to the tower layer and the HTTP adapters).
#[must_use = "the item is done as soon as the permit is dropped"]
pub struct OwnedPermit(Ticket<Backpressure, Backpressure>);

/// A permit holds nothing but the handle: its release is one pending item less.
impl Slots for Backpressure {
    type Held = ();

    #[inline]
    fn end(&self, (): (), _: Outcome) {
        self.inner.release();
    }
}

impl<'a> Permit<'a> {
    /// The permit of an item `controller` has just admitted.
    #[inline]
    pub(super) fn new(controller: &'a Backpressure) -> Self {
        Self(Ticket::new(controller, ()))
    }

    /// The controller this item is pending in.
    pub fn controller(&self) -> &Backpressure {
        self.0.handle()
    }
}

impl OwnedPermit {
    /// The permit of an item `controller` has just admitted.
    pub(super) fn new(controller: Backpressure) -> Self {
        Self(Ticket::new(controller, ()))
    }

    /// The controller this item is pending in.
    pub fn controller(&self) -> &Backpressure {
        self.0.handle()
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("controller", &self.controller().name())
            .finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("controller", &self.controller().name())
            .finish()
    }
}

/// A producer's place in the queue. Admission is decided under the controller's lock and
/// delivered through a oneshot channel; this guard makes a wait that ends any other way
/// (a timeout, a dropped future) safe:
/// * if it is still queued, it leaves the queue;
/// * if it was admitted at the same moment (the grant is in the channel, unread), the slot
///   is released at once, which hands it to the next waiter, so it is never lost.
///
/// Both checks happen under the lock that grants, so no grant can slip in between. The
/// receiver lives in the guard and is dropped only after that, so a queued waiter's channel
/// is always open when the granter sends.
pub(super) struct WaitGuard {
    controller: Backpressure,
    ticket: u64,
    receiver: oneshot::Receiver<()>,
    /// The wait ended with a permit handed out or a rejection: nothing left to clean up.
    settled: bool,
}

impl WaitGuard {
    pub(super) fn new(
        controller: Backpressure,
        ticket: u64,
        receiver: oneshot::Receiver<()>,
    ) -> Self {
        Self {
            controller,
            ticket,
            receiver,
            settled: false,
        }
    }

    /// Ready with the permit once admitted.
    pub(super) fn poll_granted(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<OwnedPermit, Rejection>> {
        let granted = std::task::ready!(Pin::new(&mut self.receiver).poll(cx));
        self.settled = true;
        Poll::Ready(match granted {
            Ok(()) => Ok(self.granted()),
            // The sender went without a grant: only the guard removes its own entry, so this
            // cannot happen; refuse rather than admit without counting.
            Err(_) => Err(self.controller.inner.reject(RejectionReason::Backpressure)),
        })
    }

    /// Waits for the grant until `timeout` has passed, then gives up.
    pub(super) async fn wait(mut self, timeout: Duration) -> Result<OwnedPermit, Rejection> {
        // Saturating: a caller may pass `Duration::MAX` for "wait as long as it takes".
        let mut deadline = pin!(tokio::time::sleep_until(deadline(Instant::now(), timeout)));
        // The grant is polled before the timer, so a slot granted at the very instant the
        // wait expires is taken, not wasted.
        let granted = poll_fn(|cx| match self.poll_granted(cx) {
            Poll::Ready(granted) => Poll::Ready(Some(granted)),
            Poll::Pending => deadline.as_mut().poll(cx).map(|()| None),
        })
        .await;
        match granted {
            Some(granted) => granted,
            None => self.expire(),
        }
    }

    /// The wait is over: leave the queue and be rejected with
    /// [`WaitTimeout`](RejectionReason::WaitTimeout), unless admitted at this very moment, in
    /// which case the slot is taken.
    pub(super) fn expire(mut self) -> Result<OwnedPermit, Rejection> {
        self.settled = true;
        let inner = &*self.controller.inner;
        let left = inner.lock().core.leave(self.ticket);
        if left || self.receiver.try_recv().is_err() {
            return Err(inner.reject(RejectionReason::WaitTimeout));
        }
        Ok(self.granted())
    }

    /// The permit of the slot granted to this waiter, counted as accepted.
    fn granted(&self) -> OwnedPermit {
        self.controller.inner.admitted();
        OwnedPermit::new(self.controller.clone())
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let inner = &*self.controller.inner;
        let mut shared = inner.lock();
        if shared.core.leave(self.ticket) {
            return;
        }
        drop(shared);
        // Admitted while being dropped: the grant is in the channel, and so is the slot.
        if self.receiver.try_recv().is_ok() {
            drop(self.granted());
        }
    }
}

impl fmt::Debug for WaitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGuard")
            .field("controller", &self.controller.name())
            .field("ticket", &self.ticket)
            .finish()
    }
}
