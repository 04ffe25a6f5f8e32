//! Tower middleware: [`RateLimitLayer`], [`RateLimitService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::DirectRateLimiter;
use crate::{Error, Rejection};

/// Applies a [`DirectRateLimiter`] to a tower service: one budget for every request.
///
/// Clones of the layer, and every service it makes, share the one limiter they were given:
/// cloning never creates a new budget (axum clones services per connection). Per-client
/// limits keyed from HTTP requests live in `resilience-http`.
///
/// ```
/// use resilience::rate_limit::{DirectRateLimiter, RateLimitLayer};
/// use resilience::{Error, Rate};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = DirectRateLimiter::builder("upstream").rate(Rate::per_second(1)).build()?;
/// let service = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.clone().oneshot(21).await?, 42);
/// match service.oneshot(21).await {
///     Err(Error::Rejected(rejection)) => {
///         assert_eq!(rejection.retry_after(), Some(std::time::Duration::from_secs(1)));
///     }
///     other => panic!("expected a rejection, got {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: DirectRateLimiter,
}

impl RateLimitLayer {
    /// A layer spending `limiter`'s budget on every request.
    pub fn new(limiter: DirectRateLimiter) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// A tower service whose requests are rate limited; made by [`RateLimitLayer`].
///
/// The decision is taken when a request is made (`call`), never waiting: a request over the
/// rate never reaches the inner service and fails with [`Error::Rejected`], whose
/// `retry_after` says when the next one would fit. Readiness is the inner service's. The
/// inner service's errors come back as [`Error::Inner`].
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: DirectRateLimiter,
}

impl<S> RateLimitService<S> {
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

    /// The limiter applied.
    pub fn limiter(&self) -> &DirectRateLimiter {
        &self.limiter
    }
}

impl<S, Request> Service<Request> for RateLimitService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.limiter.try_acquire() {
            Ok(_) => ResponseFuture {
                inner: Some(self.inner.call(request)),
                rejection: None,
            },
            Err(rejection) => ResponseFuture {
                inner: None,
                rejection: Some(rejection),
            },
        }
    }
}

pin_project! {
    /// The future of a [`RateLimitService`] call: the inner future, or the rejection.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        rejection: Option<Rejection>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(rejection) = this.rejection.take() {
            return Poll::Ready(Err(Error::Rejected(rejection)));
        }
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx).map_err(Error::Inner),
            None => panic!("ResponseFuture polled after completion"),
        }
    }
}
