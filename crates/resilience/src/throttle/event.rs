//! The throttle's event.

use std::fmt;

use crate::events::{EventKind, Payload};
use crate::PatternKind;

/// Something an [`AdaptiveThrottle`](super::AdaptiveThrottle) did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ThrottleEvent {
    /// A request was throttled: dropped locally, never sent.
    Rejected {
        /// The rejection probability it was drawn against.
        probability: f64,
    },
}

impl ThrottleEvent {
    /// `"throttle_rejected"`: a request was throttled.
    pub const REJECTED: EventKind =
        EventKind::builtin(PatternKind::Throttle, "throttle_rejected", 47);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::REJECTED];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Rejected { .. } => Self::REJECTED,
        }
    }
}

impl Payload for ThrottleEvent {
    fn kind(&self) -> EventKind {
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        let Self::Rejected { probability } = self;
        visit("probability", probability);
    }
}
