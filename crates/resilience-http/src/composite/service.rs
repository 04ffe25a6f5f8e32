//! [`CompositeService`]: one request through every step, and what it holds afterwards.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{response, Method, Request, Response};
use http_body::Body;
use resilience::admission::AdmissionPermit;
use resilience::bulkhead;
use resilience::circuit_breaker::Permit as BreakerPermit;
use resilience::classify::Outcome;
use resilience::load_shed;
use resilience::rate_limit::{LocalRateLimiter, RateLimiter};
use tower_service::Service;

use super::CompositeLayer;
use crate::admission::{RequestAdmission, Slot};
use crate::body::{BodyEnd, Guard, ResponseBody};
use crate::service::{guarded, made, passthrough, take_ready, ResponseFuture};
use crate::{BulkheadLayer, CircuitBreakerLayer, ExcludePaths, LoadShedLayer, Probe};

/// What a request admitted by the composite holds until its response body has been sent:
/// the probe, the bulkhead slot and the load-shedder slot, given back in that order.
pub struct CompositeGuard {
    probe: Option<Probe>,
    bulkhead: Option<Slot<bulkhead::Permit>>,
    shed: Option<Slot<load_shed::Permit>>,
}

impl Guard for CompositeGuard {
    fn finish(self, end: BodyEnd) {
        if let Some(probe) = self.probe {
            probe.finish(end);
        }
        if let Some(slot) = self.bulkhead {
            slot.finish(end);
        }
        if let Some(slot) = self.shed {
            slot.finish(end);
        }
    }
}

impl fmt::Debug for CompositeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositeGuard")
            .field("probe", &self.probe)
            .field("bulkhead", &self.bulkhead.is_some())
            .field("shed", &self.shed.is_some())
            .finish()
    }
}

/// The permits of a request between admission and its response head.
struct Admitted<'a> {
    shed: Option<(&'a LoadShedLayer, load_shed::Permit)>,
    bulkhead: Option<(&'a BulkheadLayer, bulkhead::Permit)>,
    probe: Option<(&'a CircuitBreakerLayer, BreakerPermit)>,
}

impl Admitted<'_> {
    /// The guard for a response with this head; every permit judges it with its own
    /// step's classifier.
    fn guard(self, head: &response::Parts) -> CompositeGuard {
        CompositeGuard {
            probe: self.probe.map(|(layer, permit)| layer.probe(permit, head)),
            bulkhead: self
                .bulkhead
                .map(|(layer, permit)| Slot::new(permit, layer.classifier.classify(head))),
            shed: self
                .shed
                .map(|(layer, permit)| Slot::new(permit, layer.classifier.classify(head))),
        }
    }

    /// The service failed without a response.
    fn fail(self) {
        if let Some((_, permit)) = self.probe {
            permit.failure();
        }
        if let Some((_, permit)) = self.bulkhead {
            permit.complete(Outcome::Failure);
        }
        if let Some((_, permit)) = self.shed {
            permit.complete(Outcome::Failure);
        }
    }
}

/// An HTTP service behind the composite; made by [`CompositeLayer`].
#[derive(Debug, Clone)]
pub struct CompositeService<S, L = LocalRateLimiter> {
    inner: S,
    shared: Arc<CompositeLayer<L>>,
}

impl<S, L> CompositeService<S, L> {
    pub(super) fn new(inner: S, shared: Arc<CompositeLayer<L>>) -> Self {
        Self { inner, shared }
    }

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

impl<S, L, ReqBody, ResBody> Service<Request<ReqBody>> for CompositeService<S, L>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    L: RateLimiter + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody, CompositeGuard>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let inner = take_ready(&mut self.inner);
        Box::pin(async move { serve(&shared, inner, request).await })
    }
}

/// One request through every step.
async fn serve<S, L, ReqBody, ResBody>(
    layer: &CompositeLayer<L>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody, CompositeGuard>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    L: RateLimiter,
    ResBody: Body<Data = Bytes>,
{
    let path = request.uri().path();
    if layer.exclude.matches(path) {
        return inner.call(request).await.map(passthrough);
    }
    let applies = |exclude: &ExcludePaths| !exclude.matches(path);
    let rate_limit = layer.rate_limit.as_ref().filter(|l| applies(&l.exclude));
    let load_shed = layer.load_shed.as_ref().filter(|l| applies(&l.exclude));
    let bulkhead = layer.bulkhead.as_ref().filter(|l| applies(&l.exclude));
    let breaker = layer.breaker.as_ref().filter(|l| applies(&l.exclude));
    let timeout = layer.timeout.as_ref().filter(|l| applies(&l.exclude));
    let (parts, body) = request.into_parts();

    let decision = match rate_limit {
        Some(rate_limit) => match rate_limit.decide(&parts).await {
            Ok(decision) => Some((rate_limit, decision)),
            Err(limited) => return Ok(made(limited)),
        },
        None => None,
    };
    let result = 'steps: {
        let shed = match load_shed {
            Some(shed) => match shed.admission.admit_request(&parts).await {
                Ok(permit) => Some((shed, permit)),
                Err(rejection) => break 'steps Ok(made(shed.reply.reject(&rejection, None))),
            },
            None => None,
        };
        let bulkhead = match bulkhead {
            Some(bulkhead) => match bulkhead.admission.admit_request(&parts).await {
                Ok(permit) => Some((bulkhead, permit)),
                Err(rejection) => break 'steps Ok(made(bulkhead.reply.reject(&rejection, None))),
            },
            None => None,
        };
        let probe = match breaker {
            Some(breaker) => match breaker.breaker.try_acquire() {
                Ok(permit) => Some((breaker, permit)),
                Err(open) => break 'steps Ok(made(breaker.refuse(&open))),
            },
            None => None,
        };
        let admitted = Admitted {
            shed,
            bulkhead,
            probe,
        };
        let head_request = parts.method == Method::HEAD;
        let request = Request::from_parts(parts, body);
        let answer = match timeout {
            Some(timeout) => timeout.run(|| inner.call(request)).await,
            None => Ok(inner.call(request).await),
        };
        match answer {
            Ok(Ok(response)) => Ok(guarded(response, head_request, |head| admitted.guard(head))),
            Ok(Err(error)) => {
                admitted.fail();
                Err(error)
            }
            Err(timed_out) => {
                // Made in memory: judged (a failure, by default) and released at once.
                let (head, bytes) = timed_out.into_parts();
                admitted.guard(&head).finish(BodyEnd::Complete);
                Ok(made(Response::from_parts(head, bytes)))
            }
        }
    };
    match (result, decision) {
        (Ok(mut response), Some((rate_limit, decision))) => {
            rate_limit.annotate(&mut response, &decision);
            Ok(response)
        }
        (result, _) => result,
    }
}
