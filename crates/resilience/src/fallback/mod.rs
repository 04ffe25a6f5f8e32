//! Fallback: answer with something else when an operation fails.

mod event;

pub use event::FallbackEvent;
