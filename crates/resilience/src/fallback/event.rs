//! The fallback pattern's events.

use std::fmt;
use std::sync::Arc;

use crate::events::EventKind;

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
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::FallbackTriggered { .. } => EventKind::FallbackTriggered,
            Self::FallbackFailed { .. } => EventKind::FallbackFailed,
        }
    }

    pub(crate) fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
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
