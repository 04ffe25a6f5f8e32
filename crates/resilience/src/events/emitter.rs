//! The per-instance emitter every pattern handle owns.

use std::fmt;
use std::sync::Arc;

use super::{global, Event, EventBus, EventPayload};

/// Emits one instance's events to its own listeners and to the global bus.
///
/// Every pattern handle owns one. It is public so that patterns in other crates (the Redis
/// backends, say) report through the same event system: their handles own an `Emitter`,
/// expose [`local`](Self::local) as their `events()`, and emit this crate's payloads.
pub struct Emitter {
    name: Arc<str>,
    local: EventBus,
}

impl Emitter {
    /// An emitter for the instance `name`, with no listener yet.
    pub fn new(name: Arc<str>) -> Self {
        Self {
            name,
            local: EventBus::new(),
        }
    }

    /// The instance's own listeners.
    pub fn local(&self) -> &EventBus {
        &self.local
    }

    /// Emits the event built by `payload`. With no listener on either bus, emitting costs one
    /// atomic load per bus and builds nothing; the payload is built only when someone listens,
    /// and the event (with its clock reads) only when someone wants its kind.
    ///
    /// Callers must not hold a lock: listeners run here, synchronously.
    #[inline]
    pub fn emit<P: Into<EventPayload>>(&self, payload: impl FnOnce() -> P) {
        let bus = global();
        let (local, global) = (self.local.wanted(), bus.wanted());
        if local | global == 0 {
            return;
        }
        let payload = payload().into();
        let bit = payload.kind().bit();
        let (to_local, to_global) = (local & bit != 0, global & bit != 0);
        if !(to_local || to_global) {
            return;
        }
        let event = Event::new(Arc::clone(&self.name), payload);
        if to_local {
            self.local.dispatch(&event);
        }
        if to_global {
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
