//! The hedging pattern's events.

use std::fmt;
use std::time::Duration;

use crate::events::{EventKind, Payload, Seconds};
use crate::PatternKind;

/// Something that happened in a hedged call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeEvent {
    /// An extra attempt was started.
    HedgeAttempt {
        /// The attempt that started, 1-based: the primary is attempt 1, the first extra
        /// attempt 2.
        attempt: u32,
        /// Time since the call started.
        after: Duration,
        /// Why it started now.
        trigger: HedgeTrigger,
    },
    /// An extra attempt was due but the budget refused it; no more will start in this call.
    HedgeSkipped {
        /// The attempt that did not start.
        attempt: u32,
    },
    /// An attempt's result was accepted; every other attempt was cancelled.
    HedgeSuccess {
        /// The attempt whose result was accepted.
        attempt: u32,
        /// Attempts started in the call.
        attempts: u32,
    },
    /// Every attempt failed; the call returns the last failure.
    HedgeFailure {
        /// Attempts started in the call.
        attempts: u32,
    },
}

/// Why an extra attempt started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum HedgeTrigger {
    /// The delay passed without an acceptable answer.
    Delay,
    /// Parallel mode: every attempt starts at once.
    Parallel,
    /// A running attempt failed.
    Failure,
}

impl HedgeTrigger {
    /// The trigger in `snake_case`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delay => "delay",
            Self::Parallel => "parallel",
            Self::Failure => "failure",
        }
    }
}

impl fmt::Display for HedgeTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HedgeEvent {
    /// `"hedge_attempt"`: an extra attempt started.
    pub const HEDGE_ATTEMPT: EventKind =
        EventKind::builtin(PatternKind::Hedge, "hedge_attempt", 40);
    /// `"hedge_skipped"`: the budget refused an extra attempt.
    pub const HEDGE_SKIPPED: EventKind =
        EventKind::builtin(PatternKind::Hedge, "hedge_skipped", 41);
    /// `"hedge_success"`: a hedged call got an acceptable result.
    pub const HEDGE_SUCCESS: EventKind =
        EventKind::builtin(PatternKind::Hedge, "hedge_success", 42);
    /// `"hedge_failure"`: every attempt of a hedged call failed.
    pub const HEDGE_FAILURE: EventKind =
        EventKind::builtin(PatternKind::Hedge, "hedge_failure", 43);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::HEDGE_ATTEMPT,
        Self::HEDGE_SKIPPED,
        Self::HEDGE_SUCCESS,
        Self::HEDGE_FAILURE,
    ];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::HedgeAttempt { .. } => Self::HEDGE_ATTEMPT,
            Self::HedgeSkipped { .. } => Self::HEDGE_SKIPPED,
            Self::HedgeSuccess { .. } => Self::HEDGE_SUCCESS,
            Self::HedgeFailure { .. } => Self::HEDGE_FAILURE,
        }
    }
}

impl Payload for HedgeEvent {
    fn kind(&self) -> EventKind {
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::HedgeAttempt {
                attempt,
                after,
                trigger,
            } => {
                visit("attempt", attempt);
                visit("after", &Seconds(*after));
                visit("trigger", trigger);
            }
            Self::HedgeSkipped { attempt } => visit("attempt", attempt),
            Self::HedgeSuccess { attempt, attempts } => {
                visit("attempt", attempt);
                visit("attempts", attempts);
            }
            Self::HedgeFailure { attempts } => visit("attempts", attempts),
        }
    }
}
