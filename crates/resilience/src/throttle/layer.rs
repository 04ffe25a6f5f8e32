//! Tower middleware: an [`AdaptiveThrottle`] in front of a service, through the generic
//! [`StageLayer`].

use super::AdaptiveThrottle;
use crate::classify::EveryError;
use crate::stage::{self, StageLayer, StageService};

/// Applies an [`AdaptiveThrottle`] to a tower service (a client).
///
/// A throttled request fails at once with a
/// [`Throttled`](crate::RejectionReason::Throttled) rejection and never reaches the inner
/// service. Each response is judged by the classifier (every error is a request the backend
/// did not accept, by default); a dropped response future counts as accepted.
///
/// Clones of the layer, and every service it makes, share the one throttle they were given.
///
/// ```
/// use resilience::throttle::{AdaptiveThrottle, ThrottleLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let throttle = AdaptiveThrottle::builder("search").build()?;
/// let client = ServiceBuilder::new()
///     .layer(ThrottleLayer::new(throttle.clone()))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(client.oneshot(41).await?, 42);
/// assert_eq!(throttle.metrics().window_accepts, 1);
/// # Ok(())
/// # }
/// ```
pub type ThrottleLayer<C = EveryError> = StageLayer<AdaptiveThrottle, C>;

/// A tower service behind an [`AdaptiveThrottle`]; made by [`ThrottleLayer`].
pub type ThrottleService<S, C = EveryError> = StageService<AdaptiveThrottle, S, C>;

/// The future of a [`ThrottleService`] call: it reports the response to the throttle.
pub type ResponseFuture<F, C = EveryError> = stage::ResponseFuture<F, AdaptiveThrottle, C>;
