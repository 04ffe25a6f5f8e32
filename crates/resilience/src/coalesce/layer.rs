//! Tower middleware: [`CoalesceLayer`] and [`CoalesceService`].

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use super::Coalescer;
use crate::Error;

/// The future of a [`CoalesceService`] call. Boxed: it holds a coalesced call, whose state
/// (leader or follower) is decided only when it starts.
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, Error<E>>> + Send>>;

/// Coalesces concurrent requests with the same key into one call of the inner service; the
/// key comes from each request through a function.
///
/// The inner service's response and error must be `Clone` (wrap them in an `Arc` otherwise):
/// every coalesced request gets a clone. Clones of the layer, and every service it makes,
/// share the one coalescer they were given, so requests are coalesced across connections.
///
/// ```
/// use resilience::coalesce::{CoalesceLayer, Coalescer};
/// use std::sync::Arc;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let profiles = Coalescer::builder("profiles").build()?;
/// let service = ServiceBuilder::new()
///     .layer(CoalesceLayer::new(profiles, |user: &u64| *user))
///     .service(service_fn(|user: u64| async move {
///         Ok::<_, Arc<std::io::Error>>(format!("profile {user}"))
///     }));
/// assert_eq!(service.oneshot(7).await?, "profile 7");
/// # Ok(())
/// # }
/// ```
pub struct CoalesceLayer<K, T, E, F> {
    coalescer: Coalescer<K, T, E>,
    key: Arc<F>,
}

impl<K, T, E, F> CoalesceLayer<K, T, E, F> {
    /// A layer coalescing requests that `key` maps to the same key.
    pub fn new<Request>(coalescer: Coalescer<K, T, E>, key: F) -> Self
    where
        F: Fn(&Request) -> K,
    {
        Self {
            coalescer,
            key: Arc::new(key),
        }
    }
}

impl<K, T, E, F> Clone for CoalesceLayer<K, T, E, F> {
    fn clone(&self) -> Self {
        Self {
            coalescer: self.coalescer.clone(),
            key: Arc::clone(&self.key),
        }
    }
}

impl<K, T, E, F> fmt::Debug for CoalesceLayer<K, T, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceLayer")
            .field("coalescer", &self.coalescer)
            .finish_non_exhaustive()
    }
}

impl<S, K, T, E, F> Layer<S> for CoalesceLayer<K, T, E, F> {
    type Service = CoalesceService<S, K, T, E, F>;

    fn layer(&self, inner: S) -> Self::Service {
        CoalesceService {
            inner,
            coalescer: self.coalescer.clone(),
            key: Arc::clone(&self.key),
        }
    }
}

/// A tower service whose concurrent requests with equal keys share one call of the inner
/// service; made by [`CoalesceLayer`].
///
/// Readiness is the inner service's. A request that joins a call in flight never reaches the
/// inner service (the service made ready for it is dropped unused). The inner service's
/// errors come back as [`Error::Inner`]; the coalescer's refusals as [`Error::Rejected`].
pub struct CoalesceService<S, K, T, E, F> {
    inner: S,
    coalescer: Coalescer<K, T, E>,
    key: Arc<F>,
}

impl<S, K, T, E, F> CoalesceService<S, K, T, E, F> {
    crate::service_accessors!(inner: S; /** The coalescer applied. */ coalescer: Coalescer<K, T, E>);
}

impl<S: Clone, K, T, E, F> Clone for CoalesceService<S, K, T, E, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            coalescer: self.coalescer.clone(),
            key: Arc::clone(&self.key),
        }
    }
}

impl<S: fmt::Debug, K, T, E, F> fmt::Debug for CoalesceService<S, K, T, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceService")
            .field("inner", &self.inner)
            .field("coalescer", &self.coalescer)
            .finish_non_exhaustive()
    }
}

impl<S, K, T, E, F, Request> Service<Request> for CoalesceService<S, K, T, E, F>
where
    S: Service<Request, Response = T, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Request: Send + 'static,
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    F: Fn(&Request) -> K,
{
    type Response = T;
    type Error = Error<E>;
    type Future = ResponseFuture<T, E>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Request) -> Self::Future {
        let key = (self.key)(&request);
        // The service that was made ready goes with this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let coalescer = self.coalescer.clone();
        Box::pin(async move { coalescer.call(key, move || ready.call(request)).await })
    }
}
