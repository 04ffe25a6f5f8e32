#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adaptive;
pub mod backpressure;
pub mod bulkhead;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;
pub mod chaos;
pub mod circuit_breaker;
pub mod classify;
mod clock;
pub mod coalesce;
mod config;
mod error;
pub mod events;
pub mod fallback;
pub mod hedge;
mod hook;
pub mod load_shed;
pub mod metrics;
pub mod pipeline;
mod random;
pub mod rate;
pub mod rate_limit;
pub mod registry;
pub mod retry;
pub mod stage;
mod started;
mod sync;
mod tally;
pub mod telemetry;
pub mod throttle;
mod ticket;
mod time;
pub mod timeout;

pub use adaptive::AdaptiveLimiter;
pub use backpressure::Backpressure;
pub use bulkhead::Bulkhead;
pub use chaos::Chaos;
pub use circuit_breaker::CircuitBreaker;
pub use coalesce::Coalescer;
pub use config::{ConfigError, ConfigProblem, MAX_DURATION};
pub use error::{Error, PatternKind, Rejection, RejectionReason};
pub use fallback::Fallback;
pub use hedge::Hedge;
pub use hook::{reset_error_handler, set_error_handler, CallbackKind, CallbackPanic};
pub use load_shed::LoadShedder;
pub use pipeline::Pipeline;
pub use rate::{Rate, RateProblem};
pub use retry::Retry;
pub use throttle::AdaptiveThrottle;
pub use timeout::{Deadline, Timeout};

/// The event kinds of this crate's patterns, known by name without registration. A pattern
/// added here lists its kinds here, next to its `pub mod` line; the events module itself
/// names no pattern.
pub(crate) const BUILTIN_EVENT_KINDS: &[&[events::EventKind]] = &[
    circuit_breaker::CircuitBreakerEvent::KINDS,
    retry::RetryEvent::KINDS,
    timeout::TimeoutEvent::KINDS,
    fallback::FallbackEvent::KINDS,
    bulkhead::BulkheadEvent::KINDS,
    load_shed::LoadShedderEvent::KINDS,
    backpressure::BackpressureEvent::KINDS,
    adaptive::AdaptiveEvent::KINDS,
    rate_limit::RateLimiterEvent::KINDS,
    hedge::HedgeEvent::KINDS,
    #[cfg(feature = "cache")]
    cache::CacheEvent::KINDS,
    coalesce::CoalesceEvent::KINDS,
    chaos::ChaosEvent::KINDS,
    throttle::ThrottleEvent::KINDS,
];
