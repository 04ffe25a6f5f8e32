//! The backpressure events.

use std::fmt;

use crate::events::EventKind;

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
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::BackpressureHigh { .. } => EventKind::BackpressureHigh,
            Self::BackpressureLow { .. } => EventKind::BackpressureLow,
        }
    }

    pub(crate) fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
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
