#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
pub mod body;
mod circuit_breaker;
mod classify;
mod composite;
mod exclude;
mod fallback;
pub mod key;
mod load_shed;
mod rate_limit;
mod replay;
pub mod response;
mod retry;
mod service;
mod timeout;

pub use admission::{
    AdaptiveLayer, AdmissionLayer, AdmissionService, BackpressureLayer, BulkheadLayer,
    LoadShedLayer, RequestAdmission, Slot,
};
pub use body::ResponseBody;
pub use circuit_breaker::{CircuitBreakerLayer, CircuitBreakerService, Probe};
pub use classify::ResponseClassifier;
pub use composite::{CompositeGuard, CompositeLayer, CompositeService};
pub use exclude::ExcludePaths;
pub use fallback::{FallbackCause, FallbackLayer, FallbackService, FellBack};
pub use key::{IpNet, InvalidIpNet, RateLimitKey, TrustedProxies};
pub use load_shed::{PriorityHeader, X_PRIORITY};
pub use rate_limit::{RateLimitLayer, RateLimitService};
pub use replay::ReplayBody;
pub use response::{Problem, Reply, ResponseFactory, TimedOut};
pub use retry::{
    Attempts, NotRetried, Replay, RetryBody, RetryLayer, RetryService, IDEMPOTENCY_KEY,
    X_RETRY_SKIPPED,
};
pub use service::ResponseFuture;
pub use timeout::{TimeoutLayer, TimeoutService};
