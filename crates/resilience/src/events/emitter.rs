//! The per-instance emitter every pattern handle owns.

use std::fmt;
use std::sync::Arc;

use super::{global, Event, EventBus, EventKind, Payload};

/// Emits one instance's events to its own listeners and to the global bus.
///
/// Every pattern handle of this crate owns one, and so should a pattern written in another
/// crate: its handle owns an `Emitter`, returns [`local`](Self::local) from its `events()`, and
/// emits its own [`Payload`] type (or one of this crate's, as a rate limiter backed by another
/// store emits [`RateLimiterEvent`](crate::rate_limit::RateLimiterEvent)s). Its listeners, the
/// global bus, string names and streams then work as they do for the built-in patterns.
///
/// ```
/// use std::fmt;
/// use std::sync::Arc;
/// use resilience::events::{self, Emitter, EventBus, EventKind, Payload};
/// use resilience::PatternKind;
///
/// /// The events of a hedging pattern defined in this (user) crate.
/// #[derive(Debug, Clone, PartialEq)]
/// pub enum HedgeEvent {
///     /// A hedged request was sent after `after_ms`.
///     Fired { after_ms: u64 },
/// }
///
/// impl HedgeEvent {
///     pub const FIRED: EventKind = EventKind::new(PatternKind::Custom("hedge"), "hedge_fired");
///     pub const KINDS: &'static [EventKind] = &[Self::FIRED];
/// }
///
/// impl Payload for HedgeEvent {
///     fn kind(&self) -> EventKind {
///         match self {
///             Self::Fired { .. } => Self::FIRED,
///         }
///     }
///     fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
///         match self {
///             Self::Fired { after_ms } => visit("after_ms", after_ms),
///         }
///     }
/// }
///
/// /// The pattern's handle.
/// pub struct Hedge {
///     emitter: Emitter,
/// }
///
/// impl Hedge {
///     pub fn new(name: &str) -> Self {
///         // Once per process is enough; later calls are no-ops.
///         events::register_kinds(HedgeEvent::KINDS).expect("hedge_fired is a fresh name");
///         Self { emitter: Emitter::new(Arc::from(name)) }
///     }
///
///     pub fn events(&self) -> &EventBus {
///         self.emitter.local()
///     }
///
///     fn fire(&self, after_ms: u64) {
///         // The closure runs only if someone listens.
///         self.emitter.emit(|| HedgeEvent::Fired { after_ms });
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hedge = Hedge::new("search");
/// hedge.events().on_named("hedge_fired", |event| {
///     assert_eq!(event.pattern(), PatternKind::Custom("hedge"));
///     assert_eq!(event.payload::<HedgeEvent>(), Some(&HedgeEvent::Fired { after_ms: 20 }));
///     assert_eq!(event.metadata()["after_ms"], "20");
/// })?;
/// hedge.fire(20);
/// # Ok(())
/// # }
/// ```
pub struct Emitter {
    name: Arc<str>,
    local: EventBus,
    /// The process-wide bus, looked up once: every check of its listeners is then one load,
    /// not a pass through its lazy initialisation.
    global: &'static EventBus,
}

impl Emitter {
    /// An emitter for the instance `name`, with no listener yet.
    pub fn new(name: Arc<str>) -> Self {
        Self {
            name,
            local: EventBus::new(),
            global: global(),
        }
    }

    /// The instance's name, as events carry it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The instance's own listeners: what the pattern's `events()` returns.
    pub fn local(&self) -> &EventBus {
        &self.local
    }

    /// Whether some listener, here or on the global bus, may want events of `kind`.
    ///
    /// Costs one atomic load per bus. Useful before work that only an event needs, such as
    /// reading the clock for a duration field. It may answer `true` for a kind from another
    /// crate that nobody wants (such kinds share bits), never `false` for a wanted one.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        (self.local.wanted() | self.global.wanted()) & kind.mask() != 0
    }

    /// Emits the event built by `payload`.
    ///
    /// With no listener on either bus, emitting costs one atomic load per bus and builds
    /// nothing: `payload` is called only when someone listens, and the event (its clock reads
    /// and the one allocation that shares the payload between listeners) only when someone
    /// wants the payload's kind.
    ///
    /// Callers must not hold a lock: listeners run here, synchronously.
    #[inline]
    pub fn emit<P: Payload>(&self, payload: impl FnOnce() -> P) {
        let bus = self.global;
        let (local, global) = (self.local.wanted(), bus.wanted());
        if local | global == 0 {
            return;
        }
        let payload = payload();
        let bit = payload.kind().mask();
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
