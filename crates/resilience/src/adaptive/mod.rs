//! Adaptive concurrency: find the concurrency a dependency can take, and keep to it.

mod event;

pub use event::AdaptiveEvent;
