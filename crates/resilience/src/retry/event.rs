//! The retry pattern's events.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::events::{EventKind, Seconds};

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
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RetryAttempt { .. } => EventKind::RetryAttempt,
            Self::RetrySuccess { .. } => EventKind::RetrySuccess,
            Self::RetryExhausted { .. } => EventKind::RetryExhausted,
        }
    }

    pub(crate) fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
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
