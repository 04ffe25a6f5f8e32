#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod convert;
mod middleware;
mod timeout;

pub use body::HeldBody;
pub use middleware::{Resilience, ResilienceResponse, ResilienceService};
pub use timeout::TimeoutError;
