//! Tower middleware: [`LoadShedderLayer`], [`LoadShedderService`] and [`ResponseFuture`].

use tower_layer::Layer;
use tower_service::Service;

use super::{LoadShedder, Priority};
use crate::classify::EveryError;
use crate::stage;
use crate::Error;

/// How a [`LoadShedderService`] finds a request's priority: a fixed [`Priority`], or a
/// closure `Fn(&Request) -> Priority` (for example reading a header).
pub trait PriorityOf<Request> {
    /// The priority of `request`.
    fn priority_of(&self, request: &Request) -> Priority;
}

impl<Request> PriorityOf<Request> for Priority {
    fn priority_of(&self, _request: &Request) -> Priority {
        *self
    }
}

impl<Request, F> PriorityOf<Request> for F
where
    F: Fn(&Request) -> Priority,
{
    fn priority_of(&self, request: &Request) -> Priority {
        self(request)
    }
}

/// Applies a [`LoadShedder`] to a tower service.
///
/// Clones of the layer, and every service it makes, share the one shedder they were given:
/// cloning never creates new slots (axum clones services per connection).
///
/// Each request is decided in `call`, in arrival order: admitted, shed, or queued (the
/// response future then waits for its slot). The inner service's `call` runs when the request
/// arrives (tower's readiness contract requires it), but its future is polled only once the
/// request is admitted, and dropped unpolled if the request is shed. Services whose futures do their work when polled (the
/// usual kind) therefore do nothing for a shed request.
///
/// ```
/// use resilience::load_shed::{LoadShedder, LoadShedderLayer, Priority};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let shedder = LoadShedder::builder("api").max_requests(100).build()?;
/// let service = ServiceBuilder::new()
///     .layer(LoadShedderLayer::new(shedder).priority_fn(|path: &&'static str| {
///         if path.starts_with("/health") { Priority::Critical } else { Priority::Normal }
///     }))
///     .service(service_fn(|path: &'static str| async move { Ok::<_, std::io::Error>(path.len()) }));
/// assert_eq!(service.oneshot("/health").await?, 7);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LoadShedderLayer<P = Priority> {
    shedder: LoadShedder,
    priority: P,
}

impl LoadShedderLayer {
    /// A layer admitting every request at [`Priority::Normal`].
    pub fn new(shedder: LoadShedder) -> Self {
        Self {
            shedder,
            priority: Priority::Normal,
        }
    }
}

impl<P> LoadShedderLayer<P> {
    /// Admits every request at `priority`.
    pub fn priority(self, priority: Priority) -> LoadShedderLayer<Priority> {
        LoadShedderLayer {
            shedder: self.shedder,
            priority,
        }
    }

    /// Finds each request's priority with `priority_of`.
    pub fn priority_fn<F>(self, priority_of: F) -> LoadShedderLayer<F> {
        LoadShedderLayer {
            shedder: self.shedder,
            priority: priority_of,
        }
    }
}

impl<S, P: Clone> Layer<S> for LoadShedderLayer<P> {
    type Service = LoadShedderService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShedderService {
            inner,
            shedder: self.shedder.clone(),
            priority: self.priority.clone(),
        }
    }
}

/// A tower service guarded by a [`LoadShedder`]; made by [`LoadShedderLayer`].
///
/// Shed requests fail with [`Error::Rejected`]; the inner service's errors come back as
/// [`Error::Inner`].
#[derive(Debug, Clone)]
pub struct LoadShedderService<S, P = Priority> {
    inner: S,
    shedder: LoadShedder,
    priority: P,
}

impl<S, P> LoadShedderService<S, P> {
    crate::service_accessors!(inner: S; /** The shedder guarding it. */ shedder: LoadShedder);
}

impl<S, P, Request> Service<Request> for LoadShedderService<S, P>
where
    S: Service<Request>,
    P: PriorityOf<Request>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Request) -> Self::Future {
        let priority = self.priority.priority_of(&request);
        // Decided now, in call order, so requests are admitted in the order they arrived.
        let admit = self.shedder.admit_at(priority);
        stage::ResponseFuture::admitting(admit, self.inner.call(request))
    }
}

/// The future of a [`LoadShedderService`] call: admission first (possibly queued), then the
/// inner future. Dropping it releases its slot or its place in the queue.
pub type ResponseFuture<F> = stage::ResponseFuture<F, LoadShedder, EveryError>;
