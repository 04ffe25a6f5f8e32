#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod direct;
mod error;
mod host;
mod middleware;
mod retry_after;

pub use builder::{ResilientMiddlewareBuilder, IDEMPOTENCY_KEY};
pub use direct::SendWith;
pub use error::ClientError;
pub use middleware::{Attempts, ResilientMiddleware};
