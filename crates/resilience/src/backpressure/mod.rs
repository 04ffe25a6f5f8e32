//! Backpressure: slow producers down when too much work is pending.

mod event;

pub use event::BackpressureEvent;
