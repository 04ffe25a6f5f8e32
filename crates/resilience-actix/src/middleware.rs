//! [`Resilience`]: the stages of `resilience-http` as actix-web middleware.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::Error;
use http::{Method, Response};
use resilience_http::{BodyEnd, Guard, Stack, Stages};

use crate::body::HeldBody;
use crate::convert;
use crate::TimeoutError;

/// Stages in front of an actix-web app, scope or resource, answering as `resilience-http`'s
/// tower layers do.
///
/// Made from what configures those layers: a
/// [`CompositeLayer`](resilience_http::CompositeLayer) (rate limit → load shed → bulkhead →
/// circuit breaker → timeout, or any [`RequestStage`](resilience_http::RequestStage) of
/// yours), a single [`HttpStageLayer`](resilience_http::HttpStageLayer), or an
/// [`HttpTimeoutLayer`](resilience_http::HttpTimeoutLayer). Every decision is theirs; this
/// middleware only moves requests, responses and bodies between actix-web and
/// [`Stack`]:
///
/// * a request whose path is excluded goes to the service untouched;
/// * a refused request never reaches the service: it gets `resilience-http`'s answer (429
///   with `Retry-After` and `RateLimit-*`, 503 with `Retry-After`, a problem+json body);
/// * an admitted request runs under the timeout (408 by default, answered through a
///   [`TimeoutError`]), its response gets the
///   `RateLimit-*` headers, and its permits ride in the [`HeldBody`] until the last byte
///   has been sent, the body fails, the client disconnects or stops reading; 5xx responses
///   (and handler errors) count as failures and reach the client unchanged.
///
/// Clones share every stage, and so do the services actix-web makes from it on each worker:
/// one budget, one circuit, one bulkhead for the whole server.
///
/// ```
/// use actix_web::{web, App};
/// use resilience::{Bulkhead, CircuitBreaker};
/// use resilience_actix::Resilience;
/// use resilience_http::{CompositeLayer, ExcludePaths};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let protection = Resilience::new(
///     CompositeLayer::new()
///         .bulkhead(Bulkhead::builder("api").max_concurrent(64).build()?)
///         .circuit_breaker(CircuitBreaker::builder("api").build()?)
///         .exclude(ExcludePaths::none().exact("/health")),
/// );
/// let app = App::new()
///     .wrap(protection)
///     .route("/", web::get().to(|| async { "hello" }));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub struct Resilience<G> {
    stack: Arc<Stack<G>>,
}

impl<G: Stages> Resilience<G> {
    /// Middleware running `layer`'s stages, timeout and exclusions: a
    /// [`CompositeLayer`](resilience_http::CompositeLayer), an
    /// [`HttpStageLayer`](resilience_http::HttpStageLayer) or an
    /// [`HttpTimeoutLayer`](resilience_http::HttpTimeoutLayer).
    pub fn new(layer: impl Into<Stack<G>>) -> Self {
        Self {
            stack: Arc::new(layer.into()),
        }
    }

    /// What the middleware runs.
    pub fn stack(&self) -> &Stack<G> {
        &self.stack
    }
}

impl<G> Clone for Resilience<G> {
    fn clone(&self) -> Self {
        Self {
            stack: Arc::clone(&self.stack),
        }
    }
}

impl<G: fmt::Debug> fmt::Debug for Resilience<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field("stack", &self.stack)
            .finish()
    }
}

/// The response of a [`ResilienceService`]: the service's body holding the permits, or a
/// response the middleware made (a refusal, a timeout).
pub type ResilienceResponse<B, G> = ServiceResponse<EitherBody<HeldBody<B, <G as Stages>::Guard>>>;

impl<S, B, G> Transform<S, ServiceRequest> for Resilience<G>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    G: Stages,
{
    type Response = ResilienceResponse<B, G>;
    type Error = Error;
    type Transform = ResilienceService<S, G>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ResilienceService {
            service: Rc::new(service),
            stack: Arc::clone(&self.stack),
        }))
    }
}

/// The service a [`Resilience`] middleware wraps around the next one.
pub struct ResilienceService<S, G> {
    service: Rc<S>,
    stack: Arc<Stack<G>>,
}

impl<S, G: fmt::Debug> fmt::Debug for ResilienceService<S, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceService")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

impl<S, B, G> Service<ServiceRequest> for ResilienceService<S, G>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    G: Stages,
{
    type Response = ResilienceResponse<B, G>;
    type Error = Error;
    /// Boxed, as actix-web's own middleware futures are: admission waits on futures whose
    /// types cannot be named.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let stack = Arc::clone(&self.stack);
        Box::pin(async move { serve(&stack, &*service, request).await })
    }
}

/// One request through the stack: the only place where this crate meets the stages.
async fn serve<S, B, G>(
    stack: &Stack<G>,
    service: &S,
    request: ServiceRequest,
) -> Result<ResilienceResponse<B, G>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
    G: Stages,
{
    if stack.excludes(request.path()) {
        let response = service.call(request).await?;
        return Ok(response.map_body(|_, body| EitherBody::left(HeldBody::passthrough(body))));
    }
    let parts = convert::request_parts(&request);
    let held = match stack.stages().admit(&parts).await {
        Ok(held) => held,
        Err(refused) => {
            return Ok(request
                .into_response(convert::response_to_actix(refused))
                .map_into_right_body());
        }
    };
    let head_request = parts.method == Method::HEAD;
    match stack.run(parts.uri.path(), service.call(request)).await {
        Ok(Ok(mut response)) => {
            let mut headers = http::HeaderMap::new();
            stack.stages().annotate(&held, &mut headers);
            convert::set_headers(response.headers_mut(), headers);
            let head = convert::response_head(response.response());
            let guard = stack.stages().guard(held, &head);
            let idle = stack.body_idle_timeout();
            Ok(response.map_body(|_, body| {
                EitherBody::left(HeldBody::guarded(body, guard, idle, head_request))
            }))
        }
        Ok(Err(error)) => {
            G::fail(held);
            Err(error)
        }
        Err(timed_out) => {
            // Judged on its head (a failure, by default) and released at once; the client
            // gets the same response as an error (see `TimeoutError` for why).
            let (head, bytes) = timed_out.into_parts();
            stack.stages().guard(held, &head).finish(BodyEnd::Complete);
            Err(TimeoutError::new(Response::from_parts(head, bytes)).into())
        }
    }
}
