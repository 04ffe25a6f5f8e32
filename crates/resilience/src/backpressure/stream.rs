//! [`BackpressureStream`]: backpressure applied to a stream of work.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::handle::Arrived;
use super::permit::WaitGuard;
use super::state::Patience;
use super::{Backpressure, OwnedPermit};

pin_project! {
    /// A stream of work items, each paired with the [`OwnedPermit`] that keeps it pending; made by
    /// [`Backpressure::stream`].
    ///
    /// While backpressure is off, the adapter pulls an item and admits it at once. While it is
    /// on, the adapter first waits for admission in the controller's queue, in turn with
    /// every other producer (with no time limit, and never turned away as overloaded: it is
    /// one producer, and waiting is what it is for), and only then pulls the item. So the
    /// source is not polled while backpressure is on, and a producer behind the stream feels
    /// it as its own. (Should backpressure turn on between the check and the admission of an
    /// item just pulled, that one item waits in the adapter.)
    ///
    /// The consumer keeps the slot for as long as it holds the permit: move it, with the item,
    /// into whatever works on the item, and drop it when the work is done. A slot taken while
    /// backpressure was on is held for the next item even if the source has none ready yet;
    /// it goes back when the source ends or the adapter is dropped.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use resilience::backpressure::Backpressure;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let backpressure = Backpressure::builder("jobs").build()?;
    /// let jobs = futures_util::stream::iter(1..=3);
    /// let mut admitted = backpressure.stream(jobs);
    /// while let Some((job, permit)) = admitted.next().await {
    ///     tokio::spawn(async move {
    ///         let _done_when_dropped = permit;
    ///         println!("working on job {job}");
    ///     });
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub struct BackpressureStream<S>
    where
        S: Stream,
    {
        #[pin]
        source: S,
        controller: Backpressure,
        // A wait for admission, before pulling (backpressure on) or for `item`.
        waiting: Option<WaitGuard>,
        // A slot taken before pulling, for the next item.
        permit: Option<OwnedPermit>,
        // An item pulled while off whose admission found backpressure on after all.
        item: Option<S::Item>,
        done: bool,
    }
}

impl<S: Stream> BackpressureStream<S> {
    pub(super) fn new(source: S, controller: Backpressure) -> Self {
        Self {
            source,
            controller,
            waiting: None,
            permit: None,
            item: None,
            done: false,
        }
    }

    /// The source stream.
    pub fn get_ref(&self) -> &S {
        &self.source
    }

    /// Unwraps the source stream; a slot taken for the next item is given back (and an item
    /// pulled but not yet admitted is dropped).
    pub fn into_inner(self) -> S {
        self.source
    }

    /// The controller applied to it.
    pub fn controller(&self) -> &Backpressure {
        &self.controller
    }
}

impl<S: Stream> Stream for BackpressureStream<S> {
    type Item = (S::Item, OwnedPermit);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(waiting) = this.waiting.as_mut() {
                let granted = std::task::ready!(waiting.poll_granted(cx));
                *this.waiting = None;
                // A patient waiter is never refused; were it, it asks again below.
                *this.permit = granted.ok();
            }
            if this.permit.is_some() && this.item.is_some() {
                return Poll::Ready(this.item.take().zip(this.permit.take()));
            }
            if this.item.is_some() {
                // Pulled, not admitted, not waiting (a refused wait): ask again.
                match this.controller.arrive(Patience::Always) {
                    Ok(Arrived::Admitted) => {
                        *this.permit = Some(OwnedPermit::new(this.controller.clone()))
                    }
                    Ok(Arrived::Queued(guard)) => *this.waiting = Some(guard),
                    Err(_) => return wake_later(cx),
                }
                continue;
            }
            if *this.done {
                return Poll::Ready(None);
            }
            if this.permit.is_none() && this.controller.should_apply_backpressure() {
                // On: queue for the slot first, so that nothing is pulled meanwhile.
                match this.controller.arrive(Patience::Always) {
                    Ok(Arrived::Admitted) => {
                        *this.permit = Some(OwnedPermit::new(this.controller.clone()))
                    }
                    Ok(Arrived::Queued(guard)) => {
                        *this.waiting = Some(guard);
                        continue;
                    }
                    Err(_) => return wake_later(cx),
                }
            }
            let Some(item) = std::task::ready!(this.source.as_mut().poll_next(cx)) else {
                *this.done = true;
                *this.permit = None;
                return Poll::Ready(None);
            };
            if let Some(permit) = this.permit.take() {
                return Poll::Ready(Some((item, permit)));
            }
            match this.controller.arrive(Patience::Always) {
                Ok(Arrived::Admitted) => {
                    return Poll::Ready(Some((item, OwnedPermit::new(this.controller.clone()))));
                }
                Ok(Arrived::Queued(guard)) => *this.waiting = Some(guard),
                Err(_) => {
                    *this.item = Some(item);
                    return wake_later(cx);
                }
            }
            *this.item = Some(item);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let held = usize::from(self.item.is_some());
        let (low, high) = self.source.size_hint();
        (
            low.saturating_add(held),
            high.and_then(|high| high.checked_add(held)),
        )
    }
}

/// Returns `Pending` after asking to be polled again at once (for refusals that cannot happen
/// to a patient waiter, so the stream never stalls on one).
fn wake_later<T>(cx: &mut Context<'_>) -> Poll<T> {
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl<S> fmt::Debug for BackpressureStream<S>
where
    S: Stream + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackpressureStream")
            .field("source", &self.source)
            .field("controller", &self.controller.name())
            .field("waiting", &self.waiting.is_some())
            .field("has_slot", &self.permit.is_some())
            .field("holds_item", &self.item.is_some())
            .field("done", &self.done)
            .finish()
    }
}
