//! Tower middleware: [`CacheLayer`], [`CacheService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::handle::Lookup;
use super::Cache;
use crate::classify::{Classifier, Classify, EveryError};
use crate::Error;

/// Answers requests from a [`Cache`], keyed by a function of the request; responses must be
/// `Clone`.
///
/// Clones of the layer, and every service it makes, share the one cache they were given.
/// A hit never reaches the inner service (which `poll_ready` readied all the same).
///
/// ```
/// use resilience::cache::{Cache, CacheLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Cache::<u32, u32>::builder("squares").build()?;
/// let service = ServiceBuilder::new()
///     .layer(CacheLayer::new(cache.clone(), |n: &u32| *n))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * n) }));
/// assert_eq!(service.clone().oneshot(12).await?, 144);
/// assert_eq!(service.oneshot(12).await?, 144);
/// assert_eq!(cache.metrics().hits, 1);
/// # Ok(())
/// # }
/// ```
pub struct CacheLayer<K, V, F, C = EveryError> {
    cache: Cache<K, V>,
    key: Arc<F>,
    classifier: Arc<C>,
}

impl<K, V, F> CacheLayer<K, V, F> {
    /// A layer keying each request with `key`, storing every `Ok` response.
    pub fn new(cache: Cache<K, V>, key: F) -> Self {
        Self {
            cache,
            key: Arc::new(key),
            classifier: Arc::new(EveryError),
        }
    }
}

impl<K, V, F, C> CacheLayer<K, V, F, C> {
    /// Stores only what `classifier` counts as a success, and answers only what it counts as
    /// a failure with a stale entry (for example, responses with a 5xx status).
    pub fn classifier<E>(
        self,
        classifier: Classifier<V, E>,
    ) -> CacheLayer<K, V, F, Classifier<V, E>> {
        CacheLayer {
            cache: self.cache,
            key: self.key,
            classifier: Arc::new(classifier),
        }
    }
}

impl<K, V, F, C> Clone for CacheLayer<K, V, F, C> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            key: Arc::clone(&self.key),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<K, V, F, C> fmt::Debug for CacheLayer<K, V, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<S, K, V, F, C> Layer<S> for CacheLayer<K, V, F, C> {
    type Service = CacheService<S, K, V, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner,
            cache: self.cache.clone(),
            key: Arc::clone(&self.key),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

/// A tower service answering from a [`Cache`]; made by [`CacheLayer`].
///
/// The inner service's errors come back as [`Error::Inner`], unless a stale entry answers
/// for them.
pub struct CacheService<S, K, V, F, C = EveryError> {
    inner: S,
    cache: Cache<K, V>,
    key: Arc<F>,
    classifier: Arc<C>,
}

impl<S, K, V, F, C> CacheService<S, K, V, F, C> {
    crate::service_accessors!(inner: S; /** The cache answering. */ cache: Cache<K, V>);
}

impl<S: Clone, K, V, F, C> Clone for CacheService<S, K, V, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            key: Arc::clone(&self.key),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<S: fmt::Debug, K, V, F, C> fmt::Debug for CacheService<S, K, V, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<S, Req, K, V, F, C> Service<Req> for CacheService<S, K, V, F, C>
where
    S: Service<Req, Response = V>,
    K: Eq + Hash + Clone,
    V: Clone,
    F: Fn(&Req) -> K,
    C: Classify<V, S::Error>,
{
    type Response = V;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, K, V, C>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        let state = match self.cache.lookup(&key) {
            Lookup::Hit(value) => State::Hit { value: Some(value) },
            Lookup::Miss { stale } => State::Miss {
                future: self.inner.call(request),
                key,
                stale,
                cache: self.cache.clone(),
                classifier: Arc::clone(&self.classifier),
            },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The future of a [`CacheService`] call: ready at once on a hit.
    pub struct ResponseFuture<Fut, K, V, C> {
        #[pin]
        state: State<Fut, K, V, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, K, V, C> {
        Hit { value: Option<V> },
        Miss {
            #[pin]
            future: Fut,
            key: K,
            stale: Option<(V, u64)>,
            cache: Cache<K, V>,
            classifier: Arc<C>,
        },
    }
}

impl<Fut, K, V, E, C> Future for ResponseFuture<Fut, K, V, C>
where
    Fut: Future<Output = Result<V, E>>,
    K: Eq + Hash + Clone,
    V: Clone,
    C: Classify<V, E>,
{
    type Output = Result<V, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Hit { value } => Poll::Ready(Ok(value
                .take()
                .expect("cache future polled after completion"))),
            StateProj::Miss {
                future,
                key,
                stale,
                cache,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                Poll::Ready(cache.complete(&**classifier, key, stale.take(), result))
            }
        }
    }
}

impl<Fut, K, V, C> fmt::Debug for ResponseFuture<Fut, K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
