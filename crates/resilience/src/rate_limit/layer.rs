//! Tower middleware: a [`DirectRateLimiter`] in front of a service, through the generic
//! [`StageLayer`].

use super::DirectRateLimiter;
use crate::classify::EveryError;
use crate::stage::{self, StageLayer, StageService};

/// Applies a [`DirectRateLimiter`] to a tower service: every request spends one unit of its
/// budget.
///
/// A request over the rate never reaches the inner service and fails with
/// [`Error::Rejected`](crate::Error::Rejected), whose `retry_after` says when the next one
/// would fit. With a `max_wait`, `poll_ready` waits that long at most for the budget
/// instead. Clones of the layer share the one budget they were given.
///
/// ```
/// use resilience::rate_limit::{DirectRateLimiter, RateLimitLayer};
/// use resilience::Rate;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = DirectRateLimiter::builder("partner-api").rate(Rate::per_second(100)).build()?;
/// let service = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
pub type RateLimitLayer<C = EveryError> = StageLayer<DirectRateLimiter, C>;

/// A tower service whose requests are rate limited; made by [`RateLimitLayer`].
pub type RateLimitService<S, C = EveryError> = StageService<DirectRateLimiter, S, C>;

/// The future of a [`RateLimitService`] call: the inner future, or the rejection.
pub type ResponseFuture<F, C = EveryError> = stage::ResponseFuture<F, DirectRateLimiter, C>;
