//! Tower middleware: a [`Bulkhead`] in front of a service, through the generic
//! [`StageLayer`].

use super::Bulkhead;
use crate::classify::EveryError;
use crate::stage::{self, StageLayer, StageService};

/// Applies a [`Bulkhead`] to a tower service.
///
/// `poll_ready` takes the slot: at once when one is free, otherwise by waiting in the
/// bulkhead's queue (as tower's `ConcurrencyLimit` does). The slot travels with the request
/// and is given back when the response is ready or its future is dropped; a refusal (queue
/// full, wait timeout) reaches the caller as [`Error::Rejected`](crate::Error::Rejected)
/// without calling the inner service. Clones of the layer share the one bulkhead they were
/// given: cloning never creates new slots.
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
pub type BulkheadLayer<C = EveryError> = StageLayer<Bulkhead, C>;

/// A tower service guarded by a [`Bulkhead`]; made by [`BulkheadLayer`].
pub type BulkheadService<S, C = EveryError> = StageService<Bulkhead, S, C>;

/// The future of a [`BulkheadService`] call: it holds the slot until the response is ready
/// or the future is dropped.
pub type ResponseFuture<F, C = EveryError> = stage::ResponseFuture<F, Bulkhead, C>;
