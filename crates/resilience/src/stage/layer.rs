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
        if self.permit.is_none() && ready!(self.poll_admit(cx)) {
            // Ready to hand the rejection to the next call; the inner service is not asked.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.permit.is_none() {
            return self.rejected();
        }
        // The inner call first, then the permit: taken after it, the permit goes straight
        // from the service into the future instead of through a copy kept across the call.
        // (Should the inner call panic, the service keeps the permit for its next call,
        // as a service that is ready does.)
        let inner = self.inner.call(request);
        let Some(permit) = self.permit.take() else {
            unreachable!("the inner service cannot reach the permit");
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
        let extra = match self.shared.stage.call_limit() {
            None => Extra::None,
            Some(limit) => Extra::Limit(CallLimit::start(limit)),
        };
        let held = Some(Held { permit, judge });
        ResponseFuture::running(inner, held, extra)
    }
}

impl<St: Stage, S, C> StageService<St, S, C> {
    /// Admission for the next call, when no permit is held yet: `true` once refused.
    #[inline]
    fn poll_admit(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.rejection.is_some() {
            return Poll::Ready(true);
        }
        if self.admitting.is_none() {
            // A stage that decides at once is answered without storing and polling.
            match self
                .shared
                .stage
                .admit()
                .keep_in(&mut self.permit, &mut self.rejection)
            {
                Ok(refused) => return Poll::Ready(refused),
                Err(waiting) => self.admitting = Some(waiting),
            }
        }
        self.poll_waiting(cx)
    }

    /// Waits for an admission that was not decided at once.
    #[cold]
    #[inline(never)]
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Some(waiting) = &mut self.admitting else {
            unreachable!("only called with an admission waiting");
        };
        let answer = ready!(waiting.as_mut().poll(cx));
        self.admitting = None;
        Poll::Ready(match answer {
            Ok(permit) => {
                self.permit = Some(permit);
                false
            }
            Err(rejection) => {
                self.rejection = Some(rejection);
                true
            }
        })
    }

    /// The future of a call refused in `poll_ready`; kept out of `call`, whose admitted path
    /// it would otherwise weigh on.
    #[cold]
    #[inline(never)]
    fn rejected<F>(&mut self) -> ResponseFuture<F, St, C> {
        let rejection = self
            .rejection
            .take()
            .expect("StageService::call without poll_ready: call poll_ready first");
        ResponseFuture::rejected(rejection)
    }
}

pin_project! {
    /// The future of a [`StageService`] call: it holds the stage's permit until the response
    /// is ready or the future is dropped.
    pub struct ResponseFuture<F, St: Stage, C> {
        // A rejected call needs no room for a running one.
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
            // The permit and its judge until the operation answers; taken then, so a future
            // dropped after answering has nothing left to release.
            held: Option<Held<St, C>>,
            // What only some calls need, in one word or two.
            extra: Extra<St::Permit>,
        },
        // Refused (`None` once the refusal was returned, or once the call is over after an
        // admission refused late or a call limit ran out).
        Rejected {
            rejection: Option<Rejection>,
        },
    }
}

/// What only some calls need besides the permit: one of them at most, and usually neither.
enum Extra<P> {
    None,
    /// An admission still to wait for, decided per request in `call`.
    Admit(Waiting<P>),
    /// The stage's limit on the call. Boxed: a timer is larger than the rest of the future.
    Limit(Pin<Box<CallLimit>>),
}

/// What an admitted call holds while it runs: the permit, and who tells it the outcome.
struct Held<St: Stage, C> {
    permit: St::Permit,
    judge: Judge<St, C>,
}

pin_project! {
    /// The stage's limit on one call, and its timer.
    struct CallLimit {
        #[pin]
        sleep: Sleep,
        limit: Duration,
    }
}

impl CallLimit {
    fn start(limit: Duration) -> Pin<Box<Self>> {
        Box::pin(Self {
            sleep: tokio::time::sleep(limit),
            limit,
        })
    }

    /// Ready with the limit once the timer has run out.
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Duration> {
        let this = self.project();
        let limit = *this.limit;
        this.sleep.poll(cx).map(|()| limit)
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
        let (held, limit) = match state.as_mut().project() {
            StateProj::Rejected { rejection } => {
                let rejection = rejection
                    .take()
                    .expect("ResponseFuture polled after completion");
                return Poll::Ready(Err(Error::Rejected(rejection)));
            }
            StateProj::Running { inner, held, extra } => {
                if let Extra::Admit(waiting) = extra {
                    let answer = ready!(waiting.as_mut().poll(cx));
                    *extra = Extra::None;
                    match answer {
                        Ok(permit) => {
                            let judge = Judge::Nobody;
                            *held = Some(Held { permit, judge });
                        }
                        Err(rejection) => {
                            state.set(State::Rejected { rejection: None });
                            return Poll::Ready(Err(Error::Rejected(rejection)));
                        }
                    }
                }
                match inner.poll(cx) {
                    // The operation is over and holds nothing that the permit guards: the
                    // permit is recorded at once, and the rest goes with the future.
                    Poll::Ready(result) => {
                        if let Some(Held { permit, judge }) = held.take() {
                            permit.record(judge.outcome(&result));
                        }
                        return Poll::Ready(result.map_err(Error::Inner));
                    }
                    Poll::Pending => {
                        let Extra::Limit(limit) = extra else {
                            return Poll::Pending;
                        };
                        (held, ready!(limit.as_mut().poll_expired(cx)))
                    }
                }
            }
        };
        // A timed-out operation is dropped before its permit is recorded, so a slot is never
        // free while the work it guarded still exists.
        let held = held.take();
        state.set(State::Rejected { rejection: None });
        if let Some(Held { permit, .. }) = held {
            permit.record(Outcome::Failure);
        }
        Poll::Ready(Err(Error::Timeout {
            elapsed: limit,
            limit,
        }))
    }
}

impl<F, St: Stage, C> ResponseFuture<F, St, C> {
    fn running(inner: F, held: Option<Held<St, C>>, extra: Extra<St::Permit>) -> Self {
        Self {
            state: State::Running { inner, held, extra },
        }
    }

    fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
        }
    }

    pub(crate) fn admitting(admit: Admit<St::Permit>, inner: F) -> Self {
        match admit.now_or_wait() {
            Ok(Ok(permit)) => {
                let judge = Judge::Nobody;
                Self::running(inner, Some(Held { permit, judge }), Extra::None)
            }
            Ok(Err(rejection)) => Self::rejected(rejection),
            Err(waiting) => Self::running(inner, None, Extra::Admit(waiting)),
        }
    }
}

impl<F, St: Stage, C> fmt::Debug for ResponseFuture<F, St, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, holds_permit) = match &self.state {
            State::Running {
                extra: Extra::Admit(_),
                held,
                ..
            } => ("admitting", held.is_some()),
            State::Running { held, .. } => ("running", held.is_some()),
            State::Rejected { rejection } if rejection.is_some() => ("rejected", false),
            State::Rejected { .. } => ("done", false),
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("holds_permit", &holds_permit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready, Ready};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use tower::{service_fn, ServiceExt};

    use super::*;
    use crate::rate_limit::DirectRateLimiter;
    use crate::PatternKind;

    /// A stage whose calls may run 10 ms, and whose permits note each outcome and whether the
    /// operation they guarded still existed when they learned it.
    #[derive(Clone, Default)]
    struct Watched {
        alive: Arc<AtomicBool>,
        outcomes: Arc<Mutex<Vec<(Outcome, bool)>>>,
    }

    struct WatchedPermit(Watched);

    impl Stage for Watched {
        type Permit = WatchedPermit;

        fn admit(&self) -> Admit<WatchedPermit> {
            Admit::admitted(WatchedPermit(self.clone()))
        }

        fn name(&self) -> &str {
            "watched"
        }

        fn pattern(&self) -> PatternKind {
            PatternKind::Custom("watched")
        }

        fn call_limit(&self) -> Option<Duration> {
            Some(Duration::from_millis(10))
        }
    }

    impl StagePermit for WatchedPermit {
        fn wants_outcome(&self) -> bool {
            true
        }

        fn record(self, outcome: Outcome) {
            let alive = self.0.alive.load(Ordering::SeqCst);
            self.0.outcomes.lock().unwrap().push((outcome, alive));
        }
    }

    /// Marks the operation alive until it is dropped.
    struct Operation(Arc<AtomicBool>);

    impl Drop for Operation {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_over_its_limit_is_dropped_before_its_permit_learns_the_failure() {
        let stage = Watched::default();
        let alive = Arc::clone(&stage.alive);
        let service = StageLayer::new(stage.clone()).layer(service_fn(move |()| {
            alive.store(true, Ordering::SeqCst);
            let operation = Operation(Arc::clone(&alive));
            async move {
                let _operation = operation;
                pending::<Result<(), ()>>().await
            }
        }));
        let started = tokio::time::Instant::now();
        let error = service.oneshot(()).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        let limit = Duration::from_millis(10);
        assert!(
            matches!(error, Error::Timeout { elapsed, limit: l } if elapsed == limit && l == limit)
        );
        assert_eq!(*stage.outcomes.lock().unwrap(), [(Outcome::Failure, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_within_the_limit_is_judged_once() {
        let stage = Watched::default();
        let mut service = StageLayer::new(stage.clone()).layer(service_fn(|fail: bool| {
            ready(if fail { Err(()) } else { Ok(()) })
        }));
        service.ready().await.unwrap().call(false).await.unwrap();
        let error = service.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(matches!(error, Error::Inner(())));
        let outcomes = stage.outcomes.lock().unwrap();
        assert_eq!(
            *outcomes,
            [(Outcome::Success, false), (Outcome::Failure, false)]
        );
    }

    #[tokio::test]
    async fn a_service_whose_inner_call_panicked_keeps_its_permit_for_the_next_call() {
        let bulkhead = crate::Bulkhead::builder("one")
            .max_concurrent(1)
            .build()
            .unwrap();
        let mut first = true;
        let mut service = StageLayer::new(bulkhead.clone()).layer(service_fn(move |()| {
            assert!(!std::mem::take(&mut first), "the first inner call panics");
            ready(Ok::<_, ()>(()))
        }));
        service.ready().await.unwrap();
        let call = std::panic::AssertUnwindSafe(|| drop(service.call(())));
        assert!(std::panic::catch_unwind(call).is_err());
        assert!(bulkhead.try_acquire().is_err());
        service.ready().await.unwrap().call(()).await.unwrap();
        assert!(bulkhead.try_acquire().is_ok());
    }

    #[test]
    fn the_future_of_a_ready_service_is_no_larger_than_a_rejection() {
        type Future = ResponseFuture<Ready<Result<u64, ()>>, DirectRateLimiter, EveryError>;
        assert!(std::mem::size_of::<Future>() <= std::mem::size_of::<Rejection>());
    }
}
