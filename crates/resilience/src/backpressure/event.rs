//! The backpressure events.

use std::fmt;

use crate::events::{EventKind, Payload};
use crate::PatternKind;

/// Something that happened in a backpressure controller.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BackpressureEvent {
    /// Pending work reached the high water mark: backpressure is on.
    BackpressureHigh {
        /// Pending items.
        pending: u32,
        /// The high water mark.
        high_water_mark: u32,
    },
    /// Pending work fell to the low water mark: backpressure is off.
    BackpressureLow {
        /// Pending items.
        pending: u32,
        /// The low water mark.
        low_water_mark: u32,
    },
}

impl BackpressureEvent {
    /// `"backpressure_high"`: backpressure turned on at the high water mark.
    pub const BACKPRESSURE_HIGH: EventKind =
        EventKind::builtin(PatternKind::Backpressure, "backpressure_high", 20);
    /// `"backpressure_low"`: backpressure turned off at the low water mark.
    pub const BACKPRESSURE_LOW: EventKind =
        EventKind::builtin(PatternKind::Backpressure, "backpressure_low", 21);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::BACKPRESSURE_HIGH, Self::BACKPRESSURE_LOW];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::BackpressureHigh { .. } => Self::BACKPRESSURE_HIGH,
            Self::BackpressureLow { .. } => Self::BACKPRESSURE_LOW,
        }
    }
}

impl Payload for BackpressureEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::BackpressureHigh {
                pending,
                high_water_mark,
            } => {
                visit("pending", pending);
                visit("high_water_mark", high_water_mark);
            }
            Self::BackpressureLow {
                pending,
                low_water_mark,
            } => {
                visit("pending", pending);
                visit("low_water_mark", low_water_mark);
            }
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `BackpressureEvent::BACKPRESSURE_HIGH`")]
    pub const BackpressureHigh: Self = BackpressureEvent::BACKPRESSURE_HIGH;
    #[doc(hidden)]
    #[deprecated(note = "use `BackpressureEvent::BACKPRESSURE_LOW`")]
    pub const BackpressureLow: Self = BackpressureEvent::BACKPRESSURE_LOW;
}
