//! Tower middleware: [`HedgeLayer`], [`HedgeService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::race::{Launch, Launched, Race};
use super::Hedge;
use crate::classify::{judge, Classifier, Classify, EveryError, Outcome};
use crate::{Error, PatternKind, Rejection, RejectionReason};

/// Makes the request of each attempt of a hedged tower call from the caller's request.
///
/// A tower service consumes its request, so every attempt needs its own. The policy is asked
/// for attempt 1 (the primary) when the call is made: if it answers `None`, the call is
/// refused at once with a [`NotCloneable`](RejectionReason::NotCloneable) rejection and never
/// sent, rather than silently sent unhedged. It is asked again for each extra attempt, with
/// the attempt number, so it can also direct an attempt elsewhere (another replica's
/// address); `None` then just means no more extra attempts.
///
/// [`CloneRequest`] clones requests that are `Clone`; a closure
/// `Fn(u32, &Req) -> Option<Req>` is a policy too.
pub trait HedgeRequest<Req> {
    /// The request for attempt `attempt` (1-based), or `None` if it cannot be made.
    fn clone_request(&self, attempt: u32, request: &Req) -> Option<Req>;
}

/// The default [`HedgeRequest`] policy: every attempt gets a clone of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneRequest;

impl<Req: Clone> HedgeRequest<Req> for CloneRequest {
    fn clone_request(&self, _attempt: u32, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

impl<Req, F> HedgeRequest<Req> for F
where
    F: Fn(u32, &Req) -> Option<Req>,
{
    fn clone_request(&self, attempt: u32, request: &Req) -> Option<Req> {
        self(attempt, request)
    }
}

/// Applies a [`Hedge`] to a tower service.
///
/// Clones of the layer, and every service it makes, share the one hedge they were given (its
/// counters, latency histogram, listeners and budget).
///
/// ```
/// use resilience::hedge::{Hedge, HedgeLayer};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hedge = Hedge::builder("search").delay(Duration::from_millis(20)).build()?;
/// let service = ServiceBuilder::new()
///     .layer(HedgeLayer::new(hedge))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct HedgeLayer<P = CloneRequest, C = EveryError> {
    hedge: Hedge,
    requests: Arc<P>,
    classifier: Arc<C>,
}

impl HedgeLayer {
    /// A layer cloning each request for its extra attempts and accepting every `Ok`.
    pub fn new(hedge: Hedge) -> Self {
        Self {
            hedge,
            requests: Arc::new(CloneRequest),
            classifier: Arc::new(EveryError),
        }
    }
}

impl<P, C> HedgeLayer<P, C> {
    /// Makes each attempt's request with `requests` instead, for example a closure that
    /// sends attempt 2 to another replica, or refuses requests with a streaming body.
    pub fn requests<P2>(self, requests: P2) -> HedgeLayer<P2, C> {
        HedgeLayer {
            hedge: self.hedge,
            requests: Arc::new(requests),
            classifier: self.classifier,
        }
    }

    /// Accepts only what `classifier` does not call a failure, for a service answering `T`
    /// or failing with `E` (for example, not a response with a 5xx status).
    pub fn classifier<T, E>(self, classifier: Classifier<T, E>) -> HedgeLayer<P, Classifier<T, E>> {
        HedgeLayer {
            hedge: self.hedge,
            requests: self.requests,
            classifier: Arc::new(classifier),
        }
    }
}

impl<P, C> Clone for HedgeLayer<P, C> {
    fn clone(&self) -> Self {
        Self {
            hedge: self.hedge.clone(),
            requests: Arc::clone(&self.requests),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<P, C> fmt::Debug for HedgeLayer<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("hedge", &self.hedge)
            .finish_non_exhaustive()
    }
}

impl<S, P, C> Layer<S> for HedgeLayer<P, C> {
    type Service = HedgeService<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        HedgeService {
            inner,
            hedge: self.hedge.clone(),
            requests: Arc::clone(&self.requests),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

/// A tower service whose calls are hedged by a [`Hedge`]; made by [`HedgeLayer`].
///
/// The primary attempt goes to the service that `poll_ready` readied; each extra attempt to a
/// clone of the service, readied first (while the attempts already running go on). The
/// inner service's errors come back as [`Error::Inner`]; a request the [`HedgeRequest`]
/// policy cannot copy fails with [`Error::Rejected`] without reaching the service.
pub struct HedgeService<S, P = CloneRequest, C = EveryError> {
    inner: S,
    hedge: Hedge,
    requests: Arc<P>,
    classifier: Arc<C>,
}

impl<S, P, C> HedgeService<S, P, C> {
    crate::service_accessors!(inner: S; /** The hedge applied. */ hedge: Hedge);
}

impl<S: Clone, P, C> Clone for HedgeService<S, P, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hedge: self.hedge.clone(),
            requests: Arc::clone(&self.requests),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<S: fmt::Debug, P, C> fmt::Debug for HedgeService<S, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeService")
            .field("inner", &self.inner)
            .field("hedge", &self.hedge)
            .finish_non_exhaustive()
    }
}

impl<S, Req, P, C> Service<Req> for HedgeService<S, P, C>
where
    S: Service<Req> + Clone,
    P: HedgeRequest<Req>,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S, Req, P, C>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Req) -> Self::Future {
        let state = match self.requests.clone_request(1, &request) {
            Some(first) => State::Racing {
                race: Race::new(
                    Some(self.inner.call(first)),
                    Replicas {
                        service: self.inner.clone(),
                        request,
                        requests: Arc::clone(&self.requests),
                        pending: None,
                    },
                ),
            },
            None => State::Refused {
                rejection: Some(Rejection::new(
                    PatternKind::Hedge,
                    Arc::clone(self.hedge.inner.name()),
                    RejectionReason::NotCloneable,
                    None,
                )),
            },
        };
        ResponseFuture {
            state,
            hedge: self.hedge.clone(),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

/// Starts extra attempts on a clone of the service, each with its own request.
struct Replicas<S, Req, P> {
    service: S,
    request: Req,
    requests: Arc<P>,
    /// The request of an attempt waiting for the service to be ready.
    pending: Option<Req>,
}

impl<S, Req, P> Launch for Replicas<S, Req, P>
where
    S: Service<Req>,
    P: HedgeRequest<Req>,
{
    type Output = Result<S::Response, S::Error>;
    type Future = S::Future;

    fn poll_launch(
        &mut self,
        attempt: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Launched<S::Future, Self::Output>> {
        if self.pending.is_none() {
            match self.requests.clone_request(attempt, &self.request) {
                Some(request) => self.pending = Some(request),
                None => return Poll::Ready(Launched::Unavailable),
            }
        }
        match self.service.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                self.pending = None;
                Poll::Ready(Launched::Failed(Err(error)))
            }
            Poll::Ready(Ok(())) => {
                let request = self.pending.take().expect("made above");
                Poll::Ready(Launched::Started(self.service.call(request)))
            }
        }
    }
}

type Output<S, Req> = Result<<S as Service<Req>>::Response, <S as Service<Req>>::Error>;

pin_project! {
    /// The future of a [`HedgeService`] call. Dropping it cancels every running attempt.
    pub struct ResponseFuture<S, Req, P, C>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future, Replicas<S, Req, P>, Output<S, Req>>,
        hedge: Hedge,
        classifier: Arc<C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, L, O> {
        Racing { #[pin] race: Race<L, F, O> },
        Refused { rejection: Option<Rejection> },
    }
}

impl<S, Req, P, C> Future for ResponseFuture<S, Req, P, C>
where
    S: Service<Req>,
    P: HedgeRequest<Req>,
    C: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, Error<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Refused { rejection } => {
                let rejection = rejection
                    .take()
                    .expect("hedge future polled after completion");
                Poll::Ready(Err(Error::Rejected(rejection)))
            }
            StateProj::Racing { race } => {
                let inner = &*this.hedge.inner;
                let classifier = &**this.classifier;
                let accept = |result: Output<S, Req>| {
                    let outcome = judge(classifier, &result, PatternKind::Hedge, inner.name());
                    (outcome != Outcome::Failure, result)
                };
                race.poll(cx, inner, accept).map_err(Error::Inner)
            }
        }
    }
}

impl<S, Req, P, C> fmt::Debug for ResponseFuture<S, Req, P, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("hedge", &self.hedge.name())
            .finish_non_exhaustive()
    }
}
