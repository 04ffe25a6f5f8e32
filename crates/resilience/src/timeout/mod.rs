//! Timeout and deadline: bound how long an operation, or a group of operations, may take.

mod event;

pub use event::TimeoutEvent;
