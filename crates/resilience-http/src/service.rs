//! What every layer's service shares: its future type and the moves between request, inner
//! service and response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{response, Method, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{BodyEnd, Guard, ResponseBody};
use crate::stage::{Halt, Stages};
use crate::{ExcludePaths, HttpTimeoutLayer, Reply};

/// The future of every service in this crate.
///
/// Boxed because what a request awaits has types that cannot be named (the core's timeout
/// and `RateLimiter::check` return `impl Future`, and so do the stages of your own); one
/// allocation per request, as axum's own routes make. Stages that answer at once are asked
/// before the box is made, so it holds the service's call alone.
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Takes the inner service that `poll_ready` made ready, leaving a clone in its place
/// (tower's advice for services that call their inner service from a future: the clone may
/// not be ready, the taken one is).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// The inner service's response, passed through with nothing held.
pub(crate) fn passthrough<B, G: Guard>(response: Response<B>) -> Response<ResponseBody<B, G>> {
    response.map(ResponseBody::new)
}

/// A response made by a layer.
pub(crate) fn made<B, G: Guard>(response: Response<Bytes>) -> Response<ResponseBody<B, G>> {
    response.map(ResponseBody::full)
}

/// The inner service's response, its body holding the guard that `guard` builds from the
/// response head (where the outcome is judged).
///
/// The answer to a `HEAD` request has no body to send (hyper drops it unpolled), so it is
/// complete with its head: the guard goes back at once, with the head's outcome.
pub(crate) fn guarded<B, G, F>(
    response: Response<B>,
    head_request: bool,
    idle: Option<Duration>,
    guard: F,
) -> Response<ResponseBody<B, G>>
where
    B: Body,
    G: Guard,
    F: FnOnce(&response::Parts) -> G,
{
    let (parts, body) = response.into_parts();
    let guard = guard(&parts);
    let idle = if head_request { None } else { idle };
    let mut body = ResponseBody::guarded(body, guard, idle);
    if head_request {
        body.release(BodyEnd::Complete);
    }
    Response::from_parts(parts, body)
}

/// What one of this crate's layers does with a request, given the inner service made ready:
/// everything but the tower plumbing, which [`HttpService`] writes once for all of them.
///
/// Implemented by this crate's layers; it is public so their services can be named.
pub trait Handle<S, Request>: Send + Sync + 'static {
    /// The request the inner service takes (a retry hands it a replayable body).
    type InnerRequest;
    /// The response the layer gives.
    type Response;
    /// The inner service's error, passed through.
    type Error;

    /// Handles `request` with `inner`, which `poll_ready` made ready. The future owns what it
    /// uses (a handle on the layer's settings among them): services box it as it is.
    fn handle(
        self: Arc<Self>,
        inner: S,
        request: Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send + 'static;
}

/// An HTTP service wrapped by one of this crate's layers: the stages of an
/// [`HttpStageLayer`](crate::HttpStageLayer) or a [`CompositeLayer`](crate::CompositeLayer), a
/// timeout, a retry or a fallback. `H` is what the layer does with each request.
pub struct HttpService<S, H> {
    inner: S,
    shared: Arc<H>,
}

impl<S, H> HttpService<S, H> {
    pub(crate) fn new(inner: S, shared: Arc<H>) -> Self {
        Self { inner, shared }
    }

    resilience::service_accessors!(inner: S);
}

impl<S: Clone, H> Clone for HttpService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, H: fmt::Debug> fmt::Debug for HttpService<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S, H, Request> Service<Request> for HttpService<S, H>
where
    H: Handle<S, Request>,
    H::Response: Send + 'static,
    H::Error: Send + 'static,
    S: Service<H::InnerRequest, Error = H::Error> + Clone + Send + 'static,
    Request: Send + 'static,
{
    type Response = H::Response;
    type Error = H::Error;
    type Future = ResponseFuture<H::Response, H::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), H::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        Box::pin(H::handle(Arc::clone(&self.shared), inner, request))
    }
}

/// An HTTP service behind a list of stages and an optional timeout: what
/// [`HttpStageLayer`](crate::HttpStageLayer), [`HttpTimeoutLayer`](crate::HttpTimeoutLayer)
/// and [`CompositeLayer`](crate::CompositeLayer) make.
pub type StagesService<S, G> = HttpService<S, Stack<G>>;

/// What a stages service does: its stages, its timeout and the paths it leaves alone.
///
/// Made from a [`CompositeLayer`](crate::CompositeLayer), an
/// [`HttpStageLayer`](crate::HttpStageLayer) or an [`HttpTimeoutLayer`] with `From`. The tower
/// service of this crate drives it, and so can the middleware of another framework
/// (`resilience-actix` does): every decision is here, in `http` 1.x types, and an adapter
/// only moves requests, responses and bodies across:
///
/// 1. a request whose path [`excludes`](Self::excludes) names goes to the service untouched;
/// 2. otherwise the [stages](Self::stages) [admit](Stages::admit) its head, or answer with
///    a made response (429, 503, ...) that the adapter sends as it is;
/// 3. the service runs under [`run`](Self::run), which answers a timeout with a made
///    response (408);
/// 4. the stages [annotate](Stages::annotate) the service's response headers and turn their
///    permits into a [`Guard`] judged on its head ([`Stages::guard`]), which the response body
///    holds until it ends ([`HeldGuard`](crate::HeldGuard)); a service error
///    [fails](Stages::fail) every permit instead.
pub struct Stack<G> {
    stages: G,
    timeout: Option<HttpTimeoutLayer>,
    exclude: ExcludePaths,
    /// How long a body may wait for the client before its permits go back.
    body_idle_timeout: Option<Duration>,
}

impl<G> Stack<G> {
    pub(crate) fn new(
        stages: G,
        timeout: Option<HttpTimeoutLayer>,
        exclude: ExcludePaths,
        body_idle_timeout: Option<Duration>,
    ) -> Self {
        Self {
            stages,
            timeout,
            exclude,
            body_idle_timeout,
        }
    }

    pub(crate) fn service<S>(
        inner: S,
        stages: G,
        timeout: Option<HttpTimeoutLayer>,
        exclude: ExcludePaths,
        body_idle_timeout: Option<Duration>,
    ) -> StagesService<S, G> {
        HttpService::new(
            inner,
            Arc::new(Self::new(stages, timeout, exclude, body_idle_timeout)),
        )
    }

    /// The stages, in order.
    pub fn stages(&self) -> &G {
        &self.stages
    }

    /// Whether a request for `path` passes every step untouched (the stages' own exclusions
    /// are checked by [`Stages::admit`]).
    pub fn excludes(&self, path: &str) -> bool {
        self.exclude.matches(path)
    }

    /// How long a response body may wait for the client to ask for its next chunk before
    /// its permits go back (`None`: never).
    pub fn body_idle_timeout(&self) -> Option<Duration> {
        self.body_idle_timeout
    }
}

impl<G: Stages> Stack<G> {
    /// Runs `call`, the service's answer to an admitted request for `path`, within the
    /// timeout (unless it excludes `path`) and the stages' shortest call limit: its own
    /// result, or the response for a timeout (408 by default; it carries
    /// [`TimedOut`](crate::TimedOut), so the stages' classifiers judge it a failure).
    pub async fn run<T, E>(
        &self,
        path: &str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, Response<Bytes>> {
        self.run_with(self.timeout_for(path), call).await
    }

    /// The timeout that applies to `path`.
    fn timeout_for(&self, path: &str) -> Option<&HttpTimeoutLayer> {
        self.timeout
            .as_ref()
            .filter(|timeout| !timeout.exclude.matches(path))
    }

    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its arguments twice (as passed and as bound), in every request's box"
    )]
    fn run_with<'a, T, E>(
        &'a self,
        timeout: Option<&'a HttpTimeoutLayer>,
        call: impl Future<Output = Result<T, E>> + 'a,
    ) -> impl Future<Output = Result<Result<T, E>, Response<Bytes>>> + 'a {
        async move {
            let call_limit = self.stages.call_limit();
            match (timeout, call_limit) {
                (Some(timeout), _) => timeout.run(call_limit, || call).await,
                (None, Some(limit)) => crate::timeout::run_limit(&Reply::new(), limit, call).await,
                (None, None) => Ok(call.await),
            }
        }
    }
}

impl<G: fmt::Debug> fmt::Debug for Stack<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("stages", &self.stages)
            .field("timeout", &self.timeout)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<S, G, ReqBody, ResBody> Handle<S, Request<ReqBody>> for Stack<G>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    G: Stages,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type InnerRequest = Request<ReqBody>;
    type Response = Response<ResponseBody<ResBody, G::Guard>>;
    type Error = S::Error;

    fn handle(
        self: Arc<Self>,
        inner: S,
        request: Request<ReqBody>,
    ) -> impl Future<Output = Result<Self::Response, S::Error>> + Send + 'static {
        serve(self, inner, request)
    }
}

/// One request through every stage, the service under the time limit, and the permits into
/// the response body: the one place where stages become HTTP behaviour.
///
/// The stages are asked before any future is made: when each can answer at once (the
/// common case), the request is admitted or refused right here, so the future only runs the
/// call. Only an admission that waits (a queue, a network round
/// trip) gets a future of its own, boxed, which finishes it and then runs the call alike.
fn serve<S, G, ReqBody, ResBody>(
    shared: Arc<Stack<G>>,
    mut inner: S,
    request: Request<ReqBody>,
) -> impl Future<Output = Result<Response<ResponseBody<ResBody, G::Guard>>, S::Error>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    G: Stages,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes>,
{
    let (parts, body) = request.into_parts();
    if shared.excludes(parts.uri.path()) {
        let call = inner.call(Request::from_parts(parts, body));
        return Serve::Pass { call };
    }
    // The permits are written in place, each into its own field, and move only once: into
    // the call's future.
    let mut held = G::Held::default();
    match shared.stages.admit_now(&parts, &mut held) {
        Ok(()) => Serve::Run {
            run: admitted(shared, inner, Request::from_parts(parts, body), held),
        },
        Err(Halt::Refused(refused)) => Serve::Ready {
            answer: Some(made(refused)),
        },
        Err(Halt::Pending(pending)) => Serve::Wait {
            wait: Box::pin(async move {
                if let Err(refused) = shared.stages.resume(pending, &parts, &mut held).await {
                    return Ok(made(refused));
                }
                admitted(shared, inner, Request::from_parts(parts, body), held).await
            }),
        },
    }
}

/// The service's answer to an admitted request, under the timeout unless its path is
/// excluded, with the permits in `held` going into its body, or back at once.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (as passed and as bound), in every request's box"
)]
fn admitted<S, G, ReqBody, ResBody>(
    shared: Arc<Stack<G>>,
    mut inner: S,
    request: Request<ReqBody>,
    held: G::Held,
) -> impl Future<Output = Result<Response<ResponseBody<ResBody, G::Guard>>, S::Error>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    G: Stages,
    ResBody: Body<Data = Bytes>,
{
    async move {
        let head_request = request.method() == Method::HEAD;
        let timeout = shared.timeout_for(request.uri().path());
        // Made in place, the service's future stays where it is: the timeout's layers around
        // it move a pointer rather than the whole future, each time one wraps another.
        let call = std::pin::pin!(inner.call(request));
        match shared.run_with(timeout, call).await {
            Ok(Ok(mut response)) => {
                shared.stages.annotate(&held, response.headers_mut());
                let idle = shared.body_idle_timeout;
                Ok(guarded(response, head_request, idle, |head| {
                    shared.stages.guard(held, head)
                }))
            }
            Ok(Err(error)) => {
                G::fail(held);
                Err(error)
            }
            Err(timed_out) => {
                // Made in memory: judged (a failure, by default) and released at once.
                let (head, bytes) = timed_out.into_parts();
                shared.stages.guard(held, &head).finish(BodyEnd::Complete);
                Ok(made(Response::from_parts(head, bytes)))
            }
        }
    }
}

pin_project! {
    /// The future of [`serve`]: an answer known at once, the service's own future for an
    /// excluded path, the call of an admitted request, or an admission still waiting.
    #[project = ServeProj]
    enum Serve<T, Pass, Run, Wait> {
        Ready { answer: Option<T> },
        Pass { #[pin] call: Pass },
        Run { #[pin] run: Run },
        Wait { wait: Pin<Box<Wait>> },
    }
}

impl<Pass, Run, Wait, B, G, E> Future for Serve<Response<ResponseBody<B, G>>, Pass, Run, Wait>
where
    Pass: Future<Output = Result<Response<B>, E>>,
    Run: Future<Output = Result<Response<ResponseBody<B, G>>, E>>,
    Wait: Future<Output = Result<Response<ResponseBody<B, G>>, E>>,
    G: Guard,
{
    type Output = Result<Response<ResponseBody<B, G>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ServeProj::Ready { answer } => Poll::Ready(Ok(answer
                .take()
                .expect("a response future polled after its end"))),
            ServeProj::Pass { call } => call.poll(cx).map(|answer| answer.map(passthrough)),
            ServeProj::Run { run } => run.poll(cx),
            ServeProj::Wait { wait } => wait.as_mut().poll(cx),
        }
    }
}
