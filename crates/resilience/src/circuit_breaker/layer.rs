//! Tower middleware: [`CircuitBreakerLayer`], [`CircuitBreakerService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use super::{CircuitBreaker, Permit};
use crate::classify::{Classify, EveryError};
use crate::{Error, Rejection};

/// Applies a [`CircuitBreaker`] to a tower service.
///
/// Clones of the layer, and every service it makes, share the one breaker they were given:
/// cloning never creates a new circuit (axum clones services per connection).
///
/// ```
/// use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder("inventory").build()?;
/// let service = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = EveryError> {
    breaker: CircuitBreaker,
    classifier: Arc<C>,
}

impl CircuitBreakerLayer {
    /// A layer counting every inner error as a failure.
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self {
            breaker,
            classifier: Arc::new(EveryError),
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Judges responses and errors with `classifier` instead (for example, 5xx responses as
    /// failures).
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier: Arc::new(classifier),
        }
    }
}

impl<S, C> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

/// A tower service guarded by a [`CircuitBreaker`]; made by [`CircuitBreakerLayer`].
///
/// Rejected requests never reach the inner service and fail with [`Error::Rejected`]; the
/// inner service's errors come back as [`Error::Inner`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S, C = EveryError> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: Arc<C>,
}

impl<S, C> CircuitBreakerService<S, C> {
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

    /// The breaker guarding it.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<S, C, Request> Service<Request> for CircuitBreakerService<S, C>
where
    S: Service<Request>,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => {
                let limit = self.breaker.inner.call_timeout();
                ResponseFuture {
                    inner: Some(self.inner.call(request)),
                    sleep: limit.map(tokio::time::sleep),
                    limit,
                    permit: Some(permit),
                    rejection: None,
                    breaker: self.breaker.clone(),
                    classifier: Arc::clone(&self.classifier),
                }
            }
            Err(rejection) => ResponseFuture {
                inner: None,
                sleep: None,
                limit: None,
                permit: None,
                rejection: Some(rejection),
                breaker: self.breaker.clone(),
                classifier: Arc::clone(&self.classifier),
            },
        }
    }
}

pin_project! {
    /// The future of a [`CircuitBreakerService`] call. Dropping it before completion
    /// releases its permit (a half-open probe slot goes back).
    #[derive(Debug)]
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Option<F>,
        #[pin]
        sleep: Option<Sleep>,
        limit: Option<Duration>,
        permit: Option<Permit>,
        rejection: Option<Rejection>,
        breaker: CircuitBreaker,
        classifier: Arc<C>,
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(rejection) = this.rejection.take() {
            return Poll::Ready(Err(Error::Rejected(rejection)));
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        if let Poll::Ready(result) = inner.poll(cx) {
            let outcome = this
                .breaker
                .inner
                .classify(this.classifier.as_ref(), &result);
            if let Some(permit) = this.permit.take() {
                permit.record(outcome);
            }
            return Poll::Ready(result.map_err(Error::Inner));
        }
        if let (Some(sleep), Some(limit)) = (this.sleep.as_pin_mut(), *this.limit) {
            ready!(sleep.poll(cx));
            if let Some(permit) = this.permit.take() {
                permit.failure();
            }
            return Poll::Ready(Err(Error::Timeout {
                elapsed: limit,
                limit,
            }));
        }
        Poll::Pending
    }
}
