//! The per-instance emitter every pattern handle owns.

use std::fmt;
use std::sync::Arc;

use super::{global, Event, EventBus, EventPayload};

/// Emits one instance's events to its own listeners and to the global bus.
pub(crate) struct Emitter {
    name: Arc<str>,
    local: EventBus,
}

impl Emitter {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            local: EventBus::new(),
        }
    }

    /// The instance's own listeners.
    pub(crate) fn local(&self) -> &EventBus {
        &self.local
    }

    /// Emits the event built by `payload`, which runs only if someone listens: with no
    /// listener, emitting costs one atomic load per bus and builds nothing.
    ///
    /// Callers must not hold a lock: listeners run here, synchronously.
    #[inline]
    pub(crate) fn emit<P: Into<EventPayload>>(&self, payload: impl FnOnce() -> P) {
        let bus = global();
        let local = self.local.is_active();
        let global = bus.is_active();
        if !(local || global) {
            return;
        }
        let event = Event::new(Arc::clone(&self.name), payload());
        if local {
            self.local.dispatch(&event);
        }
        if global {
            bus.dispatch(&event);
        }
    }
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("name", &self.name)
            .field("listeners", &self.local.listener_count())
            .finish()
    }
}
