//! Tower middleware: [`AdaptiveLayer`], [`AdaptiveService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{AdaptiveLimiter, Permit};
use crate::classify::{Classify, EveryError};
use crate::{Error, Rejection};

/// Applies an [`AdaptiveLimiter`] to a tower service.
///
/// Admission is decided in `call` without waiting, as Netflix's server-side limiters do: at
/// the limit the request fails at once with a
/// [`ConcurrencyLimit`](crate::RejectionReason::ConcurrencyLimit) rejection and never reaches
/// the inner service. Each response's latency and outcome (judged by the classifier, every
/// error a failure by default) feed the algorithm; a dropped response future counts as
/// ignored and frees its slot.
///
/// Clones of the layer, and every service it makes, share the one limiter they were given.
///
/// ```
/// use resilience::adaptive::{AdaptiveLayer, AdaptiveLimiter};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = AdaptiveLimiter::builder("search").build()?;
/// let service = ServiceBuilder::new()
///     .layer(AdaptiveLayer::new(limiter.clone()))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(service.oneshot(41).await?, 42);
/// assert_eq!(limiter.metrics().success_count, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AdaptiveLayer<C = EveryError> {
    limiter: AdaptiveLimiter,
    classifier: Arc<C>,
}

impl AdaptiveLayer {
    /// A layer counting every inner error as a failure.
    pub fn new(limiter: AdaptiveLimiter) -> Self {
        Self {
            limiter,
            classifier: Arc::new(EveryError),
        }
    }
}

impl<C> AdaptiveLayer<C> {
    /// Judges responses and errors with `classifier` instead.
    pub fn classifier<C2>(self, classifier: C2) -> AdaptiveLayer<C2> {
        AdaptiveLayer {
            limiter: self.limiter,
            classifier: Arc::new(classifier),
        }
    }
}

impl<S, C> Layer<S> for AdaptiveLayer<C> {
    type Service = AdaptiveService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveService {
            inner,
            limiter: self.limiter.clone(),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

/// A tower service guarded by an [`AdaptiveLimiter`]; made by [`AdaptiveLayer`].
#[derive(Debug, Clone)]
pub struct AdaptiveService<S, C = EveryError> {
    inner: S,
    limiter: AdaptiveLimiter,
    classifier: Arc<C>,
}

impl<S, C> AdaptiveService<S, C> {
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

    /// The limiter guarding it.
    pub fn limiter(&self) -> &AdaptiveLimiter {
        &self.limiter
    }
}

impl<S, C, Request> Service<Request> for AdaptiveService<S, C>
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
        let classifier = Arc::clone(&self.classifier);
        match self.limiter.try_acquire() {
            Ok(permit) => ResponseFuture {
                inner: Some(self.inner.call(request)),
                permit: Some(permit),
                rejection: None,
                limiter: self.limiter.clone(),
                classifier,
            },
            Err(rejection) => ResponseFuture {
                inner: None,
                permit: None,
                rejection: Some(rejection),
                limiter: self.limiter.clone(),
                classifier,
            },
        }
    }
}

pin_project! {
    /// The future of an [`AdaptiveService`] call. Dropping it before completion frees its
    /// slot, with the outcome ignored.
    #[derive(Debug)]
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Option<F>,
        permit: Option<Permit>,
        rejection: Option<Rejection>,
        limiter: AdaptiveLimiter,
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
        let result = std::task::ready!(inner.poll(cx));
        let outcome = this
            .limiter
            .inner
            .classify(this.classifier.as_ref(), &result);
        if let Some(permit) = this.permit.take() {
            permit.record(outcome);
        }
        Poll::Ready(result.map_err(Error::Inner))
    }
}
