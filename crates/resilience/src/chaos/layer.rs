//! Tower middleware: [`ChaosLayer`], [`ChaosService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Chaos;
use crate::Error;

/// Applies a [`Chaos`] to a tower service: a share of requests is delayed, preceded by the
/// behaviour hook, or answered with an injected fault or response instead of reaching the
/// inner service.
///
/// Clones of the layer, and every service it makes, share the one instance they were given
/// (its switch, generator and counters).
///
/// ```
/// use resilience::chaos::{Chaos, ChaosLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let chaos = Chaos::builder("search").outcome(1.0, || "injected").build()?;
/// let service = ServiceBuilder::new()
///     .layer(ChaosLayer::new(chaos.clone()))
///     .service(service_fn(|_: ()| async { Ok::<_, std::io::Error>("real") }));
/// assert_eq!(service.clone().oneshot(()).await?, "injected");
/// chaos.set_enabled(false);
/// assert_eq!(service.oneshot(()).await?, "real");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ChaosLayer<T, E> {
    chaos: Chaos<T, E>,
}

impl<T, E> ChaosLayer<T, E> {
    /// A layer injecting `chaos` into every request.
    pub fn new(chaos: Chaos<T, E>) -> Self {
        Self { chaos }
    }
}

impl<T, E> Clone for ChaosLayer<T, E> {
    fn clone(&self) -> Self {
        Self {
            chaos: self.chaos.clone(),
        }
    }
}

impl<S, T, E> Layer<S> for ChaosLayer<T, E> {
    type Service = ChaosService<S, T, E>;

    fn layer(&self, inner: S) -> Self::Service {
        ChaosService {
            inner,
            chaos: self.chaos.clone(),
        }
    }
}

/// A tower service with chaos injected; made by [`ChaosLayer`].
///
/// Readiness is the inner service's. A request that gets no injection goes straight to the
/// inner service, with no allocation; one that does is run in a boxed future (it may wait,
/// and the inner call must happen after the delay). Injected faults and the inner service's
/// errors both come back as [`Error::Inner`].
#[derive(Debug)]
pub struct ChaosService<S, T, E> {
    inner: S,
    chaos: Chaos<T, E>,
}

impl<S, T, E> ChaosService<S, T, E> {
    crate::service_accessors!(inner: S; /** The chaos applied. */ chaos: Chaos<T, E>);
}

impl<S: Clone, T, E> Clone for ChaosService<S, T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            chaos: self.chaos.clone(),
        }
    }
}

/// A run with injections, boxed: it may wait, and calls the inner service after the delay.
type Injected<T, E> = Pin<Box<dyn Future<Output = Result<T, Error<E>>> + Send>>;

pin_project! {
    /// The future of a [`ChaosService`] call: the inner future as is when nothing is
    /// injected, else a boxed run with the injections.
    pub struct ResponseFuture<F, T, E> {
        #[pin]
        direct: Option<F>,
        injected: Option<Injected<T, E>>,
    }
}

impl<F, T, E> std::fmt::Debug for ResponseFuture<F, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("injected", &self.injected.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(injected) = this.injected {
            return injected.as_mut().poll(cx);
        }
        match this.direct.as_pin_mut() {
            Some(future) => future.poll(cx).map_err(Error::Inner),
            None => panic!("ResponseFuture polled after completion"),
        }
    }
}

impl<S, T, E, Request> Service<Request> for ChaosService<S, T, E>
where
    S: Service<Request, Response = T, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Request: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Response = T;
    type Error = Error<E>;
    type Future = ResponseFuture<S::Future, T, E>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Request) -> Self::Future {
        let injections = self.chaos.roll();
        if injections.is_none() {
            return ResponseFuture {
                direct: Some(self.inner.call(request)),
                injected: None,
            };
        }
        // The service made ready goes with this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let chaos = self.chaos.clone();
        ResponseFuture {
            direct: None,
            injected: Some(Box::pin(async move {
                chaos.run(injections, move || ready.call(request)).await
            })),
        }
    }
}
