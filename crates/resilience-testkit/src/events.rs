//! [`EventRecorder`]: records events in order so tests can assert the exact sequence.

use std::sync::{Arc, Mutex, MutexGuard};

use resilience::events::{Event, EventBus, EventFilter, EventKind, ListenerId};

/// Records every event of a bus (a pattern's own `events()` or the global one), in the order
/// they were emitted.
///
/// ```
/// use resilience::circuit_breaker::CircuitBreaker;
/// use resilience_testkit::EventRecorder;
///
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let recorder = EventRecorder::attach(breaker.events());
/// breaker.trip();
/// assert_eq!(recorder.names(), ["state_change", "circuit_opened"]);
/// ```
#[derive(Debug, Clone)]
pub struct EventRecorder {
    events: Arc<Mutex<Vec<Event>>>,
    id: ListenerId,
}

impl EventRecorder {
    /// Starts recording every event of `bus`.
    pub fn attach(bus: &EventBus) -> Self {
        Self::attach_filtered(bus, EventFilter::All)
    }

    /// Starts recording the events of `bus` that pass `filter`.
    pub fn attach_filtered(bus: &EventBus, filter: impl Into<EventFilter>) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let id = bus.on(filter, move |event: &Event| lock(&sink).push(event.clone()));
        Self { events, id }
    }

    /// Stops recording from `bus` (the one it was attached to).
    pub fn detach(&self, bus: &EventBus) {
        bus.remove(self.id);
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The kinds of the events recorded so far.
    pub fn kinds(&self) -> Vec<EventKind> {
        lock(&self.events).iter().map(Event::kind).collect()
    }

    /// The string names of the events recorded so far (`"state_change"`, ...), as aioresilience
    /// spells them.
    pub fn names(&self) -> Vec<&'static str> {
        lock(&self.events)
            .iter()
            .map(|event| event.kind().as_str())
            .collect()
    }

    /// The recorded events from instance `name` only (useful on the global bus).
    pub fn names_from(&self, name: &str) -> Vec<&'static str> {
        lock(&self.events)
            .iter()
            .filter(|event| event.name() == name)
            .map(|event| event.kind().as_str())
            .collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        lock(&self.events).clear();
    }
}

fn lock(events: &Mutex<Vec<Event>>) -> MutexGuard<'_, Vec<Event>> {
    events.lock().unwrap_or_else(|poison| poison.into_inner())
}
