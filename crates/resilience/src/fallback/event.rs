//! The fallback pattern's events.

use std::fmt;
use std::sync::Arc;

use crate::events::{EventKind, Payload};
use crate::PatternKind;

/// Something that happened in a fallback.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FallbackEvent {
    /// The primary operation failed and a fallback was used.
    FallbackTriggered {
        /// Which fallback of the chain ran, 0-based.
        index: usize,
        /// The error that triggered it, rendered for display.
        error: Arc<str>,
    },
    /// Every fallback of the chain failed too.
    FallbackFailed {
        /// How many fallbacks were tried.
        tried: usize,
        /// The last fallback's error, rendered for display.
        error: Arc<str>,
    },
}

impl FallbackEvent {
    /// `"fallback_triggered"`: a fallback answered for a failed operation.
    pub const FALLBACK_TRIGGERED: EventKind =
        EventKind::builtin(PatternKind::Fallback, "fallback_triggered", 13);
    /// `"fallback_failed"`: every fallback failed.
    pub const FALLBACK_FAILED: EventKind =
        EventKind::builtin(PatternKind::Fallback, "fallback_failed", 14);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::FALLBACK_TRIGGERED, Self::FALLBACK_FAILED];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::FallbackTriggered { .. } => Self::FALLBACK_TRIGGERED,
            Self::FallbackFailed { .. } => Self::FALLBACK_FAILED,
        }
    }
}

impl Payload for FallbackEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::FallbackTriggered { index, error } => {
                visit("index", index);
                visit("error", error);
            }
            Self::FallbackFailed { tried, error } => {
                visit("tried", tried);
                visit("error", error);
            }
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `FallbackEvent::FALLBACK_TRIGGERED`")]
    pub const FallbackTriggered: Self = FallbackEvent::FALLBACK_TRIGGERED;
    #[doc(hidden)]
    #[deprecated(note = "use `FallbackEvent::FALLBACK_FAILED`")]
    pub const FallbackFailed: Self = FallbackEvent::FALLBACK_FAILED;
}
