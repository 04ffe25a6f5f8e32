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
    /// The permit of an admitted request, or the reply to a refused one.
    #[expect(
        clippy::result_large_err,
        reason = "the answer of `Stages::admit`, whose refusal is the response to send"
    )]
    fn answer(
        &self,
        answer: Result<St::Permit, Refusal>,
    ) -> Result<Option<St::Permit>, Response<Bytes>> {
        match answer {
            Ok(permit) => Ok(Some(permit)),
            Err(refusal) => Err(self
                .reply
                .reject(&refusal.rejection, refusal.decision.as_ref())),
        }
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
pub trait Stages: Send + Sync + 'static {
    /// What an admitted request holds between admission and its response head.
    type Held: Send + 'static;
    /// What its response body holds until it ends.
    type Guard: Guard;
    /// Where an admission that could not finish at once stopped: the permits taken so far
    /// and the stage that is waiting or still to be asked.
    type Pending: Send + 'static;

    /// Admits the request at every stage in order, or answers with the first refusal (the
    /// permits taken before it are released, their headers added to the answer).
    fn admit<'a>(
        &'a self,
        request: &'a Parts,
    ) -> impl Future<Output = Result<Self::Held, Response<Bytes>>> + Send + 'a {
        let now = self.admit_now(request);
        async move {
            match now {
                Ok(answer) => answer,
                Err(pending) => self.resume(pending, request).await,
            }
        }
    }

    /// [`admit`](Self::admit) as far as the stages can answer without waiting: the answer
    /// (`Ok`), or where it stopped, for [`resume`](Self::resume).
    fn admit_now(
        &self,
        request: &Parts,
    ) -> Result<Result<Self::Held, Response<Bytes>>, Self::Pending>;

    /// Finishes an admission that [`admit_now`](Self::admit_now) left pending, for the same
    /// request.
    fn resume<'a>(
        &'a self,
        pending: Self::Pending,
        request: &'a Parts,
    ) -> impl Future<Output = Result<Self::Held, Response<Bytes>>> + Send + 'a;

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

impl<St: RequestStage> Stages for HttpStageLayer<St> {
    /// `None` when the path is excluded.
    type Held = Option<St::Permit>;
    type Guard = Option<Slot<St::Permit>>;
    type Pending = Admission<St::Permit>;

    fn admit_now(
        &self,
        request: &Parts,
    ) -> Result<Result<Self::Held, Response<Bytes>>, Self::Pending> {
        if self.exclude.matches(request.uri.path()) {
            return Ok(Ok(None));
        }
        match self.stage.admit_now(request) {
            Admission::Now(answer) => Ok(self.answer(answer)),
            pending => Err(pending),
        }
    }

    async fn resume<'a>(
        &'a self,
        pending: Self::Pending,
        request: &'a Parts,
    ) -> Result<Self::Held, Response<Bytes>> {
        let answer = match pending {
            Admission::Now(answer) => answer,
            Admission::Waiting(wait) => wait.await,
            Admission::Later => self.stage.admit_request(request).await,
        };
        self.answer(answer)
    }

    fn annotate(&self, held: &Self::Held, headers: &mut HeaderMap) {
        if let Some(permit) = held {
            self.stage.annotate(permit, headers);
        }
    }

    fn guard(&self, held: Self::Held, head: &response::Parts) -> Self::Guard {
        held.map(|permit| Slot {
            permit,
            head: self.classifier.classify(head),
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

    fn admit_now(&self, _request: &Parts) -> Result<Result<(), Response<Bytes>>, Infallible> {
        Ok(Ok(()))
    }

    async fn resume<'a>(
        &'a self,
        pending: Infallible,
        _request: &'a Parts,
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
    type Pending = ChainPending<A::Pending, A::Held, B::Pending>;

    fn admit_now(
        &self,
        request: &Parts,
    ) -> Result<Result<Self::Held, Response<Bytes>>, Self::Pending> {
        let first = match self.first.admit_now(request) {
            Ok(Ok(first)) => first,
            Ok(Err(refused)) => return Ok(Err(refused)),
            Err(pending) => return Err(ChainPending::First(pending)),
        };
        match self.then.admit_now(request) {
            Ok(then) => Ok(self.then_answered(first, then)),
            Err(pending) => Err(ChainPending::Then(first, pending)),
        }
    }

    async fn resume<'a>(
        &'a self,
        pending: Self::Pending,
        request: &'a Parts,
    ) -> Result<Self::Held, Response<Bytes>> {
        let (first, then) = match pending {
            ChainPending::First(pending) => {
                let first = self.first.resume(pending, request).await?;
                let then = self.then.admit(request).await;
                (first, then)
            }
            ChainPending::Then(first, pending) => {
                let then = self.then.resume(pending, request).await;
                (first, then)
            }
        };
        self.then_answered(first, then)
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
    /// Both stages' permits once the second has answered, or its refusal.
    #[expect(
        clippy::result_large_err,
        reason = "the answer of `Stages::admit`, whose refusal is the response to send"
    )]
    fn then_answered(
        &self,
        first: A::Held,
        then: Result<B::Held, Response<Bytes>>,
    ) -> Result<(A::Held, B::Held), Response<Bytes>> {
        match then {
            Ok(then) => Ok((first, then)),
            Err(mut refused) => {
                // A refusal after a rate limit still tells the client its quota.
                self.first.annotate(&first, refused.headers_mut());
                Err(refused)
            }
        }
    }
}

/// Where the admission of a [`Chain`] stopped: in its first stages, or in its last with the
/// first ones' permits taken.
pub enum ChainPending<A, H, B> {
    /// The first stages are still to answer.
    First(A),
    /// The first stages admitted the request (their permits); the last is still to answer.
    Then(H, B),
}

impl<A, H, B> fmt::Debug for ChainPending<A, H, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::First(_) => "ChainPending::First",
            Self::Then(..) => "ChainPending::Then",
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
