#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adaptive;
pub mod admission;
pub mod backpressure;
pub mod bulkhead;
pub mod circuit_breaker;
pub mod classify;
mod config;
mod error;
pub mod events;
pub mod fallback;
mod hook;
pub mod load_shed;
pub mod metrics;
pub mod pipeline;
pub mod rate;
pub mod rate_limit;
pub mod registry;
pub mod retry;
mod time;
pub mod timeout;

pub use adaptive::AdaptiveLimiter;
pub use backpressure::Backpressure;
pub use bulkhead::Bulkhead;
pub use circuit_breaker::CircuitBreaker;
pub use config::{ConfigError, ConfigProblem, MAX_DURATION};
pub use error::{Error, PatternKind, Rejection, RejectionReason};
pub use fallback::Fallback;
pub use hook::{reset_error_handler, set_error_handler, CallbackKind, CallbackPanic};
pub use load_shed::LoadShedder;
pub use pipeline::Pipeline;
pub use rate::{Rate, RateProblem};
pub use retry::Retry;
pub use timeout::{Deadline, Timeout};
