//! The adaptive concurrency limiter's events.

use std::fmt;

use crate::events::EventKind;

/// Something that happened in an adaptive concurrency limiter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AdaptiveEvent {
    /// The limit changed (the seed's `load_level_change`).
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
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::LoadLevelChange { .. } => EventKind::LoadLevelChange,
        }
    }

    pub(crate) fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
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
