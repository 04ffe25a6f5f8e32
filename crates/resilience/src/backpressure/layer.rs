//! Tower middleware: [`BackpressureLayer`], [`BackpressureService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use super::handle::Arrived;
use super::permit::WaitGuard;
use super::state::Patience;
use super::{Backpressure, Permit};
use crate::{Error, Rejection};

/// Applies a [`Backpressure`] controller to a tower service: each request is one item of
/// pending work, from admission until its response is ready.
///
/// Clones of the layer, and every service it makes, share the one controller they were
/// given: cloning never creates a new budget.
///
/// ```
/// use resilience::backpressure::{Backpressure, BackpressureLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backpressure = Backpressure::builder("ingest").build()?;
/// let service = ServiceBuilder::new()
///     .layer(BackpressureLayer::new(backpressure))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BackpressureLayer {
    controller: Backpressure,
}

impl BackpressureLayer {
    /// A layer admitting requests through `controller`.
    pub fn new(controller: Backpressure) -> Self {
        Self { controller }
    }
}

impl<S> Layer<S> for BackpressureLayer {
    type Service = BackpressureService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackpressureService::new(inner, self.controller.clone())
    }
}

/// A tower service behind a [`Backpressure`] controller; made by [`BackpressureLayer`].
///
/// `poll_ready` takes admission: at once while backpressure is off, otherwise by waiting in
/// the controller's queue for up to its `wait_timeout`. The permit then travels with the
/// request into the [`ResponseFuture`] and is released when the response is ready or the
/// future is dropped. A rejection does not fail `poll_ready`: the service reports ready, and
/// the next `call` returns [`Error::Rejected`] without reaching the inner service.
///
/// A clone shares the controller but not an admission already taken by the original.
pub struct BackpressureService<S> {
    inner: S,
    controller: Backpressure,
    permit: Option<Permit>,
    rejection: Option<Rejection>,
    /// The wait in the queue and its deadline; the timer is boxed, so only a request that
    /// must wait pays for it.
    waiting: Option<(WaitGuard, Pin<Box<Sleep>>)>,
}

impl<S> BackpressureService<S> {
    /// Puts `inner` behind `controller`.
    pub fn new(inner: S, controller: Backpressure) -> Self {
        Self {
            inner,
            controller,
            permit: None,
            rejection: None,
            waiting: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service; an admission taken by `poll_ready` is released.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The controller in front of it.
    pub fn controller(&self) -> &Backpressure {
        &self.controller
    }

    /// Takes admission, waiting as configured; `Pending` only while queued.
    fn poll_admission(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.permit.is_some() || self.rejection.is_some() {
            return Poll::Ready(());
        }
        if self.waiting.is_none() {
            let timeout = self.controller.wait_timeout();
            match self.controller.arrive(Patience::waiting_up_to(timeout)) {
                Ok(Arrived::Admitted(permit)) => self.permit = Some(permit),
                Ok(Arrived::Queued(guard)) => {
                    let deadline = tokio::time::sleep_until(Instant::now() + timeout);
                    self.waiting = Some((guard, Box::pin(deadline)));
                }
                Err(rejection) => self.rejection = Some(rejection),
            }
        }
        if let Some((guard, deadline)) = &mut self.waiting {
            let admitted = match guard.poll_granted(cx) {
                Poll::Ready(admitted) => admitted,
                Poll::Pending => {
                    std::task::ready!(deadline.as_mut().poll(cx));
                    let (guard, _) = self.waiting.take().expect("waiting was just matched");
                    guard.expire()
                }
            };
            self.waiting = None;
            match admitted {
                Ok(permit) => self.permit = Some(permit),
                Err(rejection) => self.rejection = Some(rejection),
            }
        }
        Poll::Ready(())
    }
}

impl<S: Clone> Clone for BackpressureService<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.controller.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for BackpressureService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackpressureService")
            .field("inner", &self.inner)
            .field("controller", &self.controller.name())
            .field("admitted", &self.permit.is_some())
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl<S, Request> Service<Request> for BackpressureService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_admission(cx));
        if self.rejection.is_some() {
            // Ready to hand the rejection to the next call; the inner service is not asked.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(rejection) = self.rejection.take() {
            return ResponseFuture {
                inner: None,
                permit: None,
                rejection: Some(rejection),
            };
        }
        let permit = self
            .permit
            .take()
            .expect("BackpressureService::call without admission: call poll_ready first");
        ResponseFuture {
            inner: Some(self.inner.call(request)),
            permit: Some(permit),
            rejection: None,
        }
    }
}

pin_project! {
    /// The future of a [`BackpressureService`] call: the request stays pending until the
    /// response is ready or the future is dropped.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<Permit>,
        rejection: Option<Rejection>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(rejection) = this.rejection.take() {
            return Poll::Ready(Err(Error::Rejected(rejection)));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        let result = std::task::ready!(inner.poll(cx));
        this.inner.set(None);
        *this.permit = None;
        Poll::Ready(result.map_err(Error::Inner))
    }
}
