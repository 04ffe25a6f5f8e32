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
            admitted: None,
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
    /// The answer `poll_ready` got, for the next `call`.
    admitted: Option<Result<St::Permit, Rejection>>,
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
            admitted: None,
            admitting: None,
        }
    }
}

impl<St: Stage, S: fmt::Debug, C> fmt::Debug for StageService<St, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageService")
            .field("inner", &self.inner)
            .field("stage", &self.shared.stage.name())
            .field("admitted", &self.admitted.as_ref().map(Result::is_ok))
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
        if self.admitted.is_none() {
            let answer = match &mut self.admitting {
                Some(waiting) => ready!(waiting.as_mut().poll(cx)),
                // A stage that decides at once is answered without storing and polling.
                None => match self.shared.stage.admit().now_or_wait() {
                    Ok(answer) => answer,
                    Err(waiting) => ready!(self.admitting.insert(waiting).as_mut().poll(cx)),
                },
            };
            self.admitting = None;
            self.admitted = Some(answer);
        }
        if let Some(Err(_)) = self.admitted {
            // Ready to hand the rejection to the next call; the inner service is not asked.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let admitted = self
            .admitted
            .take()
            .expect("StageService::call without poll_ready: call poll_ready first");
        match admitted {
            Ok(permit) => {
                let limit = self.shared.stage.call_limit();
                // The judge rides along only when the permit learns outcomes: a copy of the
                // classifier, or the shared state when user code may panic and must be
                // reported under the stage's name.
                let (classifier, judge) = match permit.wants_outcome() {
                    false => (None, None),
                    true if self.shared.classifier.runs_user_code() => {
                        (None, Some(Arc::clone(&self.shared)))
                    }
                    true => (Some(self.shared.classifier.clone()), None),
                };
                ResponseFuture {
                    inner: Some(self.inner.call(request)),
                    sleep: limit.map(|limit| Box::pin(tokio::time::sleep(limit))),
                    limit,
                    admit: None,
                    permit: Some(permit),
                    rejection: None,
                    classifier,
                    judge,
                }
            }
            Err(rejection) => ResponseFuture {
                inner: None,
                sleep: None,
                limit: None,
                admit: None,
                permit: None,
                rejection: Some(rejection),
                classifier: None,
                judge: None,
            },
        }
    }
}

pin_project! {
    /// The future of a [`StageService`] call: it holds the stage's permit until the response
    /// is ready or the future is dropped.
    pub struct ResponseFuture<F, St: Stage, C> {
        #[pin]
        inner: Option<F>,
        // Boxed: a timer is larger than the rest of the future, and only a stage with a call
        // limit needs one.
        sleep: Option<Pin<Box<Sleep>>>,
        limit: Option<Duration>,
        // An admission still to wait for, when it was decided per request in `call`.
        admit: Option<Waiting<St::Permit>>,
        permit: Option<St::Permit>,
        rejection: Option<Rejection>,
        classifier: Option<C>,
        judge: Option<Arc<Shared<St, C>>>,
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
        let mut this = self.project();
        if let Some(rejection) = this.rejection.take() {
            return Poll::Ready(Err(Error::Rejected(rejection)));
        }
        if let Some(admit) = this.admit {
            let answer = ready!(admit.as_mut().poll(cx));
            *this.admit = None;
            match answer {
                Ok(permit) => *this.permit = Some(permit),
                Err(rejection) => {
                    this.inner.set(None);
                    return Poll::Ready(Err(Error::Rejected(rejection)));
                }
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        if let Poll::Ready(result) = inner.poll(cx) {
            this.inner.set(None);
            if let Some(permit) = this.permit.take() {
                let outcome = match (this.classifier.take(), this.judge.take()) {
                    (Some(classifier), _) => classifier.outcome(&result),
                    (None, Some(shared)) => judge(
                        &shared.classifier,
                        &result,
                        shared.stage.pattern(),
                        shared.stage.name(),
                    ),
                    (None, None) => Outcome::Ignored,
                };
                permit.record(outcome);
            }
            return Poll::Ready(result.map_err(Error::Inner));
        }
        if let (Some(sleep), Some(limit)) = (this.sleep.as_mut(), *this.limit) {
            ready!(sleep.as_mut().poll(cx));
            this.inner.set(None);
            if let Some(permit) = this.permit.take() {
                permit.record(Outcome::Failure);
            }
            return Poll::Ready(Err(Error::Timeout {
                elapsed: limit,
                limit,
            }));
        }
        Poll::Pending
    }
}

impl<F, St: Stage, C> ResponseFuture<F, St, C> {
    /// A call admitted per request: `admit` first, then `inner`, which is not polled before
    /// the admission and is dropped unpolled on a refusal. Outcomes are not judged.
    pub(crate) fn admitting(admit: Admit<St::Permit>, inner: F) -> Self {
        let (inner, admit, permit, rejection) = match admit.now_or_wait() {
            Ok(Ok(permit)) => (Some(inner), None, Some(permit), None),
            Ok(Err(rejection)) => (None, None, None, Some(rejection)),
            Err(waiting) => (Some(inner), Some(waiting), None, None),
        };
        Self {
            inner,
            sleep: None,
            limit: None,
            admit,
            permit,
            rejection,
            classifier: None,
            judge: None,
        }
    }
}

impl<F, St: Stage, C> fmt::Debug for ResponseFuture<F, St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("running", &self.inner.is_some())
            .field("holds_permit", &self.permit.is_some())
            .field("rejected", &self.rejection.is_some())
            .finish_non_exhaustive()
    }
}
