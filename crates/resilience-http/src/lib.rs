#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admission;
pub mod body;
pub mod circuit_breaker;
mod classify;
pub mod composite;
mod exclude;
pub mod fallback;
pub mod key;
pub mod load_shed;
pub mod rate_limit;
mod replay;
pub mod response;
pub mod retry;
mod service;
pub mod timeout;

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
pub use key::{InvalidIpNet, IpNet, RateLimitKey, TrustedProxies};
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
