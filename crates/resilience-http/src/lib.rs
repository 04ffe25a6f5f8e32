#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
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
pub mod stage;
pub mod timeout;

pub use body::ResponseBody;
pub use classify::ResponseClassifier;
pub use composite::CompositeLayer;
pub use exclude::ExcludePaths;
pub use fallback::{FallbackCause, FellBack, HttpFallbackLayer, HttpFallbackService};
pub use key::{InvalidIpNet, IpNet, RateLimitKey, TrustedProxies};
pub use load_shed::{PriorityHeader, X_PRIORITY};
pub use rate_limit::{Allowed, KeyedRateLimit};
pub use replay::ReplayBody;
pub use response::{Problem, Reply, ResponseFactory, TimedOut};
pub use retry::{
    Attempts, HttpRetryLayer, HttpRetryService, NotRetried, Replay, RetryBody, IDEMPOTENCY_KEY,
    X_RETRY_SKIPPED,
};
pub use service::{ResponseFuture, StagesService};
pub use stage::{Chain, ChainGuard, HttpStageLayer, Refusal, RequestStage, Slot, Stages};
pub use timeout::HttpTimeoutLayer;
