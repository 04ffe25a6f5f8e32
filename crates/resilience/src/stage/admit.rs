//! [`Admit`]: the one admission future every stage returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Rejection;

pub(crate) type Waiting<P> = Pin<Box<dyn Future<Output = Result<P, Rejection>> + Send>>;

/// The answer of a [`Stage`](super::Stage): a permit or a rejection, now or after a wait.
///
/// One type for every stage, so a layer can store and poll it without knowing which stage it
/// came from. A stage that decides at once (a free bulkhead slot, a closed circuit, a token in
/// the bucket, a full queue) returns a ready `Admit`, which completes on its first poll and
/// costs no allocation; only a call that must wait (a bulkhead queue, backpressure, a rate
/// limiter's `max_wait`, a network round trip) pays for one box holding the wait.
///
/// Dropping it gives up: a place in a queue is left, a permit granted meanwhile is released.
#[must_use = "an admission does nothing unless polled, and releases what it got when dropped"]
pub struct Admit<P> {
    state: State<P>,
}

enum State<P> {
    Ready(Option<Result<P, Rejection>>),
    Waiting(Waiting<P>),
}

impl<P> Admit<P> {
    /// An answer known now.
    pub fn ready(answer: Result<P, Rejection>) -> Self {
        Self {
            state: State::Ready(Some(answer)),
        }
    }

    /// Admitted now with `permit`.
    pub fn admitted(permit: P) -> Self {
        Self::ready(Ok(permit))
    }

    /// Refused now.
    pub fn rejected(rejection: Rejection) -> Self {
        Self::ready(Err(rejection))
    }

    /// An answer that needs waiting for; `wait` is boxed.
    pub fn waiting(wait: impl Future<Output = Result<P, Rejection>> + Send + 'static) -> Self {
        Self {
            state: State::Waiting(Box::pin(wait)),
        }
    }

    /// The answer, if it was known when the stage was asked; otherwise the boxed wait alone,
    /// so a caller that awaits it holds one pointer across the await, not the whole `Admit`.
    #[inline]
    pub(crate) fn now_or_wait(self) -> Result<Result<P, Rejection>, Waiting<P>> {
        match self.state {
            State::Ready(Some(answer)) => Ok(answer),
            State::Waiting(wait) => Err(wait),
            State::Ready(None) => panic!("Admit polled after it completed"),
        }
    }

    /// A permit known now, or the wait for one; a rejection known now is the error. Its
    /// small answer keeps an awaiting caller's future small (see [`now_or_wait`]).
    ///
    /// [`now_or_wait`]: Self::now_or_wait
    #[inline]
    pub(crate) fn permit_or_wait(self) -> Result<Result<P, Waiting<P>>, Rejection> {
        match self.now_or_wait() {
            Ok(answer) => answer.map(Ok),
            Err(waiting) => Ok(Err(waiting)),
        }
    }

    /// Puts an answer known now where the caller keeps it, a permit in `permit` and a
    /// rejection in `rejection`, and says whether it was a refusal; otherwise returns the
    /// wait. Written in place rather than returned: a permit built by an inlined stage then
    /// goes straight to its slot instead of through an answer gathered on the stack and
    /// copied.
    #[inline]
    pub(crate) fn keep_in(
        self,
        permit: &mut Option<P>,
        rejection: &mut Option<Rejection>,
    ) -> Result<bool, Waiting<P>> {
        match self.state {
            State::Ready(Some(Ok(admitted))) => {
                // Asked only while the slot is empty. Replaced rather than assigned, the
                // permit goes straight from the registers that built it to the slot: an
                // assignment drops what the slot held first, a call across which the permit
                // waits on the stack, to be read back with wider loads right after it was
                // written field by field.
                if let Some(kept) = permit.replace(admitted) {
                    drop(kept);
                }
                Ok(false)
            }
            State::Ready(Some(Err(refused))) => {
                *rejection = Some(refused);
                Ok(true)
            }
            State::Waiting(wait) => Err(wait),
            State::Ready(None) => panic!("Admit polled after it completed"),
        }
    }

    /// The answer, if it was known when the stage was asked; otherwise the admission back.
    ///
    /// Lets synchronous callers (and layers on their fast path) take a ready answer without
    /// a context to poll with.
    pub fn now(self) -> Result<Result<P, Rejection>, Self> {
        match self.state {
            State::Ready(Some(answer)) => Ok(answer),
            state => Err(Self { state }),
        }
    }
}

// The permit is only ever moved out, never pinned, and the wait is boxed: `Admit` can move
// freely whatever the permit is.
impl<P> Unpin for Admit<P> {}

impl<P> Future for Admit<P> {
    type Output = Result<P, Rejection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Ready(answer) => {
                Poll::Ready(answer.take().expect("Admit polled after it completed"))
            }
            State::Waiting(wait) => wait.as_mut().poll(cx),
        }
    }
}

impl<P> fmt::Debug for Admit<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready(Some(Ok(_))) => "admitted",
            State::Ready(Some(Err(_))) => "rejected",
            State::Ready(None) => "done",
            State::Waiting(_) => "waiting",
        };
        f.debug_struct("Admit").field("state", &state).finish()
    }
}
