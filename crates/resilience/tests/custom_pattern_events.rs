//! A pattern written outside the core crate brings its own event payload and kinds, and every
//! way of listening works for it as for the built-in patterns: typed kind, string name, `"*"`,
//! the global bus, `subscribe()` streams, downcasting, metadata and display. Its handle lives in
//! a `Registry` like the built-in ones.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use resilience::circuit_breaker::CircuitBreakerEvent;
use resilience::events::{self, Emitter, EventBus, EventFilter, EventKind, Payload};
use resilience::registry::{Registered, Registry, RegistryError};
use resilience::{ConfigError, PatternKind};
use resilience_testkit::EventRecorder;

const HEDGE: PatternKind = PatternKind::Custom("hedge");

/// The events of a hedging pattern: nothing in the core knows this type.
#[derive(Debug, Clone, PartialEq)]
enum HedgeEvent {
    /// A second request was sent because the first was slow.
    Fired { after: Duration, in_flight: u32 },
    /// The hedged request answered first.
    Won { attempt: u32 },
}

impl HedgeEvent {
    const FIRED: EventKind = EventKind::new(HEDGE, "hedge_fired");
    const WON: EventKind = EventKind::new(HEDGE, "hedge_won");
    const KINDS: &'static [EventKind] = &[Self::FIRED, Self::WON];
}

impl Payload for HedgeEvent {
    fn kind(&self) -> EventKind {
        match self {
            Self::Fired { .. } => Self::FIRED,
            Self::Won { .. } => Self::WON,
        }
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::Fired { after, in_flight } => {
                visit("after", &after.as_secs_f64());
                visit("in_flight", in_flight);
            }
            Self::Won { attempt } => visit("attempt", attempt),
        }
    }
}

/// The pattern's handle, shaped as the built-in ones are.
struct Hedge {
    emitter: Emitter,
}

impl Hedge {
    fn new(name: &str) -> Self {
        events::register_kinds(HedgeEvent::KINDS).expect("the hedge's names are fresh");
        Self {
            emitter: Emitter::new(Arc::from(name)),
        }
    }

    fn events(&self) -> &EventBus {
        self.emitter.local()
    }

    /// Emits `event`, counting how often the payload is actually built.
    fn report(&self, event: HedgeEvent, built: &AtomicUsize) {
        self.emitter.emit(|| {
            built.fetch_add(1, Ordering::SeqCst);
            event
        });
    }
}

fn fired() -> HedgeEvent {
    HedgeEvent::Fired {
        after: Duration::from_millis(20),
        in_flight: 2,
    }
}

/// Held by the tests that listen on the global bus, and by the one that needs nobody
/// listening anywhere: a global listener makes every payload built.
static GLOBAL_BUS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_pattern_from_another_crate_is_heard_every_way() {
    let _global = GLOBAL_BUS.lock().await;
    let hedge = Hedge::new("search");
    let built = AtomicUsize::new(0);

    // Nobody listens: the payload is not even built.
    hedge.report(fired(), &built);
    assert_eq!(built.load(Ordering::SeqCst), 0);

    // Typed kind, with the payload downcast back to its own type.
    let typed = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&typed);
    hedge.events().on(HedgeEvent::FIRED, move |event| {
        log.lock()
            .unwrap()
            .push(event.payload::<HedgeEvent>().cloned());
    });
    // String name, ASCII case ignored as for the built-in names.
    let by_name =
        EventRecorder::attach_filtered(hedge.events(), "Hedge_Won".parse::<EventFilter>().unwrap());
    let named = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&named);
    hedge
        .events()
        .on_named("hedge_fired", move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    // Wildcard, by filter and by name.
    let all = EventRecorder::attach(hedge.events());
    let star = EventRecorder::attach_filtered(hedge.events(), "*".parse::<EventFilter>().unwrap());
    // Stream.
    let mut stream = hedge.events().subscribe(HedgeEvent::WON);
    // A listener for a built-in kind hears nothing of the hedge.
    let breaker_only =
        EventRecorder::attach_filtered(hedge.events(), CircuitBreakerEvent::STATE_CHANGE);

    hedge.report(fired(), &built);
    hedge.report(HedgeEvent::Won { attempt: 2 }, &built);
    assert_eq!(built.load(Ordering::SeqCst), 2);

    assert_eq!(*typed.lock().unwrap(), [Some(fired())]);
    assert_eq!(named.load(Ordering::SeqCst), 1);
    assert_eq!(by_name.names(), ["hedge_won"]);
    assert_eq!(all.names(), ["hedge_fired", "hedge_won"]);
    assert_eq!(star.kinds(), [HedgeEvent::FIRED, HedgeEvent::WON]);
    assert!(breaker_only.events().is_empty());

    let won = stream.next().await.expect("the stream is open");
    assert_eq!(won.kind(), HedgeEvent::WON);
    assert_eq!(won.pattern(), HEDGE);
    assert_eq!(won.name(), "search");
    assert_eq!(
        won.payload::<HedgeEvent>(),
        Some(&HedgeEvent::Won { attempt: 2 })
    );
    assert!(won.payload::<CircuitBreakerEvent>().is_none());
    assert!(won.as_circuit_breaker().is_none());
    assert_eq!(won.payload_dyn().kind(), HedgeEvent::WON);
    assert!(
        stream.try_recv().is_none(),
        "the stream only wants hedge_won"
    );

    let first = &all.events()[0];
    assert_eq!(first.metadata()["after"], "0.02");
    assert_eq!(first.metadata()["in_flight"], "2");
    assert_eq!(
        first.to_string(),
        "hedge search hedge_fired after=0.02 in_flight=2"
    );
}

#[tokio::test]
async fn the_global_bus_hears_a_pattern_from_another_crate() {
    let _global = GLOBAL_BUS.lock().await;
    let hedge = Hedge::new("global-hedge");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    // Other tests in this binary emit too: keep only this instance's events.
    let id = events::global()
        .on_named("hedge_won", move |event| {
            if event.name() == "global-hedge" {
                log.lock()
                    .unwrap()
                    .push(event.payload::<HedgeEvent>().cloned());
            }
        })
        .unwrap();
    let mut stream = events::global().subscribe(EventFilter::All);

    hedge.report(HedgeEvent::Won { attempt: 3 }, &AtomicUsize::new(0));
    events::global().remove(id);

    assert_eq!(
        *seen.lock().unwrap(),
        [Some(HedgeEvent::Won { attempt: 3 })]
    );
    loop {
        let event = stream.next().await.expect("the stream is open");
        if event.name() == "global-hedge" {
            assert_eq!(
                event.payload::<HedgeEvent>(),
                Some(&HedgeEvent::Won { attempt: 3 })
            );
            break;
        }
    }
}

#[test]
fn kinds_are_known_by_name_and_names_stay_unique() {
    events::register_kinds(HedgeEvent::KINDS).unwrap();
    let known = events::known_kinds();
    assert!(known.contains(&HedgeEvent::FIRED) && known.contains(&HedgeEvent::WON));
    assert!(known.contains(&CircuitBreakerEvent::STATE_CHANGE));
    assert_eq!(
        "hedge_fired".parse(),
        Ok(EventFilter::Kind(HedgeEvent::FIRED))
    );
    assert_eq!(HedgeEvent::FIRED.pattern(), HEDGE);
    assert_eq!(HedgeEvent::FIRED.to_string(), "hedge_fired");

    // A second pattern cannot take a name that is already in use, built-in or not.
    let other = PatternKind::Custom("other");
    let taken = EventKind::new(other, "hedge_won");
    let conflict = events::register_kinds(&[taken]).unwrap_err();
    assert_eq!(conflict.existing, HedgeEvent::WON);
    assert_eq!(conflict.rejected, taken);
    assert!(events::register_kinds(&[EventKind::new(other, "call_success")]).is_err());
    assert_eq!("hedge_won".parse(), Ok(EventFilter::Kind(HedgeEvent::WON)));
}

#[cfg(feature = "serde")]
#[test]
fn events_of_another_crate_serialize_like_the_built_in_ones() {
    let event = events::Event::new(Arc::from("ser"), fired());
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["pattern_type"], "hedge");
    assert_eq!(json["event_type"], "hedge_fired");
    assert_eq!(json["pattern_name"], "ser");
    assert_eq!(json["in_flight"], "2");
}

/// The hedge's registry kind: a handle that clones share, with its plain config.
#[derive(Clone)]
struct SharedHedge {
    hedge: Arc<Hedge>,
    name: Arc<str>,
    config: HedgeConfig,
}

#[derive(Debug, Clone, PartialEq)]
struct HedgeConfig {
    delay: Duration,
}

impl Registered for SharedHedge {
    type Config = HedgeConfig;
    type Metrics = Duration;

    fn create(name: &str, config: HedgeConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            hedge: Arc::new(Hedge::new(name)),
            name: Arc::from(name),
            config,
        })
    }

    fn registered_name(&self) -> &str {
        &self.name
    }

    fn current_config(&self) -> HedgeConfig {
        self.config.clone()
    }

    fn snapshot(&self) -> Duration {
        self.config.delay
    }
}

#[test]
fn a_pattern_from_another_crate_lives_in_a_registry() {
    let config = HedgeConfig {
        delay: Duration::from_millis(20),
    };
    let registry = Registry::<SharedHedge>::global();
    let first = registry
        .get_or_create("registered", config.clone())
        .unwrap();
    let again = registry
        .get_or_create("registered", config.clone())
        .unwrap();
    assert!(
        Arc::ptr_eq(&first.hedge, &again.hedge),
        "same name, same hedge"
    );
    let other = HedgeConfig {
        delay: Duration::from_millis(50),
    };
    assert!(matches!(
        registry.get_or_create("registered", other),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    assert_eq!(registry.metrics()["registered"], config.delay);
    assert_eq!(registry.instances().len(), 1);

    let recorder = EventRecorder::attach(again.hedge.events());
    first
        .hedge
        .report(HedgeEvent::Won { attempt: 1 }, &AtomicUsize::new(0));
    assert_eq!(recorder.names(), ["hedge_won"]);
}
