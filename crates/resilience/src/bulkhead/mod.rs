//! Bulkhead: bound how many calls run at once, and how many may wait.

mod event;

pub use event::BulkheadEvent;
