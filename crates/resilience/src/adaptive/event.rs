//! The adaptive concurrency limiter's events.

use std::fmt;

use crate::events::{EventKind, Payload};
use crate::PatternKind;

/// Something that happened in an adaptive concurrency limiter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AdaptiveEvent {
    /// The limit changed (`load_level_change`).
    LoadLevelChange {
        /// The limit before.
        old_limit: u32,
        /// The limit after.
        new_limit: u32,
        /// The algorithm that changed it (`"aimd"`, `"vegas"`, `"gradient2"`, ...).
        algorithm: &'static str,
    },
}

impl AdaptiveEvent {
    /// `"load_level_change"`: an adaptive limiter changed its limit.
    pub const LOAD_LEVEL_CHANGE: EventKind =
        EventKind::builtin(PatternKind::AdaptiveConcurrency, "load_level_change", 22);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::LOAD_LEVEL_CHANGE];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::LoadLevelChange { .. } => Self::LOAD_LEVEL_CHANGE,
        }
    }
}

impl Payload for AdaptiveEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::LoadLevelChange {
                old_limit,
                new_limit,
                algorithm,
            } => {
                visit("old_limit", old_limit);
                visit("new_limit", new_limit);
                visit("algorithm", algorithm);
            }
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `AdaptiveEvent::LOAD_LEVEL_CHANGE`")]
    pub const LoadLevelChange: Self = AdaptiveEvent::LOAD_LEVEL_CHANGE;
}
