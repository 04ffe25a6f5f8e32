//! Events: what every pattern instance reports, to its own listeners and to one global bus.
//!
//! Every pattern handle owns an [`EventBus`] (`handle.events()`); every event it emits also
//! goes to the process-wide bus returned by [`global()`]. An [`Event`] is one envelope (the
//! [`PatternKind`](crate::PatternKind), the instance name, the time) around a typed payload,
//! such as [`CircuitBreakerEvent`](crate::circuit_breaker::CircuitBreakerEvent).
//!
//! Listeners select events by typed [`EventKind`], by the seed libraries' string names
//! (`"state_change"`, `"circuit_opened"`, `"call_success"`, ..., `"*"` for all), and can be
//! removed with the [`ListenerId`] they were given. Async consumers take a
//! [`subscribe`](EventBus::subscribe) stream instead.
//!
//! # Costs and guarantees
//!
//! * With no listener on either bus, emitting costs one atomic load per bus and builds no event.
//! * A listener added before an emit sees it: nothing caches "nobody listens" (seed bug B2).
//! * Listeners never run under a pattern's lock, so a slow listener never stalls other callers.
//! * A panicking listener is caught and reported to the [error handler](crate::set_error_handler);
//!   it never reaches the protected call.
//! * [`Event::metadata`] holds every payload field (the seed's was always empty).
//!
//! # Example
//!
//! ```
//! use resilience::circuit_breaker::CircuitBreaker;
//! use resilience::events::EventKind;
//! use std::sync::{Arc, Mutex};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = CircuitBreaker::builder("payments").failure_threshold(1).build()?;
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = Arc::clone(&seen);
//! breaker.events().on(EventKind::CircuitOpened, move |event| {
//!     log.lock().unwrap().push(event.to_string());
//! });
//! let by_name = breaker.events().on_named("state_change", |event| {
//!     assert_eq!(event.metadata()["to"], "open");
//! })?;
//!
//! breaker.trip();
//! assert_eq!(seen.lock().unwrap().len(), 1);
//! breaker.events().remove(by_name);
//! # Ok(())
//! # }
//! ```

mod bus;
mod emitter;
mod event;
mod stream;

pub use bus::{EventBus, ListenerId};
pub use emitter::Emitter;
pub(crate) use event::Seconds;
pub use event::{Event, EventFilter, EventKind, EventPayload, UnknownEventName};
pub use stream::EventStream;

static GLOBAL: EventBus = EventBus::new();

/// The process-wide bus: it receives the events of every pattern instance.
pub fn global() -> &'static EventBus {
    &GLOBAL
}
