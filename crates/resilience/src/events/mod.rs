//! Events: what every pattern instance reports, to its own listeners and to one global bus.
//!
//! Every pattern handle owns an [`EventBus`] (`handle.events()`); every event it emits also
//! goes to the process-wide bus returned by [`global()`]. An [`Event`] is one envelope (the
//! [`PatternKind`](crate::PatternKind), the instance name, the time) around the pattern's own
//! typed payload, such as [`CircuitBreakerEvent`](crate::circuit_breaker::CircuitBreakerEvent),
//! which [`Event::payload`] hands back by type.
//!
//! Listeners select events by typed [`EventKind`] (each pattern declares its kinds next to its
//! event type: [`CircuitBreakerEvent::CIRCUIT_OPENED`](crate::circuit_breaker::CircuitBreakerEvent::CIRCUIT_OPENED),
//! [`RetryEvent::RETRY_ATTEMPT`](crate::retry::RetryEvent::RETRY_ATTEMPT), ...), by string
//! name (`"state_change"`, `"circuit_opened"`, `"call_success"`, ..., `"*"` for all), and can
//! be removed with the [`ListenerId`] they were given. Async consumers take a
//! [`subscribe`](EventBus::subscribe) stream instead.
//!
//! # Costs and guarantees
//!
//! * With no listener on either bus, emitting costs one atomic load per bus and builds no event.
//! * A listener added before an emit sees it: nothing caches "nobody listens".
//! * Listeners never run under a pattern's lock, so a slow listener never stalls other callers.
//! * A panicking listener is caught and reported to the [error handler](crate::set_error_handler);
//!   it never reaches the protected call.
//! * [`Event::metadata`] holds every payload field.
//!
//! # Example
//!
//! ```
//! use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent};
//! use std::sync::{Arc, Mutex};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = CircuitBreaker::builder("payments").failure_threshold(1).build()?;
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = Arc::clone(&seen);
//! breaker.events().on(CircuitBreakerEvent::CIRCUIT_OPENED, move |event| {
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
//!
//! # A pattern of your own
//!
//! This module knows no pattern: the built-in ones use it exactly as a pattern written in
//! another crate does. Such a pattern
//!
//! 1. defines its event type and implements [`Payload`] for it (its [kind](Payload::kind) and
//!    its [fields](Payload::visit_fields));
//! 2. declares its kinds as constants with [`EventKind::new`], naming its pattern with
//!    [`PatternKind::Custom`](crate::PatternKind::Custom), and calls [`register_kinds`] once so
//!    their names work in [`EventBus::on_named`] and [`EventFilter`]'s `FromStr`;
//! 3. gives its handle an [`Emitter`], returns [`Emitter::local`] from its `events()`, and
//!    emits with [`Emitter::emit`]`(|| payload)`, which builds nothing when nobody listens.
//!
//! Listeners then receive its events by typed kind, by name, with `"*"`, on the global bus and
//! through [`EventBus::subscribe`], and get the payload back with
//! [`Event::payload`]`::<TheirType>()`. The [`Emitter`] docs show a complete pattern.
//!
//! Why kinds are constants with bits rather than an enum: a bus must decide with one atomic
//! load whether anyone wants an event, so every kind needs a bit in a `u64`. The built-in kinds
//! each own a bit; kinds from other crates share the remaining bits by hashing their names,
//! which keeps them `const` and needs no set-up. Sharing a bit only costs time (the event is
//! built, then no listener matches it), never a wrong delivery: listeners match the whole kind.

use std::sync::LazyLock;

mod bus;
mod emitter;
mod event;
mod kind;
mod payload;
mod stream;

pub use bus::{EventBus, ListenerId};
pub use emitter::Emitter;
pub use event::Event;
pub(crate) use event::Seconds;
pub use kind::{
    known_kinds, register_kinds, EventFilter, EventKind, EventKindConflict, UnknownEventName,
};
pub use payload::Payload;
pub use stream::EventStream;

static GLOBAL: LazyLock<EventBus> = LazyLock::new(EventBus::new);

/// The process-wide bus: it receives the events of every pattern instance.
pub fn global() -> &'static EventBus {
    &GLOBAL
}
