//! Failure detectors: the rule that decides when a closed circuit opens.
//!
//! A detector sees the outcome of every counted call made while the circuit is closed and
//! answers one question: should the circuit open now? The built-in detectors are configured
//! through [`DetectorConfig`](super::DetectorConfig); anything else implements
//! [`FailureDetector`] (c-breaker's custom detector) and is plugged in with
//! [`CircuitBreakerBuilder::detector`](super::CircuitBreakerBuilder::detector).
//!
//! Detectors are plain data driven by the `now` they are given: no clock, no locks, no async.
//! The breaker calls them under its own lock, so they need no synchronisation of their own.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

mod combined;
mod consecutive;
mod count;
mod rate;
mod window;

pub(crate) use combined::Combined;
pub(crate) use consecutive::ConsecutiveFailures;
pub(crate) use count::FailureCount;
pub(crate) use rate::{Counted, RateDetector};
pub(crate) use window::CallWindow;

/// A completed call, as a detector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRecord {
    /// Whether the call failed (ignored calls never reach a detector).
    pub failed: bool,
    /// How long the call ran; present when the detector asked for durations
    /// ([`FailureDetector::needs_duration`]).
    pub duration: Option<Duration>,
}

#[cfg(test)]
impl CallRecord {
    /// A failed call of unknown duration.
    pub(crate) const FAILED: Self = Self {
        failed: true,
        duration: None,
    };
    /// A successful call of unknown duration.
    pub(crate) const SUCCEEDED: Self = Self {
        failed: false,
        duration: None,
    };
}

/// Decides when a closed circuit breaker opens.
///
/// Implement it for a custom rule. All methods take the current time as an argument, so a
/// detector is a pure state machine and can be tested without a runtime.
///
/// ```
/// use resilience::circuit_breaker::{CallRecord, DetectorState, FailureDetector, RestoreError};
/// use tokio::time::Instant;
///
/// /// Opens after `limit` more failures than successes (c-breaker's README example).
/// #[derive(Debug)]
/// struct Balance { score: i64, limit: i64 }
///
/// impl FailureDetector for Balance {
///     fn record(&mut self, call: CallRecord, _now: Instant) {
///         self.score = if call.failed { self.score + 1 } else { (self.score - 1).max(0) };
///     }
///     fn should_trip(&mut self, _now: Instant) -> bool { self.score >= self.limit }
///     fn reset(&mut self) { self.score = 0 }
///     fn snapshot(&self, _now: Instant) -> DetectorState {
///         DetectorState::new("balance").with_counters(vec![self.score as u64])
///     }
///     fn restore(&mut self, state: &DetectorState, _now: Instant) -> Result<(), RestoreError> {
///         state.expect_kind("balance")?;
///         self.score = *state.counters.first().ok_or(RestoreError::Malformed("counters"))? as i64;
///         Ok(())
///     }
/// }
/// ```
pub trait FailureDetector: fmt::Debug + Send + 'static {
    /// Records a call that completed while the circuit was closed.
    fn record(&mut self, call: CallRecord, now: Instant);

    /// Whether the circuit should open now. Asked after every recorded call.
    fn should_trip(&mut self, now: Instant) -> bool;

    /// Forgets everything, as when the circuit closes or is reset.
    fn reset(&mut self);

    /// Whether recording a success right now would leave the detector unchanged.
    ///
    /// The breaker asks this after each change; while it holds, successful calls in the closed
    /// state are recorded with atomics alone and take no lock. The default (`false`) is always
    /// correct, only slower.
    fn success_is_noop(&self) -> bool {
        false
    }

    /// Whether this detector wants call durations ([`CallRecord::duration`]). Measuring costs a
    /// clock read per call, so breakers only do it when asked.
    fn needs_duration(&self) -> bool {
        false
    }

    /// The detector's state, with times relative to `now`, for persistence or inspection
    /// (c-breaker's `get_state`).
    fn snapshot(&self, now: Instant) -> DetectorState;

    /// Loads a state taken by [`snapshot`](Self::snapshot) (c-breaker's `load_state`).
    fn restore(&mut self, state: &DetectorState, now: Instant) -> Result<(), RestoreError>;
}

/// A detector's state in a portable form: its kind, counters, and calls grouped by age.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DetectorState {
    /// The detector kind that wrote it, checked on restore.
    pub kind: String,
    /// Plain counters (for example the consecutive-failure count).
    pub counters: Vec<u64>,
    /// Recorded calls, grouped by age.
    pub calls: Vec<CallGroup>,
    /// The states of child detectors, for combined detectors.
    pub children: Vec<Self>,
}

impl DetectorState {
    /// An empty state of detector `kind`.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            ..Self::default()
        }
    }

    /// With these counters.
    #[must_use]
    pub fn with_counters(mut self, counters: Vec<u64>) -> Self {
        self.counters = counters;
        self
    }

    /// With these call groups.
    #[must_use]
    pub fn with_calls(mut self, calls: Vec<CallGroup>) -> Self {
        self.calls = calls;
        self
    }

    /// With these child states.
    #[must_use]
    pub fn with_children(mut self, children: Vec<Self>) -> Self {
        self.children = children;
        self
    }

    /// Fails unless the state was written by a detector of `kind`.
    pub fn expect_kind(&self, kind: &str) -> Result<(), RestoreError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(RestoreError::KindMismatch {
                expected: kind.to_owned(),
                found: self.kind.clone(),
            })
        }
    }
}

/// Calls recorded at about the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CallGroup {
    /// How long ago they were recorded (zero for count-based windows, which keep no time).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub age: Duration,
    /// How many calls.
    pub calls: u64,
    /// How many of them failed.
    pub failures: u64,
    /// How many of them were slow.
    pub slow: u64,
}

/// A [`DetectorState`] that does not fit the detector it was given to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The state was written by another kind of detector.
    KindMismatch {
        /// The kind this detector writes.
        expected: String,
        /// The kind found in the state.
        found: String,
    },
    /// A part of the state is missing or inconsistent; names the part.
    Malformed(&'static str),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KindMismatch { expected, found } => {
                write!(
                    f,
                    "detector state of kind {found:?} given to a {expected:?} detector"
                )
            }
            Self::Malformed(part) => write!(f, "detector state is malformed: {part}"),
        }
    }
}

impl std::error::Error for RestoreError {}
