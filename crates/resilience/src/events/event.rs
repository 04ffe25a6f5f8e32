//! The event envelope, the per-pattern payloads and the names listeners select them by.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::adaptive::AdaptiveEvent;
use crate::backpressure::BackpressureEvent;
use crate::bulkhead::BulkheadEvent;
use crate::circuit_breaker::CircuitBreakerEvent;
use crate::fallback::FallbackEvent;
use crate::load_shed::LoadShedderEvent;
use crate::rate_limit::RateLimiterEvent;
use crate::retry::RetryEvent;
use crate::timeout::TimeoutEvent;
use crate::PatternKind;

/// One thing that happened in one pattern instance.
///
/// The envelope is the same for every pattern (which pattern, which instance, when); the
/// payload is the pattern's own typed event. Cloning is cheap: the name is shared.
#[derive(Debug, Clone)]
pub struct Event {
    pattern: PatternKind,
    name: Arc<str>,
    at: Instant,
    timestamp: SystemTime,
    payload: EventPayload,
}

/// The typed payload of an [`Event`], one variant per pattern.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventPayload {
    /// An event of a [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker).
    CircuitBreaker(CircuitBreakerEvent),
    /// An event of a retry policy.
    Retry(RetryEvent),
    /// An event of a timeout or deadline.
    Timeout(TimeoutEvent),
    /// An event of a fallback.
    Fallback(FallbackEvent),
    /// An event of a bulkhead.
    Bulkhead(BulkheadEvent),
    /// An event of a load shedder.
    LoadShedder(LoadShedderEvent),
    /// An event of a backpressure controller.
    Backpressure(BackpressureEvent),
    /// An event of an adaptive concurrency limiter.
    Adaptive(AdaptiveEvent),
    /// An event of a rate limiter.
    RateLimiter(RateLimiterEvent),
}

impl EventPayload {
    /// The pattern that emits this payload.
    pub fn pattern(&self) -> PatternKind {
        match self {
            Self::CircuitBreaker(_) => PatternKind::CircuitBreaker,
            Self::Retry(_) => PatternKind::Retry,
            Self::Timeout(_) => PatternKind::Timeout,
            Self::Fallback(_) => PatternKind::Fallback,
            Self::Bulkhead(_) => PatternKind::Bulkhead,
            Self::LoadShedder(_) => PatternKind::LoadShedder,
            Self::Backpressure(_) => PatternKind::Backpressure,
            Self::Adaptive(_) => PatternKind::AdaptiveConcurrency,
            Self::RateLimiter(_) => PatternKind::RateLimiter,
        }
    }

    /// The payload's kind, by which listeners select it.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::CircuitBreaker(event) => event.kind(),
            Self::Retry(event) => event.kind(),
            Self::Timeout(event) => event.kind(),
            Self::Fallback(event) => event.kind(),
            Self::Bulkhead(event) => event.kind(),
            Self::LoadShedder(event) => event.kind(),
            Self::Backpressure(event) => event.kind(),
            Self::Adaptive(event) => event.kind(),
            Self::RateLimiter(event) => event.kind(),
        }
    }

    /// Visits every field of the payload as `(name, value)`.
    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::CircuitBreaker(event) => event.visit_fields(visit),
            Self::Retry(event) => event.visit_fields(visit),
            Self::Timeout(event) => event.visit_fields(visit),
            Self::Fallback(event) => event.visit_fields(visit),
            Self::Bulkhead(event) => event.visit_fields(visit),
            Self::LoadShedder(event) => event.visit_fields(visit),
            Self::Backpressure(event) => event.visit_fields(visit),
            Self::Adaptive(event) => event.visit_fields(visit),
            Self::RateLimiter(event) => event.visit_fields(visit),
        }
    }
}

macro_rules! payload_from {
    ($($event:ty => $variant:ident,)*) => {$(
        impl From<$event> for EventPayload {
            fn from(event: $event) -> Self {
                Self::$variant(event)
            }
        }
    )*};
}

payload_from! {
    CircuitBreakerEvent => CircuitBreaker,
    RetryEvent => Retry,
    TimeoutEvent => Timeout,
    FallbackEvent => Fallback,
    BulkheadEvent => Bulkhead,
    LoadShedderEvent => LoadShedder,
    BackpressureEvent => Backpressure,
    AdaptiveEvent => Adaptive,
    RateLimiterEvent => RateLimiter,
}

impl Event {
    /// An event of instance `name`, stamped now.
    pub fn new(name: Arc<str>, payload: impl Into<EventPayload>) -> Self {
        let payload = payload.into();
        Self {
            pattern: payload.pattern(),
            name,
            at: Instant::now(),
            timestamp: wall_clock(),
            payload,
        }
    }

    /// The pattern that emitted it.
    pub fn pattern(&self) -> PatternKind {
        self.pattern
    }

    /// The name of the instance that emitted it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// What happened, as a kind listeners can select.
    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    /// When it happened, on the monotonic (and, in tests, pausable) tokio clock.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// When it happened, on the wall clock, for display and export only.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The typed payload.
    pub fn payload(&self) -> &EventPayload {
        &self.payload
    }

    /// The circuit-breaker payload, if this is a circuit-breaker event.
    pub fn as_circuit_breaker(&self) -> Option<&CircuitBreakerEvent> {
        match &self.payload {
            EventPayload::CircuitBreaker(event) => Some(event),
            _ => None,
        }
    }

    /// The payload's fields by name, rendered as strings (for logs and dynamic consumers).
    ///
    /// Unlike the seed's always-empty `metadata`, this holds every field of the event, for
    /// example `from`/`to` of a state change or `retry_after` of a rejection.
    pub fn metadata(&self) -> BTreeMap<&'static str, String> {
        let mut fields = BTreeMap::new();
        self.payload.visit_fields(&mut |key, value| {
            fields.insert(key, value.to_string());
        });
        fields
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.pattern, self.name, self.kind())?;
        let mut result = Ok(());
        self.payload.visit_fields(&mut |key, value| {
            if result.is_ok() {
                result = write!(f, " {key}={value}");
            }
        });
        result
    }
}

/// Renders a duration as seconds, the seed's unit in event fields.
pub(crate) struct Seconds(pub(crate) std::time::Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "a wall-clock stamp for display and export; durations use the tokio clock"
)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}

#[cfg(feature = "serde")]
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let timestamp = self
            .timestamp
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let metadata = self.metadata();
        let mut map = serializer.serialize_map(Some(4 + metadata.len()))?;
        map.serialize_entry("pattern_type", self.pattern.as_str())?;
        map.serialize_entry("event_type", self.kind().as_str())?;
        map.serialize_entry("pattern_name", self.name())?;
        map.serialize_entry("timestamp", &timestamp)?;
        for (key, value) in &metadata {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The kind of an event, by which listeners select what they receive.
        ///
        /// Each kind has the string name the seed libraries use (`"state_change"`,
        /// `"circuit_opened"`, ...), accepted by [`EventFilter`]'s `FromStr`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(Self::$variant,)*];

            /// This kind's bit in a set of kinds.
            pub(crate) const fn bit(self) -> u64 {
                1 << (self as u32)
            }

            /// The seed's string name of this kind.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    /// A circuit breaker moved between states (any transition).
    StateChange => "state_change",
    /// A circuit breaker opened.
    CircuitOpened => "circuit_opened",
    /// A circuit breaker closed.
    CircuitClosed => "circuit_closed",
    /// A circuit breaker became half-open.
    CircuitHalfOpen => "circuit_half_open",
    /// A call through a circuit breaker succeeded.
    CallSuccess => "call_success",
    /// A call through a circuit breaker failed (counted as a failure).
    CallFailure => "call_failure",
    /// A circuit breaker rejected a call.
    CallRejected => "call_rejected",
    /// A circuit breaker was reset by hand.
    CircuitReset => "circuit_reset",
    /// A retry policy will make another attempt.
    RetryAttempt => "retry_attempt",
    /// A retried operation succeeded.
    RetrySuccess => "retry_success",
    /// A retry policy gave up.
    RetryExhausted => "retry_exhausted",
    /// An operation finished within its timeout.
    TimeoutSuccess => "timeout_success",
    /// An operation exceeded its timeout.
    TimeoutExceeded => "timeout_exceeded",
    /// A fallback answered for a failed operation.
    FallbackTriggered => "fallback_triggered",
    /// Every fallback failed.
    FallbackFailed => "fallback_failed",
    /// A bulkhead gave a call a slot.
    BulkheadAccepted => "bulkhead_accepted",
    /// A bulkhead refused a call.
    BulkheadRejected => "bulkhead_rejected",
    /// A call gave its bulkhead slot back.
    BulkheadReleased => "bulkhead_released",
    /// A load shedder accepted a request.
    RequestAccepted => "request_accepted",
    /// A load shedder shed a request.
    RequestShed => "request_shed",
    /// Backpressure turned on at the high water mark.
    BackpressureHigh => "backpressure_high",
    /// Backpressure turned off at the low water mark.
    BackpressureLow => "backpressure_low",
    /// An adaptive limiter changed its limit.
    LoadLevelChange => "load_level_change",
    /// A rate limiter allowed a request.
    RateLimitPassed => "rate_limit_passed",
    /// A rate limiter denied a request.
    RateLimitExceeded => "rate_limit_exceeded",
    /// A distributed rate limiter's backend could not decide; its failure policy did.
    RateLimitBackendUnavailable => "rate_limit_backend_unavailable",
}

// A bus keeps the kinds its listeners want in one `u64`.
const _: () = assert!(EventKind::ALL.len() <= 64);

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which events a listener receives: one kind, or all of them (`"*"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFilter {
    /// Every event.
    All,
    /// Only events of this kind.
    Kind(EventKind),
}

impl EventFilter {
    /// Whether an event of `kind` passes this filter.
    pub fn matches(self, kind: EventKind) -> bool {
        match self {
            Self::All => true,
            Self::Kind(wanted) => wanted == kind,
        }
    }
}

impl From<EventKind> for EventFilter {
    fn from(kind: EventKind) -> Self {
        Self::Kind(kind)
    }
}

/// A string that names no event kind (and is not `"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEventName(pub String);

impl fmt::Display for UnknownEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown event name {:?}", self.0)
    }
}

impl std::error::Error for UnknownEventName {}

impl FromStr for EventFilter {
    type Err = UnknownEventName;

    /// Parses `"*"` or a seed event name such as `"state_change"`, ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        if name == "*" {
            return Ok(Self::All);
        }
        EventKind::ALL
            .iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .map(|&kind| Self::Kind(kind))
            .ok_or_else(|| UnknownEventName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_seed_names_and_wildcard() {
        assert_eq!("*".parse(), Ok(EventFilter::All));
        assert_eq!(
            "state_change".parse(),
            Ok(EventFilter::Kind(EventKind::StateChange))
        );
        assert_eq!(
            " Circuit_Opened ".parse(),
            Ok(EventFilter::Kind(EventKind::CircuitOpened))
        );
        assert!("circuit_openned".parse::<EventFilter>().is_err());
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for &kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(EventFilter::Kind(kind)));
        }
    }
}
