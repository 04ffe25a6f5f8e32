//! Retry: run an operation again after a failure, waiting longer each time.

mod event;

pub use event::RetryEvent;
