//! The synchronisation primitives of the lock-free parts: std's, or loom's under
//! `--cfg loom`, so the loom models in `tests/loom_*.rs` explore the real code's
//! interleavings (tokio tests its own primitives the same way).
//!
//! Only the modules those models cover import from here: the circuit breaker's handle (the
//! state word and the lock around the probe slots), the bulkhead's slots (the slot word, the
//! queue's lock and the debt), the throttle's window and refusal counts, and the backpressure
//! controller's word with the lock it hands over to. Everything else uses `std::sync`
//! directly.
//!
//! [`Padded`] keeps a hot word on cache lines of its own, for any module.

#[cfg(loom)]
pub(crate) use loom::sync::{atomic, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{atomic, Mutex, MutexGuard};

/// `T` alone on its cache lines (two on CPUs that fetch lines in pairs): a word that threads
/// write often, kept apart from the fields they only read, so reading those does not take
/// the line away from the core about to write the word.
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
