//! Running an operation through a stage: [`call`], [`call_with`], [`execute`], written once
//! for every stage.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::admit::Waiting;
use super::lease::Lease;
use super::{Leased, Stage, StagePermit};
use crate::classify::{judge, judge_nested, Classify, EveryError, Outcome};
use crate::{Error, Rejection};

/// Runs `operation` if `stage` admits it, counting every `Err` as a failure.
///
/// Admission may wait as the stage's policy allows. While the operation runs, the call holds
/// the stage's permit; its outcome is recorded when it ends, and dropping the returned future
/// at any point releases the permit (a cancelled call's outcome is unknown). A stage's
/// [`call_limit`](Stage::call_limit) cuts the operation off with [`Error::Timeout`], counted
/// as a failure.
pub fn call<'a, S, T, E, F, Fut>(
    stage: &'a S,
    operation: F,
) -> impl Future<Output = Result<T, Error<E>>> + use<'a, S, T, E, F, Fut>
where
    S: Stage + ?Sized,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // Not through `call_with`: a reference to the zero-sized judge would take 8 bytes of
    // the call's future.
    guarded(stage, operation, |stage, wants_outcome, result| {
        judged(&EveryError, stage, wants_outcome, result)
    })
}

/// Like [`call`], judging the outcome with `classifier`.
pub fn call_with<'a, S, C, T, E, F, Fut>(
    stage: &'a S,
    classifier: &'a C,
    operation: F,
) -> impl Future<Output = Result<T, Error<E>>> + use<'a, S, C, T, E, F, Fut>
where
    S: Stage + ?Sized,
    C: Classify<T, E>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    guarded(stage, operation, move |stage, wants_outcome, result| {
        judged(classifier, stage, wants_outcome, result)
    })
}

/// The outcome of an operation's own result (when the permit wants one), and the result as
/// the caller gets it.
#[inline]
fn judged<S, C, T, E>(
    classifier: &C,
    stage: &S,
    wants_outcome: bool,
    result: Result<T, E>,
) -> (Outcome, Result<T, Error<E>>)
where
    S: Stage + ?Sized,
    C: Classify<T, E>,
{
    let outcome = if wants_outcome {
        judge(classifier, &result, stage.pattern(), stage.name())
    } else {
        Outcome::Ignored
    };
    (outcome, result.map_err(Error::Inner))
}

/// Runs an operation that already returns this crate's [`Error`], such as an inner pattern
/// of a pipeline. The operation's own errors are judged by `classifier`; an inner timeout,
/// exhausted retry or failed fallback counts as a failure; an inner rejection (a full
/// bulkhead, say) is neither success nor failure. Errors pass through unchanged.
pub fn execute<'a, S, C, T, E, F, Fut>(
    stage: &'a S,
    classifier: &'a C,
    operation: F,
) -> impl Future<Output = Result<T, Error<E>>> + use<'a, S, C, T, E, F, Fut>
where
    S: Stage + ?Sized,
    C: Classify<T, E>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, Error<E>>>,
{
    guarded(stage, operation, move |stage, wants_outcome, result| {
        if wants_outcome {
            judge_nested(classifier, result, stage.pattern(), stage.name())
        } else {
            (Outcome::Ignored, result)
        }
    })
}

/// Admission, the operation under the stage's call limit, and the outcome: what every entry
/// point shares. `judge` turns the operation's output into the outcome (when the permit wants
/// one) and the result.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// copies its arguments into the future's locals, so each would be stored twice (measured:
/// 184 bytes instead of 144 for a breaker call).
#[allow(clippy::manual_async_fn)]
fn guarded<'a, S, T, E, R, F, Fut, J>(
    stage: &'a S,
    operation: F,
    judge: J,
) -> impl Future<Output = Result<T, Error<E>>> + use<'a, S, T, E, R, F, Fut, J>
where
    S: Stage + ?Sized,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
    J: FnOnce(&S, bool, R) -> (Outcome, Result<T, Error<E>>),
{
    async move {
        // Only the admission's own future is kept while it waits, and only what it holds
        // once admitted while the operation runs: nothing of the stage's whole answer (with
        // room for a rejection) stays in this future.
        // Bound before it is awaited: a temporary of the `?` (with room for the error) would
        // otherwise be kept across the await.
        let admission = Admission::start(stage)?;
        let held = admission.await?;
        let output = match stage.call_limit() {
            None => operation().await,
            // Boxed: the timer is most of the future's size, and only a stage with a call
            // limit should pay for it.
            Some(limit) => match Box::pin(tokio::time::timeout(limit, operation())).await {
                Ok(output) => output,
                Err(_) => {
                    held.record(Outcome::Failure);
                    return Err(Error::Timeout {
                        elapsed: limit,
                        limit,
                    });
                }
            },
        };
        let (outcome, result) = judge(stage, held.wants_outcome(), output);
        held.record(outcome);
        result
    }
}

/// The admission of one call: what the stage granted at once, or the wait for its permit.
///
/// A rejection known at once is returned by [`start`](Self::start) instead, so this future
/// has no room for one.
enum Admission<'a, S: Stage + ?Sized> {
    Now(Option<Held<'a, S>>),
    Waiting(Waiting<S::Permit>),
}

impl<'a, S: Stage + ?Sized> Admission<'a, S> {
    /// Asks `stage`: a lease borrows it for the call; only a stage that must wait, or that
    /// does not lease, answers with a permit.
    #[inline]
    fn start<E>(stage: &'a S) -> Result<Self, Error<E>> {
        let held = match stage.lease() {
            Leased::Token(token) => Held::Lease(Lease::new(stage, token)),
            Leased::Rejected(rejection) => return Err(Error::Rejected(rejection)),
            Leased::Admit(admit) => match admit.permit_or_wait()? {
                Ok(permit) => Held::Permit(permit),
                Err(waiting) => return Ok(Self::Waiting(waiting)),
            },
        };
        Ok(Self::Now(Some(held)))
    }
}

impl<'a, S: Stage + ?Sized> Future for Admission<'a, S> {
    type Output = Result<Held<'a, S>, Rejection>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Now(held) => Poll::Ready(Ok(held
                .take()
                .expect("Admission polled after it completed"))),
            Self::Waiting(waiting) => waiting
                .as_mut()
                .poll(cx)
                .map(|answer| answer.map(Held::Permit)),
        }
    }
}

// What is held is only ever moved out, never pinned, and the wait is boxed.
impl<S: Stage + ?Sized> Unpin for Admission<'_, S> {}

/// What an admitted call holds: a lease on the borrowed stage, or the stage's permit. Either
/// releases itself when dropped.
enum Held<'a, S: Stage + ?Sized> {
    Lease(Lease<'a, S>),
    Permit(S::Permit),
}

impl<S: Stage + ?Sized> Held<'_, S> {
    #[inline]
    fn wants_outcome(&self) -> bool {
        match self {
            Self::Lease(lease) => lease.wants_outcome(),
            Self::Permit(permit) => permit.wants_outcome(),
        }
    }

    #[inline]
    fn record(self, outcome: Outcome) {
        match self {
            Self::Lease(lease) => lease.record(outcome),
            Self::Permit(permit) => permit.record(outcome),
        }
    }
}
