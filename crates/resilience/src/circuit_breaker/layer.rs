//! Tower middleware: a [`CircuitBreaker`] in front of a service, through the generic
//! [`StageLayer`].

use super::CircuitBreaker;
use crate::classify::EveryError;
use crate::stage::{self, StageLayer, StageService};

/// Applies a [`CircuitBreaker`] to a tower service.
///
/// Rejected requests never reach the inner service and fail with
/// [`Error::Rejected`](crate::Error::Rejected); the inner service's errors come back as
/// [`Error::Inner`](crate::Error::Inner), judged by the layer's classifier (every error a
/// failure by default; see [`classifier`](StageLayer::classifier)). The breaker's own
/// `timeout`, if set, cuts a call off with [`Error::Timeout`](crate::Error::Timeout) and
/// counts it as a failure. Clones of the layer share the one breaker they were given.
///
/// ```
/// use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder("inventory").build()?;
/// let service = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
pub type CircuitBreakerLayer<C = EveryError> = StageLayer<CircuitBreaker, C>;

/// A tower service guarded by a [`CircuitBreaker`]; made by [`CircuitBreakerLayer`].
pub type CircuitBreakerService<S, C = EveryError> = StageService<CircuitBreaker, S, C>;

/// The future of a [`CircuitBreakerService`] call. Dropping it before completion releases
/// its permit (a half-open probe slot goes back).
pub type ResponseFuture<F, C = EveryError> = stage::ResponseFuture<F, CircuitBreaker, C>;
