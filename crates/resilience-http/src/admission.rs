//! [`AdmissionLayer`]: one layer for every limiter that hands out slots: bulkhead,
//! backpressure, adaptive concurrency, load shedder.
//!
//! # What it does
//!
//! Before a request reaches the service, the layer asks its limiter for admission (the core's
//! [`Admission`] trait, which every slot-based limiter implements). Admitted, the request runs
//! and its permit rides in the [response body](crate::ResponseBody) until the last byte has
//! been sent, streaming included; then the permit is completed with the response's outcome
//! (see [`ResponseClassifier`]), which the adaptive limiter learns from and the bulkhead
//! counts. Refused, the client gets a 503 with `Retry-After` (see [`response`](crate::response))
//! and the service is never called. A client that goes away while its request waits in a
//! limiter's queue gives its place up; one that goes away while the body streams gives the
//! slot back at once.
//!
//! Every decision is the limiter's: this layer only moves requests and permits. Its clones
//! and the services it makes share the limiter they were given (axum clones services per
//! request), so there is one budget however many connections there are.
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router};
//! use resilience::bulkhead::Bulkhead;
//! use resilience_http::{AdmissionLayer, ExcludePaths};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bulkhead = Bulkhead::builder("api").max_concurrent(64).build()?;
//! let app: Router = Router::new()
//!     .route("/search", get(|| async { "results" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(AdmissionLayer::new(bulkhead).exclude(ExcludePaths::none().exact("/health")));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! The same layer takes a [`Backpressure`], an [`AdaptiveLimiter`], a
//! [`LoadShedder`](resilience::load_shed::LoadShedder) (admitting at `Normal`, or at a fixed
//! priority through `shedder.prioritized(..)`), or a [`PriorityHeader`] that reads each
//! request's priority from a header.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use resilience::adaptive::AdaptiveLimiter;
use resilience::admission::{Admission, AdmissionPermit};
use resilience::classify::Outcome;
use resilience::{Backpressure, Bulkhead, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BodyEnd, Guard, ResponseBody};
use crate::service::{guarded, made, passthrough, take_ready, ResponseFuture};
use crate::{ExcludePaths, PriorityHeader, Reply, ResponseClassifier};

/// How an [`AdmissionLayer`] admits one HTTP request.
///
/// Every core limiter implementing [`Admission`] is one (the request is not looked at);
/// [`PriorityHeader`] reads the request's priority for a load shedder.
pub trait RequestAdmission: Send + Sync + 'static {
    /// What an admitted request holds until its response body has been sent.
    type Permit: AdmissionPermit + 'static;

    /// Admits the request with this head, waiting as the limiter's policy allows, or refuses.
    fn admit_request(
        &self,
        request: &Parts,
    ) -> impl Future<Output = Result<Self::Permit, Rejection>> + Send;
}

impl<A> RequestAdmission for A
where
    A: Admission + 'static,
    A::Permit: 'static,
{
    type Permit = A::Permit;

    fn admit_request(
        &self,
        _request: &Parts,
    ) -> impl Future<Output = Result<Self::Permit, Rejection>> + Send {
        self.admit()
    }
}

/// A limiter's permit held by a response body; completed with the response's outcome when
/// the body ends.
pub struct Slot<P> {
    permit: P,
    head: Outcome,
}

impl<P> Slot<P> {
    pub(crate) fn new(permit: P, head: Outcome) -> Self {
        Self { permit, head }
    }
}

impl<P: AdmissionPermit + 'static> Guard for Slot<P> {
    fn finish(self, end: BodyEnd) {
        self.permit.complete(end.outcome(self.head));
    }
}

impl<P> fmt::Debug for Slot<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// A [`Bulkhead`] in front of an HTTP service.
pub type BulkheadLayer = AdmissionLayer<Bulkhead>;
/// A [`Backpressure`] controller in front of an HTTP service.
pub type BackpressureLayer = AdmissionLayer<Backpressure>;
/// An [`AdaptiveLimiter`] in front of an HTTP service.
pub type AdaptiveLayer = AdmissionLayer<AdaptiveLimiter>;
/// A load shedder reading each request's priority from a header.
pub type LoadShedLayer = AdmissionLayer<PriorityHeader>;

/// Admits HTTP requests through a limiter; see the [module docs](self).
///
/// Clones share the limiter. Refusals are answered with the layer's [`Reply`] (503 and the
/// pattern's message by default); [excluded](ExcludePaths) paths pass untouched.
#[derive(Debug, Clone)]
pub struct AdmissionLayer<A> {
    pub(crate) admission: A,
    pub(crate) reply: Reply,
    pub(crate) exclude: ExcludePaths,
    pub(crate) classifier: ResponseClassifier,
}

impl<A: RequestAdmission> AdmissionLayer<A> {
    /// A layer admitting requests through `admission`.
    pub fn new(admission: A) -> Self {
        Self {
            admission,
            reply: Reply::new(),
            exclude: ExcludePaths::none(),
            classifier: ResponseClassifier::server_errors(),
        }
    }
}

impl<A> AdmissionLayer<A> {
    /// Answers refusals as `reply` says.
    #[must_use]
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Lets requests for these paths through untouched.
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.exclude = exclude;
        self
    }

    /// Judges responses with `classifier` (the outcome completes each permit).
    #[must_use]
    pub fn classifier(mut self, classifier: ResponseClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The limiter.
    pub fn admission(&self) -> &A {
        &self.admission
    }
}

impl<A: RequestAdmission> From<A> for AdmissionLayer<A> {
    fn from(admission: A) -> Self {
        Self::new(admission)
    }
}

impl<S, A: Clone> Layer<S> for AdmissionLayer<A> {
    type Service = AdmissionService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            shared: Arc::new(self.clone()),
        }
    }
}

/// An HTTP service behind a limiter; made by [`AdmissionLayer`].
#[derive(Debug, Clone)]
pub struct AdmissionService<S, A> {
    inner: S,
    shared: Arc<AdmissionLayer<A>>,
}

impl<S, A> AdmissionService<S, A> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for AdmissionService<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    A: RequestAdmission,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody, Slot<A::Permit>>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            if shared.exclude.matches(request.uri().path()) {
                return inner.call(request).await.map(passthrough);
            }
            let (parts, body) = request.into_parts();
            let head_request = parts.method == Method::HEAD;
            let permit = match shared.admission.admit_request(&parts).await {
                Ok(permit) => permit,
                Err(rejection) => return Ok(made(shared.reply.reject(&rejection, None))),
            };
            match inner.call(Request::from_parts(parts, body)).await {
                Ok(response) => Ok(guarded(response, head_request, |head| {
                    Slot::new(permit, shared.classifier.classify(head))
                })),
                Err(error) => {
                    permit.complete(Outcome::Failure);
                    Err(error)
                }
            }
        })
    }
}
