//! Tower middleware for any stage: [`StageLayer`], [`StageService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use super::admit::Waiting;
use super::{Admit, Stage, StagePermit};
use crate::classify::{judge, Classify, EveryError, Outcome};
use crate::{Error, Rejection};

/// Applies a [`Stage`] to a tower service: every request is admitted by the stage first.
///
/// Clones of the layer, and every service it makes, share the one stage they were given:
/// cloning never creates new slots, budgets or circuits (axum clones services per
/// connection). The per-pattern names ([`BulkheadLayer`](crate::bulkhead::BulkheadLayer),
/// [`CircuitBreakerLayer`](crate::circuit_breaker::CircuitBreakerLayer), ...) are this layer.
///
/// ```
/// use resilience::bulkhead::{Bulkhead, BulkheadLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder("thumbnails").max_concurrent(8).build()?;
/// let service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct StageLayer<St, C = EveryError> {
    shared: Arc<Shared<St, C>>,
}

/// What a layer and its services share: the stage and the judge of outcomes.
struct Shared<St, C> {
    stage: St,
    classifier: C,
}

impl<St: Stage> StageLayer<St> {
    /// A layer admitting requests through `stage`, counting every inner error as a failure.
    pub fn new(stage: St) -> Self {
        Self {
            shared: Arc::new(Shared {
                stage,
                classifier: EveryError,
            }),
        }
    }
}

impl<St: Clone, C> StageLayer<St, C> {
    /// Judges responses and errors with `classifier` instead (for example, 5xx responses as
    /// failures).
    pub fn classifier<C2>(self, classifier: C2) -> StageLayer<St, C2> {
        StageLayer {
            shared: Arc::new(Shared {
                stage: self.shared.stage.clone(),
                classifier,
            }),
        }
    }
}

impl<St, C> StageLayer<St, C> {
    /// The stage admitting requests.
    pub fn stage(&self) -> &St {
        &self.shared.stage
    }
}

impl<St, C> Clone for StageLayer<St, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: fmt::Debug, C> fmt::Debug for StageLayer<St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageLayer")
            .field("stage", &self.shared.stage)
            .finish_non_exhaustive()
    }
}

impl<S, St: Stage, C> Layer<S> for StageLayer<St, C> {
    type Service = StageService<St, S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        StageService {
            inner,
            shared: Arc::clone(&self.shared),
            permit: None,
            rejection: None,
            admitting: None,
        }
    }
}

/// A tower service guarded by a [`Stage`]; made by [`StageLayer`].
///
/// `poll_ready` asks the stage for admission: at once when it decides at once, otherwise by
/// waiting as the stage's policy allows (a bulkhead queue, backpressure), as tower's
/// `ConcurrencyLimit` waits for a permit. The permit then travels with the request into the
/// [`ResponseFuture`] and learns the outcome when the response is ready, or is released when
/// the future is dropped. A refusal does not fail `poll_ready`: the service reports ready and
/// the next `call` returns [`Error::Rejected`] without reaching the inner service. The inner
/// service's errors come back as [`Error::Inner`]; a stage's
/// [`call_limit`](Stage::call_limit) ends a call that runs over it with [`Error::Timeout`].
///
/// A clone shares the stage but not a permit already taken by the original.
pub struct StageService<St: Stage, S, C = EveryError> {
    inner: S,
    shared: Arc<Shared<St, C>>,
    /// The answer `poll_ready` got, for the next `call`: a permit or a rejection. Kept apart
    /// rather than as one `Result`, so that handing the permit to the call moves the permit
    /// alone, not a value with room for a rejection.
    permit: Option<St::Permit>,
    rejection: Option<Rejection>,
    /// An admission still waiting (the boxed wait alone, so the service stays small).
    admitting: Option<Waiting<St::Permit>>,
}

impl<St: Stage, S, C> StageService<St, S, C> {
    crate::service_accessors!(inner: S);

    /// The stage guarding it.
    pub fn stage(&self) -> &St {
        &self.shared.stage
    }
}

impl<St: Stage, S: Clone, C> Clone for StageService<St, S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            permit: None,
            rejection: None,
            admitting: None,
        }
    }
}

impl<St: Stage, S: fmt::Debug, C> fmt::Debug for StageService<St, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageService")
            .field("inner", &self.inner)
            .field("stage", &self.shared.stage.name())
            .field("admitted", &self.permit.is_some())
            .field("rejected", &self.rejection.is_some())
            .field("waiting", &self.admitting.is_some())
            .finish()
    }
}

impl<St, S, C, Request> Service<Request> for StageService<St, S, C>
where
    St: Stage,
    S: Service<Request>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, St, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() && self.rejection.is_none() {
            if self.admitting.is_none() {
                // A stage that decides at once is answered without storing and polling.
                let admit = self.shared.stage.admit();
                self.admitting = admit.keep_in(&mut self.permit, &mut self.rejection);
            }
            if let Some(waiting) = &mut self.admitting {
                let answer = ready!(waiting.as_mut().poll(cx));
                self.admitting = None;
                match answer {
                    Ok(permit) => self.permit = Some(permit),
                    Err(rejection) => self.rejection = Some(rejection),
                }
            }
        }
        if self.rejection.is_some() {
            // Ready to hand the rejection to the next call; the inner service is not asked.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(permit) = self.permit.take() else {
            let rejection = self
                .rejection
                .take()
                .expect("StageService::call without poll_ready: call poll_ready first");
            return ResponseFuture {
                state: State::Rejected {
                    rejection: Some(rejection),
                },
            };
        };
        // The judge rides along only when the permit learns outcomes: a copy of the
        // classifier, or the shared state when user code may panic and must be reported
        // under the stage's name.
        let judge = match permit.wants_outcome() {
            false => Judge::Nobody,
            true if self.shared.classifier.runs_user_code() => {
                Judge::Shared(Arc::clone(&self.shared))
            }
            true => Judge::Classifier(self.shared.classifier.clone()),
        };
        let limit = self.shared.stage.call_limit().map(CallLimit::start);
        ResponseFuture::running(self.inner.call(request), None, Some(permit), limit, judge)
    }
}

pin_project! {
    /// The future of a [`StageService`] call: it holds the stage's permit until the response
    /// is ready or the future is dropped.
    pub struct ResponseFuture<F, St: Stage, C> {
        // One state at a time: a rejected call needs no room for a running one, and a
        // finished one holds nothing.
        #[pin]
        state: State<F, St, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, St: Stage, C> {
        Running {
            #[pin]
            inner: F,
            // An admission still to wait for, when it was decided per request in `call`.
            admit: Option<Waiting<St::Permit>>,
            permit: Option<St::Permit>,
            limit: Option<CallLimit>,
            judge: Judge<St, C>,
            // The operation has answered and the answer was returned.
            answered: bool,
        },
        Rejected {
            rejection: Option<Rejection>,
        },
        Done,
    }
}

/// The stage's limit on one call, and its timer.
struct CallLimit {
    // Boxed: a timer is larger than the rest of the future, and only a stage with a call
    // limit needs one.
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl CallLimit {
    fn start(limit: Duration) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// Who turns the response into the permit's outcome.
enum Judge<St, C> {
    /// The permit does not learn outcomes.
    Nobody,
    /// A copy of the classifier.
    Classifier(C),
    /// The layer's shared state: the classifier runs user code, and a panic in it is reported
    /// under the stage's name.
    Shared(Arc<Shared<St, C>>),
}

impl<St: Stage, C> Judge<St, C> {
    fn outcome<T, E>(self, result: &Result<T, E>) -> Outcome
    where
        C: Classify<T, E>,
    {
        match self {
            Self::Nobody => Outcome::Ignored,
            Self::Classifier(classifier) => classifier.outcome(result),
            Self::Shared(shared) => judge(
                &shared.classifier,
                result,
                shared.stage.pattern(),
                shared.stage.name(),
            ),
        }
    }
}

impl<F, St, C, T, E> Future for ResponseFuture<F, St, C>
where
    F: Future<Output = Result<T, E>>,
    St: Stage,
    C: Classify<T, E>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        // A timed-out operation is dropped before its permit is recorded, so a slot is never
        // free while the work it guarded still exists.
        let (output, finished) = match state.as_mut().project() {
            StateProj::Rejected { rejection } => {
                let rejection = rejection
                    .take()
                    .expect("ResponseFuture polled after completion");
                (Err(Error::Rejected(rejection)), None)
            }
            StateProj::Done => panic!("ResponseFuture polled after completion"),
            StateProj::Running {
                inner,
                admit,
                permit,
                limit,
                judge,
                answered,
            } => {
                if let Some(waiting) = admit {
                    let answer = ready!(waiting.as_mut().poll(cx));
                    *admit = None;
                    match answer {
                        Ok(admitted) => *permit = Some(admitted),
                        Err(rejection) => {
                            state.set(State::Done);
                            return Poll::Ready(Err(Error::Rejected(rejection)));
                        }
                    }
                }
                if *answered {
                    panic!("ResponseFuture polled after completion");
                }
                match inner.poll(cx) {
                    // The operation is over and holds nothing that the permit guards: the
                    // permit is recorded at once, and the state stays as it is (cheaper than
                    // dropping it here and again with the future).
                    Poll::Ready(result) => {
                        *answered = true;
                        if let Some(permit) = permit.take() {
                            let judge = std::mem::replace(judge, Judge::Nobody);
                            permit.record(judge.outcome(&result));
                        }
                        return Poll::Ready(result.map_err(Error::Inner));
                    }
                    Poll::Pending => {
                        let Some(CallLimit { sleep, limit }) = limit else {
                            return Poll::Pending;
                        };
                        ready!(sleep.as_mut().poll(cx));
                        let limit = *limit;
                        let timeout = Error::Timeout {
                            elapsed: limit,
                            limit,
                        };
                        (Err(timeout), permit.take().map(|p| (p, Outcome::Failure)))
                    }
                }
            }
        };
        state.set(State::Done);
        if let Some((permit, outcome)) = finished {
            permit.record(outcome);
        }
        Poll::Ready(output)
    }
}

impl<F, St: Stage, C> ResponseFuture<F, St, C> {
    fn running(
        inner: F,
        admit: Option<Waiting<St::Permit>>,
        permit: Option<St::Permit>,
        limit: Option<CallLimit>,
        judge: Judge<St, C>,
    ) -> Self {
        Self {
            state: State::Running {
                inner,
                admit,
                permit,
                limit,
                judge,
                answered: false,
            },
        }
    }

    pub(crate) fn admitting(admit: Admit<St::Permit>, inner: F) -> Self {
        match admit.now_or_wait() {
            Ok(Ok(permit)) => Self::running(inner, None, Some(permit), None, Judge::Nobody),
            Ok(Err(rejection)) => Self {
                state: State::Rejected {
                    rejection: Some(rejection),
                },
            },
            Err(waiting) => Self::running(inner, Some(waiting), None, None, Judge::Nobody),
        }
    }
}

impl<F, St: Stage, C> fmt::Debug for ResponseFuture<F, St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, holds_permit) = match &self.state {
            State::Running { admit, permit, .. } if admit.is_some() => {
                ("admitting", permit.is_some())
            }
            State::Running { permit, .. } => ("running", permit.is_some()),
            State::Rejected { .. } => ("rejected", false),
            State::Done => ("done", false),
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("holds_permit", &holds_permit)
            .finish_non_exhaustive()
    }
}
