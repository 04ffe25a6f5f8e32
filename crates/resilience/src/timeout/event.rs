//! The timeout and deadline events.

use std::fmt;
use std::time::Duration;

use crate::events::{EventKind, Payload, Seconds};
use crate::PatternKind;

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
    /// `"timeout_success"`: an operation finished within its timeout.
    pub const TIMEOUT_SUCCESS: EventKind =
        EventKind::builtin(PatternKind::Timeout, "timeout_success", 11);
    /// `"timeout_exceeded"`: an operation exceeded its timeout.
    pub const TIMEOUT_EXCEEDED: EventKind =
        EventKind::builtin(PatternKind::Timeout, "timeout_exceeded", 12);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::TIMEOUT_SUCCESS, Self::TIMEOUT_EXCEEDED];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::TimeoutSuccess { .. } => Self::TIMEOUT_SUCCESS,
            Self::TimeoutExceeded { .. } => Self::TIMEOUT_EXCEEDED,
        }
    }
}

impl Payload for TimeoutEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::TimeoutSuccess { elapsed, limit } => {
                visit("elapsed", &Seconds(*elapsed));
                visit("limit", &Seconds(*limit));
            }
            Self::TimeoutExceeded { limit } => visit("limit", &Seconds(*limit)),
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `TimeoutEvent::TIMEOUT_SUCCESS`")]
    pub const TimeoutSuccess: Self = TimeoutEvent::TIMEOUT_SUCCESS;
    #[doc(hidden)]
    #[deprecated(note = "use `TimeoutEvent::TIMEOUT_EXCEEDED`")]
    pub const TimeoutExceeded: Self = TimeoutEvent::TIMEOUT_EXCEEDED;
}
