//! The load shedder's events.

use std::fmt;

use crate::events::{EventKind, Payload};
use crate::PatternKind;

/// Something that happened in a load shedder.
///
/// `priority`, `load_level` and `reason` are rendered as their `snake_case` names so this
/// payload does not depend on the shedder's own enums.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LoadShedderEvent {
    /// A request was accepted.
    RequestAccepted {
        /// Requests running, this one included.
        active: u32,
        /// The request's priority (`"critical"`, `"high"`, `"normal"`, `"low"`).
        priority: &'static str,
        /// The load level after accepting it (`"normal"`, `"elevated"`, `"high"`, `"critical"`).
        load_level: &'static str,
    },
    /// A request was shed.
    RequestShed {
        /// Requests running.
        active: u32,
        /// The request's priority.
        priority: &'static str,
        /// The load level that shed it.
        load_level: &'static str,
        /// Why, for example `"max_requests"`, `"queue_full"`, `"cpu"`, `"memory"`.
        reason: &'static str,
    },
}

impl LoadShedderEvent {
    /// `"request_accepted"`: a load shedder accepted a request.
    pub const REQUEST_ACCEPTED: EventKind =
        EventKind::builtin(PatternKind::LoadShedder, "request_accepted", 18);
    /// `"request_shed"`: a load shedder shed a request.
    pub const REQUEST_SHED: EventKind =
        EventKind::builtin(PatternKind::LoadShedder, "request_shed", 19);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::REQUEST_ACCEPTED, Self::REQUEST_SHED];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RequestAccepted { .. } => Self::REQUEST_ACCEPTED,
            Self::RequestShed { .. } => Self::REQUEST_SHED,
        }
    }
}

impl Payload for LoadShedderEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::RequestAccepted {
                active,
                priority,
                load_level,
            } => {
                visit("active", active);
                visit("priority", priority);
                visit("load_level", load_level);
            }
            Self::RequestShed {
                active,
                priority,
                load_level,
                reason,
            } => {
                visit("active", active);
                visit("priority", priority);
                visit("load_level", load_level);
                visit("reason", reason);
            }
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `LoadShedderEvent::REQUEST_ACCEPTED`")]
    pub const RequestAccepted: Self = LoadShedderEvent::REQUEST_ACCEPTED;
    #[doc(hidden)]
    #[deprecated(note = "use `LoadShedderEvent::REQUEST_SHED`")]
    pub const RequestShed: Self = LoadShedderEvent::REQUEST_SHED;
}
