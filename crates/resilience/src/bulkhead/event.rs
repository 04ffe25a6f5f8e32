//! The bulkhead's events.

use std::fmt;
use std::time::Duration;

use crate::events::{EventKind, Payload, Seconds};
use crate::PatternKind;
use crate::RejectionReason;

/// Something that happened in a bulkhead.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A call got a slot, possibly after waiting in the queue.
    BulkheadAccepted {
        /// Calls running, this one included.
        active: u32,
        /// Calls still waiting.
        waiting: u32,
        /// How long this call waited for its slot.
        waited: Duration,
    },
    /// A call was refused a slot.
    BulkheadRejected {
        /// Why: capacity full, queue full or wait timeout.
        reason: RejectionReason,
        /// Calls running.
        active: u32,
        /// Calls waiting.
        waiting: u32,
    },
    /// A call gave its slot back (success, failure or cancellation alike).
    BulkheadReleased {
        /// Calls still running.
        active: u32,
        /// How long the slot was held. Measured when the call waited for its slot or a
        /// listener for this event was attached when it was taken (so the free-slot path
        /// reads no clock); zero otherwise.
        held: Duration,
    },
}

impl BulkheadEvent {
    /// `"bulkhead_accepted"`: a bulkhead gave a call a slot.
    pub const BULKHEAD_ACCEPTED: EventKind =
        EventKind::builtin(PatternKind::Bulkhead, "bulkhead_accepted", 15);
    /// `"bulkhead_rejected"`: a bulkhead refused a call.
    pub const BULKHEAD_REJECTED: EventKind =
        EventKind::builtin(PatternKind::Bulkhead, "bulkhead_rejected", 16);
    /// `"bulkhead_released"`: a call gave its bulkhead slot back.
    pub const BULKHEAD_RELEASED: EventKind =
        EventKind::builtin(PatternKind::Bulkhead, "bulkhead_released", 17);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::BULKHEAD_ACCEPTED,
        Self::BULKHEAD_REJECTED,
        Self::BULKHEAD_RELEASED,
    ];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::BulkheadAccepted { .. } => Self::BULKHEAD_ACCEPTED,
            Self::BulkheadRejected { .. } => Self::BULKHEAD_REJECTED,
            Self::BulkheadReleased { .. } => Self::BULKHEAD_RELEASED,
        }
    }
}

impl Payload for BulkheadEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::BulkheadAccepted {
                active,
                waiting,
                waited,
            } => {
                visit("active", active);
                visit("waiting", waiting);
                visit("waited", &Seconds(*waited));
            }
            Self::BulkheadRejected {
                reason,
                active,
                waiting,
            } => {
                visit("reason", reason);
                visit("active", active);
                visit("waiting", waiting);
            }
            Self::BulkheadReleased { active, held } => {
                visit("active", active);
                visit("held", &Seconds(*held));
            }
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `BulkheadEvent::BULKHEAD_ACCEPTED`")]
    pub const BulkheadAccepted: Self = BulkheadEvent::BULKHEAD_ACCEPTED;
    #[doc(hidden)]
    #[deprecated(note = "use `BulkheadEvent::BULKHEAD_REJECTED`")]
    pub const BulkheadRejected: Self = BulkheadEvent::BULKHEAD_REJECTED;
    #[doc(hidden)]
    #[deprecated(note = "use `BulkheadEvent::BULKHEAD_RELEASED`")]
    pub const BulkheadReleased: Self = BulkheadEvent::BULKHEAD_RELEASED;
}
