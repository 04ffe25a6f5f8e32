//! The retry pattern's events.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::events::{EventKind, Payload, Seconds};
use crate::PatternKind;

/// Something that happened in a retry policy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// An attempt failed and another will follow after `delay`.
    RetryAttempt {
        /// The attempt that failed, 1-based (the first call is attempt 1).
        attempt: u32,
        /// The most attempts allowed, the first call included.
        max_attempts: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// The failed attempt's error (or rejected result), rendered for display.
        error: Arc<str>,
    },
    /// An attempt succeeded.
    RetrySuccess {
        /// Attempts made, the successful one included.
        attempts: u32,
    },
    /// No attempt succeeded and no more will be made.
    RetryExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error (or rejected result), rendered for display.
        error: Arc<str>,
    },
}

impl RetryEvent {
    /// `"retry_attempt"`: a retry policy will make another attempt.
    pub const RETRY_ATTEMPT: EventKind = EventKind::builtin(PatternKind::Retry, "retry_attempt", 8);
    /// `"retry_success"`: a retried operation succeeded.
    pub const RETRY_SUCCESS: EventKind = EventKind::builtin(PatternKind::Retry, "retry_success", 9);
    /// `"retry_exhausted"`: a retry policy gave up.
    pub const RETRY_EXHAUSTED: EventKind =
        EventKind::builtin(PatternKind::Retry, "retry_exhausted", 10);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::RETRY_ATTEMPT,
        Self::RETRY_SUCCESS,
        Self::RETRY_EXHAUSTED,
    ];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RetryAttempt { .. } => Self::RETRY_ATTEMPT,
            Self::RetrySuccess { .. } => Self::RETRY_SUCCESS,
            Self::RetryExhausted { .. } => Self::RETRY_EXHAUSTED,
        }
    }
}

impl Payload for RetryEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::RetryAttempt {
                attempt,
                max_attempts,
                delay,
                error,
            } => {
                visit("attempt", attempt);
                visit("max_attempts", max_attempts);
                visit("delay", &Seconds(*delay));
                visit("error", error);
            }
            Self::RetrySuccess { attempts } => visit("attempts", attempts),
            Self::RetryExhausted { attempts, error } => {
                visit("attempts", attempts);
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
    #[deprecated(note = "use `RetryEvent::RETRY_ATTEMPT`")]
    pub const RetryAttempt: Self = RetryEvent::RETRY_ATTEMPT;
    #[doc(hidden)]
    #[deprecated(note = "use `RetryEvent::RETRY_SUCCESS`")]
    pub const RetrySuccess: Self = RetryEvent::RETRY_SUCCESS;
    #[doc(hidden)]
    #[deprecated(note = "use `RetryEvent::RETRY_EXHAUSTED`")]
    pub const RetryExhausted: Self = RetryEvent::RETRY_EXHAUSTED;
}
