//! The event envelope: which pattern, which instance, when, and the pattern's own payload.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::{EventKind, Payload};
use crate::PatternKind;

/// One thing that happened in one pattern instance.
///
/// The envelope is the same for every pattern (which pattern, which instance, when); the
/// payload is the pattern's own typed event, which [`payload`](Self::payload) hands back by
/// type. Cloning is cheap: the name and the payload are shared.
#[derive(Debug, Clone)]
pub struct Event {
    name: Arc<str>,
    at: Instant,
    timestamp: SystemTime,
    kind: EventKind,
    // Shared rather than boxed so a clone per stream subscriber is a reference count.
    payload: Arc<dyn Payload>,
}

impl Event {
    /// An event of instance `name`, stamped now.
    pub fn new(name: Arc<str>, payload: impl Payload) -> Self {
        Self {
            name,
            at: Instant::now(),
            timestamp: wall_clock(),
            kind: payload.kind(),
            payload: Arc::new(payload),
        }
    }

    /// The pattern that emitted it.
    pub fn pattern(&self) -> PatternKind {
        self.kind.pattern()
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
        self.kind
    }

    /// When it happened, on the monotonic (and, in tests, pausable) tokio clock.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// When it happened, on the wall clock, for display and export only.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The typed payload, if it is a `P`: for example
    /// `event.payload::<CircuitBreakerEvent>()`.
    ///
    /// ```
    /// use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent, CircuitState};
    /// use resilience::retry::RetryEvent;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = CircuitBreaker::builder("payments").build()?;
    /// breaker.events().on(CircuitBreakerEvent::STATE_CHANGE, |event| {
    ///     assert!(event.payload::<RetryEvent>().is_none());
    ///     if let Some(CircuitBreakerEvent::StateChange { to, .. }) = event.payload::<CircuitBreakerEvent>() {
    ///         assert_eq!(*to, CircuitState::Open);
    ///     }
    /// });
    /// breaker.trip();
    /// # Ok(())
    /// # }
    /// ```
    pub fn payload<P: Payload>(&self) -> Option<&P> {
        let any: &dyn std::any::Any = &*self.payload;
        any.downcast_ref()
    }

    /// The payload whatever its type, for consumers that only read its
    /// [kind](Payload::kind) and [fields](Payload::visit_fields).
    pub fn payload_dyn(&self) -> &dyn Payload {
        &*self.payload
    }

    /// The payload's fields by name, rendered as strings (for logs and dynamic consumers).
    ///
    /// It holds every field of the event, for example `from`/`to` of a state change or
    /// `retry_after` of a rejection.
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
        write!(f, "{} {} {}", self.pattern(), self.name, self.kind)?;
        let mut result = Ok(());
        self.payload.visit_fields(&mut |key, value| {
            if result.is_ok() {
                result = write!(f, " {key}={value}");
            }
        });
        result
    }
}

/// Renders a duration as seconds, the unit of durations in event fields.
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
        map.serialize_entry("pattern_type", self.pattern().as_str())?;
        map.serialize_entry("event_type", self.kind.as_str())?;
        map.serialize_entry("pattern_name", self.name())?;
        map.serialize_entry("timestamp", &timestamp)?;
        for (key, value) in &metadata {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
