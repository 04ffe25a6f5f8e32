//! Adaptive throttling: a client drops requests locally, with a probability that rises as the
//! backend refuses more of what it is sent.
//!
//! # When to use it
//!
//! On the client side of a call to a backend that can be overloaded and says so (refuses,
//! answers 429/503, times out). When a backend is rejecting most of its traffic, each refused
//! request still costs it work and a client that keeps sending at full rate keeps it
//! overloaded; throttling locally, in proportion to how much is being refused, cuts that load
//! at the source and lets the backend recover. It is the throttle of Google's SRE book
//! ("Handling Overload", client-side throttling) with the guards of Envoy's admission control.
//! To keep a client within a *known* rate, use a rate limiter; to bound calls in flight, a
//! bulkhead or an adaptive concurrency limiter; a circuit breaker stops *all* calls to a
//! failing backend, this one sheds *a share* to an overloaded one.
//!
//! # How it decides
//!
//! Over a sliding window (2 minutes by default) the throttle counts `requests`, every
//! request the client attempted (those it throttled included), and `accepts`, those the
//! backend did not refuse. Each new request is dropped with probability
//!
//! ```text
//! p = max(0, (requests − K·accepts) / (requests + 1))
//! ```
//!
//! With `K = 2` (the default) nothing is dropped while the backend accepts at least half of
//! what it gets; beyond that, the client keeps sending about `K` times what the backend
//! accepts, so an overloaded backend ends up refusing about `1 − 1/K` of what it receives
//! instead of nearly everything. Lower `K` is more aggressive. Requests the throttle dropped
//! count as requests not accepted, but never as failures of the backend: they raise
//! `requests`, not the failures, so once the backend accepts again `p` falls back to 0
//! within a window.
//!
//! Envoy's lessons are built in: nothing is dropped while the window has seen fewer than
//! `min_requests` (thin traffic, or a cold start with no samples); `p` never exceeds
//! `max_rejection_probability` (0.9), so some requests always go out and notice the
//! recovery; and `aggression` reshapes it as `p^(1 / aggression)`.
//!
//! The window is 16 time buckets of atomic words: no lock, no allocation. What it counts are
//! requests and refusals (requests throttled, and those the backend refused); its accepts are
//! the difference, so a request counts as accepted from the moment it is sent until a
//! refusal says otherwise, and an accepted one writes nothing once it was counted. Counting a
//! request is one atomic add to a running total (the ring only notes where each bucket began
//! in it), a throttled request one more add to a running total of its own, and a refusal by
//! the backend one compare-exchange in its bucket. While `p` is 0, a decision sums
//! the window only once in a while: each sum also says how many more requests are certain to
//! pass (until `requests` would exceed `K·accepts` or reach `min_requests`, within the bucket,
//! as long as nothing is refused), and those pass on their place in the bucket, with no write
//! but their count. Likewise at the cap: a sum that finds `p` at `max_rejection_probability`
//! also says how many more requests of the bucket are certain to find it there (a refusal
//! only keeps it there), and those are drawn against the cap without summing. Only when
//! `p > 0` is there a draw: the number at the request's place in the count, in a splitmix64
//! sequence fixed by the throttle's random seed, so drawing writes nothing. A request and its
//! refusal are counted in the same bucket and leave the window together.
//! What "refused" means is the crate's [classifier](crate::classify): [`Permit::failure`] (or
//! a call the classifier judges a failure, every `Err` by default) is a refusal; success, an
//! ignored outcome and a cancelled call are not.
//!
//! [`try_acquire`](AdaptiveThrottle::try_acquire) hands out a [`Permit`] that borrows the
//! throttle; [`try_acquire_owned`](AdaptiveThrottle::try_acquire_owned) an [`OwnedPermit`]
//! holding a reference to it, for a permit moved into a task (the tower layer and the HTTP
//! adapters hold one across the response). A call run by [`call`](AdaptiveThrottle::call)
//! borrows the throttle too: neither takes a reference count.
//!
//! # Example
//!
//! ```
//! use resilience::throttle::AdaptiveThrottle;
//! use resilience::{Error, RejectionReason};
//! use std::io;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let throttle = AdaptiveThrottle::builder("search-backend").seed(7).build()?;
//!
//! // The backend refuses everything for a while.
//! for _ in 0..200 {
//!     let refused = throttle.call(|| async { Err::<(), _>(io::Error::other("503")) }).await;
//!     if let Err(Error::Rejected(rejection)) = refused {
//!         assert_eq!(rejection.reason(), RejectionReason::Throttled);
//!     }
//! }
//! let metrics = throttle.metrics();
//! assert_eq!(metrics.rejection_probability, 0.9, "at its cap");
//! assert!(metrics.total_throttled > 100, "most requests never left");
//!
//! // Once the backend accepts again and the bad window has passed, nothing is dropped.
//! tokio::time::advance(std::time::Duration::from_secs(120)).await;
//! assert_eq!(throttle.call(|| async { Ok::<_, io::Error>("hits") }).await?, "hits");
//! assert_eq!(throttle.rejection_probability(), 0.0);
//! # Ok(())
//! # }
//! ```
//!
//! # In the pipeline
//!
//! In the rate-limiter slot of a [`Pipeline`](crate::Pipeline) (inside the retry and the
//! circuit breaker, outside the timeout), so every attempt is judged, a timeout counts as a
//! refusal, and a throttled attempt is a rejection the retry does not retry:
//! [`PipelineBuilder::rate_limiter`](crate::pipeline::PipelineBuilder::rate_limiter) takes
//! it alone or paired with a rate limiter. As tower middleware, [`ThrottleLayer`] (feature
//! `tower`) on the client.
//!
//! # Time
//!
//! A throttle reads the CPU's time-stamp counter (through [`quanta`](https://docs.rs/quanta),
//! which falls back to the monotonic clock on CPUs without an invariant counter): a few
//! nanoseconds per read, where `tokio::time::Instant::now()` costs tens. Built inside a tokio
//! runtime whose clock is paused (`#[tokio::test(start_paused = true)]`, or after
//! `tokio::time::pause()`), it reads tokio's clock instead, so `advance` and auto-advance
//! drive it exactly. The choice is made once, when it is built: in a test, pause the clock
//! first, then build it.
//!
//! On the counter, buckets are cut in the counter's own ticks: the window's sixteenth is
//! converted once, when the throttle is built, rounding up to a whole tick (a fraction of a
//! nanosecond on x86, tens of nanoseconds on ARM's slower counter).
//!
//! # Events
//!
//! `throttle_rejected` for each request throttled, with the probability it was drawn
//! against; see [`ThrottleEvent`] and [`events`](crate::events). Throttled requests are also
//! logged at `DEBUG` under the target `resilience::throttle`.
//!
//! # Defaults
//!
//! A window of 2 minutes, `k = 2`, `min_requests = 20`, `max_rejection_probability = 0.9`,
//! `aggression = 1`, a random seed.

mod builder;
mod config;
mod event;
mod handle;
mod instruments;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod state;
mod window;

pub use builder::ThrottleBuilder;
pub use config::{ThrottleConfig, MAX_AGGRESSION, MAX_K, MAX_WINDOW, MIN_WINDOW};
pub use event::ThrottleEvent;
pub use handle::{AdaptiveThrottle, OwnedPermit, Permit};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{ResponseFuture, ThrottleLayer, ThrottleService};
pub use metrics::ThrottleMetrics;
