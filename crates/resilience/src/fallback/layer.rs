//! Tower middleware: [`FallbackLayer`], [`FallbackService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Fallback;
use crate::Error;

type Recovery<T, E> = Pin<Box<dyn Future<Output = Result<T, Error<E>>> + Send>>;

/// Applies a [`Fallback`] to a tower service whose responses are `T` and errors `E`.
///
/// Clones of the layer, and every service it makes, share the one fallback they were given
/// (its chain, counters and listeners).
///
/// ```
/// use resilience::fallback::{Fallback, FallbackLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fallback = Fallback::builder("quote").value("no quote today").build()?;
/// let service = ServiceBuilder::new()
///     .layer(FallbackLayer::new(fallback))
///     .service(service_fn(|_: ()| async { Err::<&str, _>(std::io::Error::other("down")) }));
/// assert_eq!(service.oneshot(()).await?, "no quote today");
/// # Ok(())
/// # }
/// ```
pub struct FallbackLayer<T, E> {
    fallback: Fallback<T, E>,
}

impl<T, E> FallbackLayer<T, E> {
    /// A layer answering the inner service's selected errors with `fallback`.
    pub fn new(fallback: Fallback<T, E>) -> Self {
        Self { fallback }
    }
}

impl<S, T, E> Layer<S> for FallbackLayer<T, E> {
    type Service = FallbackService<S, T, E>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService {
            inner,
            fallback: self.fallback.clone(),
        }
    }
}

/// A tower service whose selected errors are answered by a [`Fallback`]; made by
/// [`FallbackLayer`].
///
/// Errors that are not selected come back as [`Error::Inner`]; when every fallback fails,
/// [`Error::FallbackFailed`]. Readiness errors are returned as they are: there is no request
/// to answer yet.
pub struct FallbackService<S, T, E> {
    inner: S,
    fallback: Fallback<T, E>,
}

impl<S, T, E> FallbackService<S, T, E> {
    crate::service_accessors!(inner: S; /** The fallback applied. */ fallback: Fallback<T, E>);
}

impl<S, T, E, Request> Service<Request> for FallbackService<S, T, E>
where
    S: Service<Request, Response = T, Error = E>,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    type Response = T;
    type Error = Error<E>;
    type Future = ResponseFuture<S::Future, T, E>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture {
            primary: self.inner.call(request),
            recovery: None,
            fallback: self.fallback.clone(),
        }
    }
}

pin_project! {
    /// The future of a [`FallbackService`] call. The primary response future is pinned in
    /// place; only when a selected error calls for the fallback chain is that part boxed
    /// (the failure path, which may await an async fallback).
    pub struct ResponseFuture<F, T, E> {
        #[pin]
        primary: F,
        recovery: Option<Recovery<T, E>>,
        fallback: Fallback<T, E>,
    }
}

impl<F, T, E> Future for ResponseFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(recovery) = this.recovery {
            return recovery.as_mut().poll(cx);
        }
        let primary = match ready!(this.primary.poll(cx)) {
            Ok(value) => {
                this.fallback.inner.succeeded();
                return Poll::Ready(Ok(value));
            }
            Err(error) => Error::Inner(error),
        };
        if !this.fallback.inner.selects(&primary) {
            return Poll::Ready(Err(primary));
        }
        let fallback = this.fallback.clone();
        let recovery =
            this.recovery.insert(Box::pin(
                async move { fallback.inner.recover(primary).await },
            ));
        recovery.as_mut().poll(cx)
    }
}

impl<T, E> Clone for FallbackLayer<T, E> {
    fn clone(&self) -> Self {
        Self {
            fallback: self.fallback.clone(),
        }
    }
}

impl<S: Clone, T, E> Clone for FallbackService<S, T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<T, E> fmt::Debug for FallbackLayer<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl<S: fmt::Debug, T, E> fmt::Debug for FallbackService<S, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackService")
            .field("inner", &self.inner)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl<F, T, E> fmt::Debug for ResponseFuture<F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recovering", &self.recovery.is_some())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
