//! The circuit breaker's states and events.

use std::fmt;
use std::time::Duration;

use crate::events::{Event, EventKind, Payload, Seconds};
use crate::PatternKind;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CircuitState {
    /// Calls flow and their outcomes feed the failure detector.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of trial calls (probes) decide whether to close or reopen.
    HalfOpen,
    /// Opened by an operator ([`force_open`](super::CircuitBreaker::force_open)); only
    /// [`reset`](super::CircuitBreaker::reset) closes it.
    ForcedOpen,
    /// [`disable`](super::CircuitBreaker::disable)d: every call is admitted and only metrics
    /// are kept.
    Disabled,
}

impl CircuitState {
    /// The state's name in `snake_case` (`"closed"`, `"open"`, `"half_open"`, ...); never a
    /// digit, so response bodies and logs stay readable.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }

    /// Whether calls are being rejected wholesale in this state.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::ForcedOpen)
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened in a circuit breaker.
///
/// Every transition emits [`StateChange`](Self::StateChange) followed by the event of the
/// state entered ([`CircuitOpened`](Self::CircuitOpened), [`CircuitHalfOpen`](Self::CircuitHalfOpen)
/// or [`CircuitClosed`](Self::CircuitClosed)), so listeners can follow either the generic or the
/// specific name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CircuitBreakerEvent {
    /// The breaker moved from one state to another.
    StateChange {
        /// The state left.
        from: CircuitState,
        /// The state entered.
        to: CircuitState,
        /// Consecutive failures at the time of the transition.
        failure_count: u64,
        /// Consecutive successes at the time of the transition.
        success_count: u64,
    },
    /// The breaker opened and rejects calls for `open_for`.
    CircuitOpened {
        /// The state it opened from.
        from: CircuitState,
        /// How long it stays open (grows on repeated trips when configured).
        open_for: Duration,
        /// Consecutive trips without closing in between, this one included.
        trips: u32,
    },
    /// The breaker became half-open and admits probes.
    CircuitHalfOpen,
    /// The breaker closed.
    CircuitClosed {
        /// The state it closed from.
        from: CircuitState,
    },
    /// A call succeeded.
    CallSuccess {
        /// The state the call was admitted in.
        state: CircuitState,
        /// How long it ran, when the breaker measures durations (slow-call detection).
        duration: Option<Duration>,
    },
    /// A call failed and the failure was counted.
    CallFailure {
        /// The state the call was admitted in.
        state: CircuitState,
        /// Consecutive failures, this one included.
        failure_count: u64,
    },
    /// A call was rejected without running.
    CallRejected {
        /// The state that rejected it.
        state: CircuitState,
        /// When a call may be admitted again, if known.
        retry_after: Option<Duration>,
    },
    /// The breaker was reset by hand to closed, with fresh counters.
    CircuitReset {
        /// The state before the reset.
        from: CircuitState,
    },
}

impl CircuitBreakerEvent {
    /// `"state_change"`: a circuit breaker moved between states (any transition).
    pub const STATE_CHANGE: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "state_change", 0);
    /// `"circuit_opened"`: a circuit breaker opened.
    pub const CIRCUIT_OPENED: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "circuit_opened", 1);
    /// `"circuit_closed"`: a circuit breaker closed.
    pub const CIRCUIT_CLOSED: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "circuit_closed", 2);
    /// `"circuit_half_open"`: a circuit breaker became half-open.
    pub const CIRCUIT_HALF_OPEN: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "circuit_half_open", 3);
    /// `"call_success"`: a call through a circuit breaker succeeded.
    pub const CALL_SUCCESS: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "call_success", 4);
    /// `"call_failure"`: a call through a circuit breaker failed (counted as a failure).
    pub const CALL_FAILURE: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "call_failure", 5);
    /// `"call_rejected"`: a circuit breaker rejected a call.
    pub const CALL_REJECTED: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "call_rejected", 6);
    /// `"circuit_reset"`: a circuit breaker was reset by hand.
    pub const CIRCUIT_RESET: EventKind =
        EventKind::builtin(PatternKind::CircuitBreaker, "circuit_reset", 7);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::STATE_CHANGE,
        Self::CIRCUIT_OPENED,
        Self::CIRCUIT_CLOSED,
        Self::CIRCUIT_HALF_OPEN,
        Self::CALL_SUCCESS,
        Self::CALL_FAILURE,
        Self::CALL_REJECTED,
        Self::CIRCUIT_RESET,
    ];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::StateChange { .. } => Self::STATE_CHANGE,
            Self::CircuitOpened { .. } => Self::CIRCUIT_OPENED,
            Self::CircuitHalfOpen => Self::CIRCUIT_HALF_OPEN,
            Self::CircuitClosed { .. } => Self::CIRCUIT_CLOSED,
            Self::CallSuccess { .. } => Self::CALL_SUCCESS,
            Self::CallFailure { .. } => Self::CALL_FAILURE,
            Self::CallRejected { .. } => Self::CALL_REJECTED,
            Self::CircuitReset { .. } => Self::CIRCUIT_RESET,
        }
    }
}

impl Payload for CircuitBreakerEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::StateChange {
                from,
                to,
                failure_count,
                success_count,
            } => {
                visit("from", from);
                visit("to", to);
                visit("failure_count", failure_count);
                visit("success_count", success_count);
            }
            Self::CircuitOpened {
                from,
                open_for,
                trips,
            } => {
                visit("from", from);
                visit("open_for", &Seconds(*open_for));
                visit("trips", trips);
            }
            Self::CircuitHalfOpen => {}
            Self::CircuitClosed { from } | Self::CircuitReset { from } => visit("from", from),
            Self::CallSuccess { state, duration } => {
                visit("state", state);
                if let Some(duration) = duration {
                    visit("duration", &Seconds(*duration));
                }
            }
            Self::CallFailure {
                state,
                failure_count,
            } => {
                visit("state", state);
                visit("failure_count", failure_count);
            }
            Self::CallRejected { state, retry_after } => {
                visit("state", state);
                if let Some(after) = retry_after {
                    visit("retry_after", &Seconds(*after));
                }
            }
        }
    }
}

impl Event {
    /// The circuit-breaker payload, if this is a circuit-breaker event: a shorthand for
    /// [`payload::<CircuitBreakerEvent>()`](Event::payload).
    pub fn as_circuit_breaker(&self) -> Option<&CircuitBreakerEvent> {
        self.payload()
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::STATE_CHANGE`")]
    pub const StateChange: Self = CircuitBreakerEvent::STATE_CHANGE;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CIRCUIT_OPENED`")]
    pub const CircuitOpened: Self = CircuitBreakerEvent::CIRCUIT_OPENED;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CIRCUIT_CLOSED`")]
    pub const CircuitClosed: Self = CircuitBreakerEvent::CIRCUIT_CLOSED;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CIRCUIT_HALF_OPEN`")]
    pub const CircuitHalfOpen: Self = CircuitBreakerEvent::CIRCUIT_HALF_OPEN;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CALL_SUCCESS`")]
    pub const CallSuccess: Self = CircuitBreakerEvent::CALL_SUCCESS;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CALL_FAILURE`")]
    pub const CallFailure: Self = CircuitBreakerEvent::CALL_FAILURE;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CALL_REJECTED`")]
    pub const CallRejected: Self = CircuitBreakerEvent::CALL_REJECTED;
    #[doc(hidden)]
    #[deprecated(note = "use `CircuitBreakerEvent::CIRCUIT_RESET`")]
    pub const CircuitReset: Self = CircuitBreakerEvent::CIRCUIT_RESET;
}
