#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Builder setters that each replace one field, with their docs: `field: Type;`.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $field(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    )*};
}

mod body;
mod classify;
mod composite;
mod deadline;
mod decimal;
mod exclude;
mod fallback;
mod key;
mod load_shed;
mod rate_limit;
mod replay;
mod response;
mod retry;
mod service;
mod stage;
mod timeout;

pub use body::{BodyEnd, Guard, HeldGuard, ResponseBody, DEFAULT_BODY_IDLE_TIMEOUT};
pub use classify::ResponseClassifier;
pub use composite::CompositeLayer;
pub use deadline::{
    grpc_timeout, parse_grpc_timeout, DeadlineFuture, DeadlineLayer, DeadlinePropagation,
    DeadlineService, EXPECTED_TIMEOUT_MS, GRPC_TIMEOUT,
};
pub use exclude::ExcludePaths;
pub use fallback::{FallbackCause, FellBack, HttpFallbackLayer, HttpFallbackService};
pub use key::{peer_addr, InvalidIpNet, IpNet, RateLimitKey, TrustedProxies};
pub use load_shed::{PriorityHeader, X_PRIORITY};
pub use rate_limit::{Allowed, KeyedRateLimit};
pub use replay::ReplayBody;

pub use response::{
    Cause, Problem, Reply, ResponseFactory, TimedOut, GRPC_RETRY_PUSHBACK_MS, RATELIMIT_LIMIT,
    RATELIMIT_REMAINING, RATELIMIT_RESET,
};
pub use retry::{
    safe_to_repeat, Attempts, HttpRetryLayer, HttpRetryService, NotRetried, Replay, RetryBody,
    IDEMPOTENCY_KEY, X_RETRY_SKIPPED,
};
pub use service::{Handle, HttpService, ResponseFuture, Stack, StagesService};
pub use stage::{
    Admission, Chain, ChainGuard, ChainPending, Halt, HttpStageLayer, Refusal, RequestStage, Slot,
    Stages,
};
pub use timeout::HttpTimeoutLayer;
