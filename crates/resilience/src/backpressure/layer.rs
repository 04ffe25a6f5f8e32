//! Tower middleware: a [`Backpressure`] controller in front of a service, through the
//! generic [`StageLayer`].

use super::Backpressure;
use crate::classify::EveryError;
use crate::stage::{self, StageLayer, StageService};

/// Applies a [`Backpressure`] controller to a tower service: each request is one item of
/// pending work, from admission until its response is ready.
///
/// `poll_ready` waits in line while backpressure is on, up to the controller's
/// `wait_timeout`; a refusal reaches the caller as
/// [`Error::Rejected`](crate::Error::Rejected) without calling the inner service. Clones of
/// the layer share the one controller they were given: cloning never creates a new budget.
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
pub type BackpressureLayer<C = EveryError> = StageLayer<Backpressure, C>;

/// A tower service behind a [`Backpressure`] controller; made by [`BackpressureLayer`].
pub type BackpressureService<S, C = EveryError> = StageService<Backpressure, S, C>;

/// The future of a [`BackpressureService`] call: it holds the admission until the response
/// is ready or the future is dropped.
pub type ResponseFuture<F, C = EveryError> = stage::ResponseFuture<F, Backpressure, C>;
