//! [`Payload`]: what a pattern's own event type implements to travel in an [`Event`](super::Event).

use std::any::Any;
use std::fmt;

use super::EventKind;

/// A pattern's own event type, carried by an [`Event`](super::Event).
///
/// Every pattern of this crate implements it for its event enum
/// ([`CircuitBreakerEvent`](crate::circuit_breaker::CircuitBreakerEvent),
/// [`RetryEvent`](crate::retry::RetryEvent), ...), and a pattern written in another crate
/// implements it for its own type; the event system needs nothing else to deliver it. Listeners
/// get the concrete type back with [`Event::payload`](super::Event::payload).
///
/// There is no separate `pattern()`: the pattern comes with the [kind](Self::kind), so an event
/// can never claim one pattern and a kind of another.
///
/// See the [module docs](super#a-pattern-of-your-own) for how a pattern brings its own.
pub trait Payload: Any + fmt::Debug + Send + Sync {
    /// What happened, as the kind listeners select by. Its [`pattern`](EventKind::pattern)
    /// becomes the event's [`pattern`](super::Event::pattern).
    fn kind(&self) -> EventKind;

    /// Calls `visit` with each field as `(name, value)`, in a stable order.
    ///
    /// These become the event's [`metadata`](super::Event::metadata), its `Display` form and
    /// its serialized fields, so names should be `snake_case` and durations rendered in
    /// seconds, as the built-in patterns do.
    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display));
}
