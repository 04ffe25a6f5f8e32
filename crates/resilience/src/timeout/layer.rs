//! Tower middleware: [`TimeoutLayer`], [`TimeoutService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::deadline::{enter_scope, Guarded, Named};
use super::handle::Start;
use super::Timeout;
use crate::{Error, Rejection};

/// Applies a [`Timeout`] to a tower service.
///
/// Clones of the layer, and every service it makes, share the one timeout they were given
/// (its limit, counters and listeners). Like [`Timeout::call`], each request is also bounded
/// by the [current deadline](super::Deadline::current) of the task that calls the service.
///
/// ```
/// use resilience::timeout::{Timeout, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let timeout = Timeout::builder("inventory").limit(Duration::from_secs(1)).build()?;
/// let service = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(timeout))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Timeout,
}

impl TimeoutLayer {
    /// A layer applying `timeout` to every request.
    pub fn new(timeout: Timeout) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeout: self.timeout.clone(),
        }
    }
}

/// A tower service whose requests are bounded by a [`Timeout`]; made by [`TimeoutLayer`].
///
/// A request still running at the limit is cancelled (its future dropped) and fails with
/// [`Error::Timeout`]; the inner service's errors come back as [`Error::Inner`]; a request
/// made after the current deadline has passed never reaches the inner service and fails with
/// [`Error::Rejected`]. Readiness is not time-limited.
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Timeout,
}

impl<S> TimeoutService<S> {
    crate::service_accessors!(inner: S; /** The timeout applied. */ timeout: Timeout);
}

impl<S, Request> Service<Request> for TimeoutService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Request) -> Self::Future {
        let timeout = self.timeout.clone();
        match timeout.inner.start() {
            Ok(start) => {
                // The request's deadline is current while the inner service starts its work,
                // not only while its future is polled.
                let at = timeout.inner.on_timeline(start.end);
                let future = enter_scope(at, &timeout.inner.name, || self.inner.call(request));
                ResponseFuture {
                    future: Some(Guarded::new(future)),
                    rejection: None,
                    start,
                    timeout,
                }
            }
            Err(rejection) => ResponseFuture {
                future: None,
                rejection: Some(rejection),
                start: Start { started: 0, end: 0 },
                timeout,
            },
        }
    }
}

pin_project! {
    /// The future of a [`TimeoutService`] call: the inner future and its timer, pinned in
    /// place (no allocation). Dropping it drops the inner future.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        future: Option<Guarded<F>>,
        rejection: Option<Rejection>,
        start: Start,
        timeout: Timeout,
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
        let Some(future) = this.future.as_pin_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        // The inner future is polled before the timer, so a response ready exactly at the
        // limit is a success, as in `Timeout::call`.
        let inner = &this.timeout.inner;
        let scope = Named {
            at: inner.on_timeline(this.start.end),
            name: &inner.name,
        };
        let until = inner.at(this.start.end);
        Poll::Ready(
            match std::task::ready!(future.poll_until(scope, until, cx)) {
                Some(result) => {
                    inner.finished(*this.start, result.is_ok());
                    result.map_err(Error::Inner)
                }
                None => Err(inner.timed_out(*this.start)),
            },
        )
    }
}
