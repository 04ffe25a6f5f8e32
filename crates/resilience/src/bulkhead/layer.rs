//! Tower middleware: [`BulkheadLayer`], [`BulkheadService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Bulkhead, Permit};
use crate::classify::Outcome;
use crate::{Error, Rejection};

/// Applies a [`Bulkhead`] to a tower service.
///
/// Clones of the layer, and every service it makes, share the one bulkhead they were given:
/// cloning never creates new slots (axum clones services per connection).
///
/// ```
/// use resilience::bulkhead::{Bulkhead, BulkheadLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder("thumbnails").max_concurrent(8).build()?;
/// let service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer admitting requests through `bulkhead`.
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(inner, self.bulkhead.clone())
    }
}

type Waiting = Pin<Box<dyn Future<Output = Result<Permit, Rejection>> + Send + Sync>>;

/// A tower service guarded by a [`Bulkhead`]; made by [`BulkheadLayer`].
///
/// `poll_ready` takes the slot: at once when one is free, otherwise by waiting in the
/// bulkhead's queue (as tower's `ConcurrencyLimit` does). The slot then travels with the
/// request into the [`ResponseFuture`] and is given back when the response is ready or the
/// future is dropped. A rejection (queue full, wait timeout) does not fail `poll_ready`: the
/// service reports ready, and the next `call` returns [`Error::Rejected`] without reaching the
/// inner service. The inner service's errors come back as [`Error::Inner`].
///
/// A clone shares the bulkhead but not a slot already taken by the original.
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
    permit: Option<Permit>,
    rejection: Option<Rejection>,
    /// The wait in the queue, boxed: only a call that finds every slot taken pays for it.
    waiting: Option<Waiting>,
}

impl<S> BulkheadService<S> {
    /// Guards `inner` with `bulkhead`.
    pub fn new(inner: S, bulkhead: Bulkhead) -> Self {
        Self {
            inner,
            bulkhead,
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

    /// Unwraps the inner service; a slot taken by `poll_ready` is given back.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The bulkhead guarding it.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }
}

impl<S: Clone> Clone for BulkheadService<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.bulkhead.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for BulkheadService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead.name())
            .field("has_slot", &self.permit.is_some())
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl<S, Request> Service<Request> for BulkheadService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() && self.rejection.is_none() {
            if self.waiting.is_none() {
                match self.bulkhead.try_enter() {
                    Some(permit) => self.permit = Some(permit),
                    None => self.waiting = Some(Box::pin(self.bulkhead.clone().wait_owned())),
                }
            }
            if let Some(waiting) = &mut self.waiting {
                let admitted = match waiting.as_mut().poll(cx) {
                    Poll::Ready(admitted) => admitted,
                    Poll::Pending => return Poll::Pending,
                };
                self.waiting = None;
                match admitted {
                    Ok(permit) => self.permit = Some(permit),
                    Err(rejection) => self.rejection = Some(rejection),
                }
            }
        }
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
            .expect("BulkheadService::call without a slot: call poll_ready first");
        ResponseFuture {
            inner: Some(self.inner.call(request)),
            permit: Some(permit),
            rejection: None,
        }
    }
}

pin_project! {
    /// The future of a [`BulkheadService`] call: it holds the slot until the response is
    /// ready or the future is dropped.
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
        if let Some(permit) = this.permit.take() {
            permit.record(if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            });
        }
        Poll::Ready(result.map_err(Error::Inner))
    }
}
