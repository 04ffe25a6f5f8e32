//! Tower middleware: an [`AdaptiveLimiter`] in front of a service, through the generic
//! [`StageLayer`].

use super::AdaptiveLimiter;
use crate::classify::EveryError;
use crate::stage::{self, StageLayer, StageService};

/// Applies an [`AdaptiveLimiter`] to a tower service.
///
/// At the limit, `poll_ready` waits for a slot up to the limiter's `wait_timeout`; with none
/// (the default) the request fails at once with a
/// [`ConcurrencyLimit`](crate::RejectionReason::ConcurrencyLimit) rejection and never reaches
/// the inner service, as Netflix's server-side limiters do. Each response's latency and
/// outcome (judged by the classifier, every error a failure by default) feed the algorithm; a
/// dropped response future counts as ignored and frees its slot.
///
/// Clones of the layer, and every service it makes, share the one limiter they were given.
///
/// ```
/// use resilience::adaptive::{AdaptiveLayer, AdaptiveLimiter};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = AdaptiveLimiter::builder("search").build()?;
/// let service = ServiceBuilder::new()
///     .layer(AdaptiveLayer::new(limiter.clone()))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(service.oneshot(41).await?, 42);
/// assert_eq!(limiter.metrics().success_count, 1);
/// # Ok(())
/// # }
/// ```
pub type AdaptiveLayer<C = EveryError> = StageLayer<AdaptiveLimiter, C>;

/// A tower service behind an [`AdaptiveLimiter`]; made by [`AdaptiveLayer`].
pub type AdaptiveService<S, C = EveryError> = StageService<AdaptiveLimiter, S, C>;

/// The future of an [`AdaptiveService`] call: it holds the slot and learns the response's
/// latency and outcome.
pub type ResponseFuture<F, C = EveryError> = stage::ResponseFuture<F, AdaptiveLimiter, C>;
