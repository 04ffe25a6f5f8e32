//! The chaos events.

use std::fmt;
use std::time::Duration;

use crate::events::{EventKind, Payload, Seconds};
use crate::PatternKind;

/// Something a [`Chaos`](super::Chaos) injected into a call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChaosEvent {
    /// The call was replaced by an injected fault (an error).
    FaultInjected,
    /// The call was replaced by an injected outcome (a response).
    OutcomeInjected,
    /// The call was delayed before it ran.
    LatencyInjected {
        /// The delay.
        latency: Duration,
    },
    /// The behaviour hook ran before the call.
    BehaviorInjected,
}

impl ChaosEvent {
    /// `"chaos_fault_injected"`: a call was replaced by a fault.
    pub const FAULT_INJECTED: EventKind =
        EventKind::builtin(PatternKind::Chaos, "chaos_fault_injected", 31);
    /// `"chaos_outcome_injected"`: a call was replaced by an outcome.
    pub const OUTCOME_INJECTED: EventKind =
        EventKind::builtin(PatternKind::Chaos, "chaos_outcome_injected", 32);
    /// `"chaos_latency_injected"`: a call was delayed.
    pub const LATENCY_INJECTED: EventKind =
        EventKind::builtin(PatternKind::Chaos, "chaos_latency_injected", 33);
    /// `"chaos_behavior_injected"`: the behaviour hook ran before a call.
    pub const BEHAVIOR_INJECTED: EventKind =
        EventKind::builtin(PatternKind::Chaos, "chaos_behavior_injected", 34);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::FAULT_INJECTED,
        Self::OUTCOME_INJECTED,
        Self::LATENCY_INJECTED,
        Self::BEHAVIOR_INJECTED,
    ];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::FaultInjected => Self::FAULT_INJECTED,
            Self::OutcomeInjected => Self::OUTCOME_INJECTED,
            Self::LatencyInjected { .. } => Self::LATENCY_INJECTED,
            Self::BehaviorInjected => Self::BEHAVIOR_INJECTED,
        }
    }
}

impl Payload for ChaosEvent {
    fn kind(&self) -> EventKind {
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        if let Self::LatencyInjected { latency } = self {
            visit("latency", &Seconds(*latency));
        }
    }
}
