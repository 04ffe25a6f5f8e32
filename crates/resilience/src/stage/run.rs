//! Running an operation through a stage: [`call`], [`call_with`], [`execute`], written once
//! for every stage.

use std::future::Future;

use super::admit::Waiting;
use super::lease::Lease;
use super::{Leased, Stage, StagePermit};
use crate::classify::{judge, judge_nested, Classify, EveryError, Outcome};
use crate::Error;

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
/// copies its arguments into the future's locals, so each would be stored twice.
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
        // One `held` from admission to outcome, changed in place: the wait for a permit and
        // the permit take the same room in this future, and nothing of the stage's whole
        // answer (with room for a rejection) is kept in it.
        let mut held = Held::start(stage)?;
        if let Held::Waiting(waiting) = &mut held {
            held = Held::Permit(Some(waiting.await?));
        }
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

/// What a call holds: a lease on the borrowed stage, the stage's permit, or, until the stage
/// admits it, the wait for that permit. Each releases itself when dropped.
///
/// One value for the whole call, so that its future keeps room for one of them only.
enum Held<'a, S: Stage + ?Sized> {
    Lease(Lease<'a, S>),
    // `None` once recorded.
    Permit(Option<S::Permit>),
    Waiting(Waiting<S::Permit>),
}

impl<'a, S: Stage + ?Sized> Held<'a, S> {
    /// Asks `stage`: a lease borrows it for the call; only a stage that must wait, or that
    /// does not lease, answers with a permit. A rejection known at once is the error.
    ///
    /// Always inlined: called, it would return what is held through memory, to be copied into
    /// the call's future (see [`record`](Self::record)).
    #[inline(always)]
    fn start<E>(stage: &'a S) -> Result<Self, Error<E>> {
        Ok(match stage.lease() {
            Leased::Token(token) => Self::Lease(Lease::new(stage, token)),
            Leased::Rejected(rejection) => return Err(Error::Rejected(rejection)),
            Leased::Admit(admit) => match admit.permit_or_wait()? {
                Ok(permit) => Self::Permit(Some(permit)),
                Err(waiting) => Self::Waiting(waiting),
            },
        })
    }

    #[inline]
    fn wants_outcome(&self) -> bool {
        match self {
            Self::Lease(lease) => lease.wants_outcome(),
            Self::Permit(permit) => permit.as_ref().is_some_and(StagePermit::wants_outcome),
            Self::Waiting(_) => false,
        }
    }

    /// Tells the stage how the call went and releases what it held, in place rather than by
    /// value: moving what is held out of the call's future would read with wide loads what
    /// admission has just written field by field, which stalls the processor's store
    /// forwarding on every call (measured: most of what the stage model cost a call).
    #[inline(always)]
    fn record(&mut self, outcome: Outcome) {
        match self {
            Self::Lease(lease) => lease.end(outcome),
            Self::Permit(permit) => {
                if let Some(permit) = permit.take() {
                    permit.record(outcome);
                }
            }
            Self::Waiting(_) => {}
        }
    }
}
