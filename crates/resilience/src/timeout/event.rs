//! The timeout and deadline events.

use std::fmt;
use std::time::Duration;

use crate::events::{EventKind, Seconds};

/// Something that happened in a timeout or a deadline.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TimeoutEvent {
    /// The operation finished (successfully or with its own error) within its limit.
    TimeoutSuccess {
        /// How long it ran.
        elapsed: Duration,
        /// The limit it had.
        limit: Duration,
    },
    /// The operation ran out of time and was cancelled.
    TimeoutExceeded {
        /// The limit it exceeded.
        limit: Duration,
    },
}

impl TimeoutEvent {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::TimeoutSuccess { .. } => EventKind::TimeoutSuccess,
            Self::TimeoutExceeded { .. } => EventKind::TimeoutExceeded,
        }
    }

    pub(crate) fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::TimeoutSuccess { elapsed, limit } => {
                visit("elapsed", &Seconds(*elapsed));
                visit("limit", &Seconds(*limit));
            }
            Self::TimeoutExceeded { limit } => visit("limit", &Seconds(*limit)),
        }
    }
}
