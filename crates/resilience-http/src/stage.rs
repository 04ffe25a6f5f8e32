//! [`StageLayer`](HttpStageLayer): any stage in front of an HTTP service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{response, HeaderMap, Response};
use resilience::classify::Outcome;
use resilience::rate_limit::Decision;
use resilience::stage::{Admit, Stage, StagePermit};
use resilience::Rejection;
use tower_layer::Layer;

use crate::body::{BodyEnd, Guard, DEFAULT_BODY_IDLE_TIMEOUT};
use crate::service::{Stack, StagesService};
use crate::{ExcludePaths, Reply, ResponseClassifier, ResponseFactory};

/// How an HTTP layer admits one request.
///
/// Every core [`Stage`] is one (the request is not looked at). Stages that read the request
/// implement it directly: [`KeyedRateLimit`](crate::KeyedRateLimit) (a budget per key),
/// [`PriorityHeader`](crate::PriorityHeader) (a load shedder's priority from a header).
pub trait RequestStage: Send + Sync + 'static {
    /// What an admitted request holds until its response body has been sent.
    type Permit: StagePermit + 'static;

    /// Admits the request with this head, waiting as the stage's policy allows, or refuses.
    fn admit_request(
        &self,
        request: &Parts,
    ) -> impl Future<Output = Result<Self::Permit, Refusal>> + Send;

    /// Admits or refuses the request now, when the stage can tell without waiting, so that a
    /// layer whose stages all can does no asynchronous work before calling the service.
    ///
    /// The default, [`Admission::Later`], leaves the request to
    /// [`admit_request`](Self::admit_request). A stage that started to wait hands the wait
    /// over ([`Admission::Waiting`]) rather than starting again there.
    fn admit_now(&self, request: &Parts) -> Admission<Self::Permit> {
        let _ = request;
        Admission::Later
    }

    /// Adds headers of an admitted request's response (the `RateLimit-*` headers).
    fn annotate(&self, permit: &Self::Permit, headers: &mut HeaderMap) {
        let _ = (permit, headers);
    }

    /// The longest an admitted request may take to answer, if the stage limits it.
    fn call_limit(&self) -> Option<Duration> {
        None
    }
}

impl<St> RequestStage for St
where
    St: Stage + 'static,
{
    type Permit = St::Permit;

    fn admit_request(
        &self,
        _request: &Parts,
    ) -> impl Future<Output = Result<Self::Permit, Refusal>> + Send {
        let admit = self.admit();
        async move { admit.await.map_err(Refusal::from) }
    }

    fn admit_now(&self, _request: &Parts) -> Admission<Self::Permit> {
        Admission::of(self.admit())
    }

    fn call_limit(&self) -> Option<Duration> {
        Stage::call_limit(self)
    }
}

/// A stage's refusal of a request: the rejection and, for a rate limit, the decision whose
/// numbers go into the `RateLimit-*` headers.
#[derive(Debug, Clone)]
pub struct Refusal {
    rejection: Rejection,
    decision: Option<Decision>,
}

impl Refusal {
    /// A refusal by a rate limiter, with the decision that denied the request.
    pub fn rate_limited(rejection: Rejection, decision: Decision) -> Self {
        Self {
            rejection,
            decision: Some(decision),
        }
    }

    /// The rejection.
    pub fn rejection(&self) -> &Rejection {
        &self.rejection
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Self {
            rejection,
            decision: None,
        }
    }
}

/// A stage's answer to a request at the moment it is asked: see
/// [`RequestStage::admit_now`].
pub enum Admission<P> {
    /// Decided without waiting.
    Now(Result<P, Refusal>),
    /// The stage is waiting for its answer (a place in a queue, a network round trip): the
    /// wait, which gives up when dropped.
    Waiting(Pin<Box<dyn Future<Output = Result<P, Refusal>> + Send>>),
    /// Not decided, nothing taken: the answer comes from
    /// [`admit_request`](RequestStage::admit_request).
    Later,
}

impl<P: Send + 'static> Admission<P> {
    /// A core stage's admission: its answer if it has one now, otherwise its wait.
    #[inline]
    pub fn of(admit: Admit<P>) -> Self {
        match admit.now() {
            Ok(answer) => Self::Now(answer.map_err(Refusal::from)),
            Err(wait) => Self::Waiting(Box::pin(async move { wait.await.map_err(Refusal::from) })),
        }
    }
}

impl<P> fmt::Debug for Admission<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Self::Now(Ok(_)) => "admitted",
            Self::Now(Err(_)) => "refused",
            Self::Waiting(_) => "waiting",
            Self::Later => "later",
        };
        f.debug_tuple("Admission").field(&state).finish()
    }
}

/// One stage as HTTP middleware: the stage, the answer to its refusals, the paths it leaves
/// alone and how it judges responses.
///
/// Clones share the stage.
///
/// # What it does
///
/// Before a request reaches the service, the layer asks its stage for admission: any core
/// [`Stage`] (circuit breaker, bulkhead, backpressure, adaptive limiter, load shedder, direct
/// rate limiter, a Redis-backed limiter or breaker, a stage of your own), a
/// [`KeyedRateLimit`](crate::KeyedRateLimit) that reads the request's key, or a
/// [`PriorityHeader`](crate::PriorityHeader) that reads its priority. Every stage becomes
/// HTTP behaviour through this one piece of code:
///
/// * **Refused**: the client gets the layer's [`Reply`]: 429 with `Retry-After` and the
///   `RateLimit-*` headers for a rate limit, 503 with `Retry-After` for the others (see
///   [`Reply`]); the service is never called.
/// * **Admitted**: the request runs and the stage's permit rides in the
///   [response body](crate::ResponseBody) until its last byte has been sent, streaming
///   included; then the permit learns the response's outcome (see [`ResponseClassifier`]:
///   5xx are failures by default), which opens a circuit or teaches an adaptive limit.
/// * **Too slow**: a stage's [`call_limit`](Stage::call_limit) (a breaker's `timeout`) is
///   enforced: the client gets 408 and the permit a failure.
///
/// A client that goes away while its request waits in a queue gives its place up; one that
/// goes away while the body streams gives the permit back at once, and one that stops
/// reading gives it back after the [body idle timeout](HttpStageLayer::body_idle_timeout)
/// (30 s by default). Clones of the layer and
/// the services it makes share the stage they were given.
///
/// # Example
///
/// ```
/// use axum::{routing::get, Router};
/// use resilience::{Bulkhead, CircuitBreaker};
/// use resilience_http::{ExcludePaths, HttpStageLayer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder("api").max_concurrent(64).build()?;
/// let breaker = CircuitBreaker::builder("api").build()?;
/// let app: Router = Router::new()
///     .route("/search", get(|| async { "results" }))
///     .route("/health", get(|| async { "ok" }))
///     .layer(HttpStageLayer::new(breaker))
///     .layer(HttpStageLayer::new(bulkhead).exclude(ExcludePaths::none().exact("/health")));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpStageLayer<St> {
    pub(crate) stage: St,
    pub(crate) reply: Reply,
    pub(crate) exclude: ExcludePaths,
    pub(crate) classifier: ResponseClassifier,
    pub(crate) body_idle_timeout: Option<Duration>,
}

impl<St: RequestStage> HttpStageLayer<St> {
    /// A layer admitting requests through `stage`.
    pub fn new(stage: St) -> Self {
        Self {
            stage,
            reply: Reply::new(),
            exclude: ExcludePaths::none(),
            classifier: ResponseClassifier::server_errors(),
            body_idle_timeout: Some(DEFAULT_BODY_IDLE_TIMEOUT),
        }
    }
}

impl<St> HttpStageLayer<St> {
    setters! {
        /// Answers refusals as `reply` says.
        reply: Reply;
        /// Lets requests for these paths through untouched and uncounted.
        exclude: ExcludePaths;
        /// Gives the permit back when the response body has waited this long for the client to
        /// ask for its next chunk (`None`: never; default
        /// [`DEFAULT_BODY_IDLE_TIMEOUT`], 30 seconds).
        ///
        /// A client that reads the head and then stops reading would otherwise hold its
        /// bulkhead or load-shedder slot for as long as its connection stays open: the permit
        /// rides in the body until its last chunk is sent. Only the client's silence counts:
        /// while the body itself is slow to produce its next chunk (a server-sent event stream
        /// between events), no time is charged. The permit learns nothing from it (a stalled
        /// client says nothing about the service; [`BodyEnd::Stalled`]), and the body goes on
        /// being sent if the client resumes. Inside a [`CompositeLayer`](crate::CompositeLayer)
        /// the composite's own setting applies to the whole response instead.
        ///
        /// The watch starts when a chunk has gone out and more are to come: it costs a small
        /// task per such response that holds a permit, ended with the body (a body sent in
        /// one chunk costs none); `None` saves it.
        body_idle_timeout: Option<Duration>;
        /// Judges responses with `classifier` (5xx are failures by default).
        classifier: ResponseClassifier;
    }

    /// The stage.
    pub fn stage(&self) -> &St {
        &self.stage
    }
}

impl<St: RequestStage> From<St> for HttpStageLayer<St> {
    fn from(stage: St) -> Self {
        Self::new(stage)
    }
}

impl<S, St: RequestStage + Clone> Layer<S> for HttpStageLayer<St> {
    type Service = StagesService<S, Self>;

    fn layer(&self, inner: S) -> Self::Service {
        let idle = self.body_idle_timeout;
        Stack::service(inner, self.clone(), None, ExcludePaths::none(), idle)
    }
}

/// The one stage, for another framework's middleware (see [`Stack`]).
impl<St: RequestStage> From<HttpStageLayer<St>> for Stack<HttpStageLayer<St>> {
    fn from(layer: HttpStageLayer<St>) -> Self {
        let idle = layer.body_idle_timeout;
        Self::new(layer, None, ExcludePaths::none(), idle)
    }
}

impl<St: RequestStage> HttpStageLayer<St> {
    /// Puts the permit of an admitted request into `held`, or answers a refused one.
    #[inline]
    #[expect(
        clippy::result_large_err,
        reason = "an admission's refusal is the response to send; an admission writes only the tag"
    )]
    fn answer(
        &self,
        answer: Result<St::Permit, Refusal>,
        held: &mut Option<St::Permit>,
    ) -> Result<(), Response<Bytes>> {
        match answer {
            Ok(permit) => {
                *held = Some(permit);
                Ok(())
            }
            Err(refusal) => Err(self.refuse(&refusal)),
        }
    }

    /// The reply to a refusal.
    #[cold]
    fn refuse(&self, refusal: &Refusal) -> Response<Bytes> {
        self.reply
            .reject(&refusal.rejection, refusal.decision.as_ref())
    }
}

/// An admitted request's permit held by its response body, learning the response's outcome
/// when the body ends.
pub struct Slot<P> {
    permit: P,
    head: Outcome,
}

impl<P: StagePermit + 'static> Guard for Slot<P> {
    fn finish(self, end: BodyEnd) {
        self.permit.record(end.outcome(self.head));
    }
}

impl<P> fmt::Debug for Slot<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// An ordered list of HTTP stages, admitted first to last and released last to first: a
/// single [`HttpStageLayer`], a [`Chain`] of them, or none (`()`).
///
/// The [composite](crate::CompositeLayer) folds its stages with this one trait; it is public
/// so its types can be named, and implemented only by this crate.
///
/// Admission writes each stage's permit into its place in a [`Held`](Self::Held) that the
/// caller provides (starting from its default, which holds nothing), so the permits are not
/// moved from stage to stage; what comes back is only whether it finished.
pub trait Stages: Send + Sync + 'static {
    /// What an admitted request holds between admission and its response head; its default
    /// holds nothing.
    type Held: Default + Send + 'static;
    /// What its response body holds until it ends.
    type Guard: Guard;
    /// Where an admission that could not finish at once stopped: the stage that is waiting
    /// or still to be asked (the permits taken so far are in the [`Held`](Self::Held)).
    type Pending: Send + 'static;

    /// Admits the request at every stage in order, or answers with the first refusal (the
    /// permits taken before it are released, their headers added to the answer).
    fn admit<'a>(
        &'a self,
        request: &'a Parts,
    ) -> impl Future<Output = Result<Self::Held, Response<Bytes>>> + Send + 'a {
        async move {
            let mut held = Self::Held::default();
            self.admit_into(request, &mut held).await?;
            Ok(held)
        }
    }

    /// [`admit`](Self::admit) into `held`: on a refusal, `held` keeps the permits taken
    /// before it (their headers already in the answer), which dropping it gives back.
    fn admit_into<'a>(
        &'a self,
        request: &'a Parts,
        held: &'a mut Self::Held,
    ) -> impl Future<Output = Result<(), Response<Bytes>>> + Send + 'a {
        let now = self.admit_now(request, held);
        async move {
            match now {
                Ok(()) => Ok(()),
                Err(Halt::Refused(refused)) => Err(refused),
                Err(Halt::Pending(pending)) => self.resume(pending, request, held).await,
            }
        }
    }

    /// [`admit_into`](Self::admit_into) as far as the stages can answer without waiting:
    /// `Ok` when every stage admitted the request, otherwise the refusal or where it stopped,
    /// for [`resume`](Self::resume).
    #[expect(
        clippy::result_large_err,
        reason = "an admission's refusal is the response to send; an admission writes only the tag"
    )]
    fn admit_now(&self, request: &Parts, held: &mut Self::Held) -> Result<(), Halt<Self::Pending>>;

    /// Finishes an admission that [`admit_now`](Self::admit_now) left pending, for the same
    /// request and into the same `held`.
    fn resume<'a>(
        &'a self,
        pending: Self::Pending,
        request: &'a Parts,
        held: &'a mut Self::Held,
    ) -> impl Future<Output = Result<(), Response<Bytes>>> + Send + 'a;

    /// Adds each admitting stage's headers to the response.
    fn annotate(&self, held: &Self::Held, headers: &mut HeaderMap);

    /// The body's guard for a response with this head: each stage judges the head with its
    /// own classifier.
    fn guard(&self, held: Self::Held, head: &response::Parts) -> Self::Guard;

    /// The service failed without a response: every permit learns a failure.
    fn fail(held: Self::Held);

    /// The shortest call limit of the stages, if any sets one.
    fn call_limit(&self) -> Option<Duration>;

    /// Builds refusals with `factory` where a stage's reply has none of its own.
    fn default_factory(&mut self, factory: &ResponseFactory);
}

/// Why [`Stages::admit_now`] did not admit a request at once.
#[derive(Debug)]
pub enum Halt<P> {
    /// A stage refused it: the answer to send, with the headers of the stages before it.
    Refused(Response<Bytes>),
    /// A stage is waiting for its answer, or is still to be asked: see [`Stages::resume`].
    Pending(P),
}

impl<P> Halt<P> {
    /// The same halt, with a pending admission's state made by `f`.
    #[inline]
    fn map_pending<Q>(self, f: impl FnOnce(P) -> Q) -> Halt<Q> {
        match self {
            Self::Refused(refused) => Halt::Refused(refused),
            Self::Pending(pending) => Halt::Pending(f(pending)),
        }
    }
}

impl<St: RequestStage> Stages for HttpStageLayer<St> {
    /// `None` when the path is excluded.
    type Held = Option<St::Permit>;
    type Guard = Option<Slot<St::Permit>>;
    type Pending = Admission<St::Permit>;

    #[inline]
    fn admit_now(&self, request: &Parts, held: &mut Self::Held) -> Result<(), Halt<Self::Pending>> {
        if self.exclude.matches(request.uri.path()) {
            return Ok(());
        }
        match self.stage.admit_now(request) {
            Admission::Now(answer) => self.answer(answer, held).map_err(Halt::Refused),
            pending => Err(Halt::Pending(pending)),
        }
    }

    async fn resume<'a>(
        &'a self,
        pending: Self::Pending,
        request: &'a Parts,
        held: &'a mut Self::Held,
    ) -> Result<(), Response<Bytes>> {
        let answer = match pending {
            Admission::Now(answer) => answer,
            Admission::Waiting(wait) => wait.await,
            Admission::Later => self.stage.admit_request(request).await,
        };
        self.answer(answer, held)
    }

    fn annotate(&self, held: &Self::Held, headers: &mut HeaderMap) {
        if let Some(permit) = held {
            self.stage.annotate(permit, headers);
        }
    }

    fn guard(&self, held: Self::Held, head: &response::Parts) -> Self::Guard {
        held.map(|permit| {
            // A permit that ignores the outcome (a rate limit's, a load shedder's) is not
            // worth running the classifier for, which may be a predicate of the user's.
            let head = if permit.wants_outcome() {
                self.classifier.classify(head)
            } else {
                Outcome::Ignored
            };
            Slot { permit, head }
        })
    }

    fn fail(held: Self::Held) {
        if let Some(permit) = held {
            permit.record(Outcome::Failure);
        }
    }

    fn call_limit(&self) -> Option<Duration> {
        self.stage.call_limit()
    }

    fn default_factory(&mut self, factory: &ResponseFactory) {
        self.reply.default_factory(factory);
    }
}

/// No stage: admits everything.
impl Stages for () {
    type Held = ();
    type Guard = ();
    type Pending = Infallible;

    #[inline]
    fn admit_now(&self, _request: &Parts, _held: &mut ()) -> Result<(), Halt<Infallible>> {
        Ok(())
    }

    async fn resume<'a>(
        &'a self,
        pending: Infallible,
        _request: &'a Parts,
        _held: &'a mut (),
    ) -> Result<(), Response<Bytes>> {
        match pending {}
    }

    fn annotate(&self, _held: &(), _headers: &mut HeaderMap) {}

    fn guard(&self, _held: (), _head: &response::Parts) {}

    fn fail(_held: ()) {}

    fn call_limit(&self) -> Option<Duration> {
        None
    }

    fn default_factory(&mut self, _factory: &ResponseFactory) {}
}

/// `A`'s stages, then `B`'s.
#[derive(Debug, Clone)]
pub struct Chain<A, B> {
    first: A,
    then: B,
}

impl<A, B> Chain<A, B> {
    pub(crate) fn new(first: A, then: B) -> Self {
        Self { first, then }
    }
}

impl<A: Stages, B: Stages> Stages for Chain<A, B> {
    type Held = (A::Held, B::Held);
    type Guard = ChainGuard<A::Guard, B::Guard>;
    type Pending = ChainPending<A::Pending, B::Pending>;

    #[inline]
    fn admit_now(
        &self,
        request: &Parts,
        (first, then): &mut Self::Held,
    ) -> Result<(), Halt<Self::Pending>> {
        self.first
            .admit_now(request, first)
            .map_err(|halt| halt.map_pending(ChainPending::First))?;
        self.then
            .admit_now(request, then)
            .map_err(|halt| match halt {
                Halt::Refused(refused) => Halt::Refused(self.then_refused(first, refused)),
                Halt::Pending(pending) => Halt::Pending(ChainPending::Then(pending)),
            })
    }

    async fn resume<'a>(
        &'a self,
        pending: Self::Pending,
        request: &'a Parts,
        (first, then): &'a mut Self::Held,
    ) -> Result<(), Response<Bytes>> {
        let answer = match pending {
            ChainPending::First(pending) => {
                self.first.resume(pending, request, first).await?;
                self.then.admit_into(request, then).await
            }
            ChainPending::Then(pending) => self.then.resume(pending, request, then).await,
        };
        answer.map_err(|refused| self.then_refused(first, refused))
    }

    fn annotate(&self, (first, then): &Self::Held, headers: &mut HeaderMap) {
        self.first.annotate(first, headers);
        self.then.annotate(then, headers);
    }

    fn guard(&self, (first, then): Self::Held, head: &response::Parts) -> Self::Guard {
        ChainGuard {
            first: self.first.guard(first, head),
            then: self.then.guard(then, head),
        }
    }

    fn fail((first, then): Self::Held) {
        B::fail(then);
        A::fail(first);
    }

    fn call_limit(&self) -> Option<Duration> {
        match (self.first.call_limit(), self.then.call_limit()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn default_factory(&mut self, factory: &ResponseFactory) {
        self.first.default_factory(factory);
        self.then.default_factory(factory);
    }
}

impl<A: Stages, B: Stages> Chain<A, B> {
    /// The refusal of the last stages, telling the client what the first ones would (a
    /// refusal after a rate limit still tells the client its quota).
    #[cold]
    fn then_refused(&self, first: &A::Held, mut refused: Response<Bytes>) -> Response<Bytes> {
        self.first.annotate(first, refused.headers_mut());
        refused
    }
}

/// Where the admission of a [`Chain`] stopped: in its first stages, or in its last with the
/// first ones' permits taken.
pub enum ChainPending<A, B> {
    /// The first stages are still to answer.
    First(A),
    /// The first stages admitted the request; the last is still to answer.
    Then(B),
}

impl<A, B> fmt::Debug for ChainPending<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::First(_) => "ChainPending::First",
            Self::Then(_) => "ChainPending::Then",
        })
    }
}

/// The guards of a [`Chain`], released last stage first.
#[derive(Debug)]
pub struct ChainGuard<A, B> {
    first: A,
    then: B,
}

impl<A: Guard, B: Guard> Guard for ChainGuard<A, B> {
    fn finish(self, end: BodyEnd) {
        self.then.finish(end);
        self.first.finish(end);
    }

    fn holds_anything(&self) -> bool {
        self.first.holds_anything() || self.then.holds_anything()
    }
}

impl<G: Guard> Guard for Option<G> {
    fn finish(self, end: BodyEnd) {
        if let Some(guard) = self {
            guard.finish(end);
        }
    }

    fn holds_anything(&self) -> bool {
        self.as_ref().is_some_and(Guard::holds_anything)
    }
}
