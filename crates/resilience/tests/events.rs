//! The event system through the public API: listeners by kind, by seed name and wildcard,
//! removal, the global bus, streams, metadata, and listeners that use the breaker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent, CircuitState};
use resilience::events::{self, EventFilter, EventKind};
use resilience_testkit::EventRecorder;

fn breaker(name: &str) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .failure_threshold(1)
        .build()
        .unwrap()
}

fn counter() -> (
    Arc<AtomicUsize>,
    impl Fn(&events::Event) + Send + Sync + 'static,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let sink = Arc::clone(&count);
    (count, move |_: &events::Event| {
        sink.fetch_add(1, Ordering::SeqCst);
    })
}

#[tokio::test]
async fn listeners_select_by_kind_name_or_wildcard_and_can_be_removed() {
    let breaker = breaker("select");
    let (by_kind, listener) = counter();
    breaker
        .events()
        .on(CircuitBreakerEvent::CIRCUIT_OPENED, listener);
    let (by_name, listener) = counter();
    let id = breaker.events().on_named("call_failure", listener).unwrap();
    let (all, listener) = counter();
    breaker.events().on(EventFilter::All, listener);
    assert!(breaker
        .events()
        .on_named("circuit_openned", |_| {})
        .is_err());

    let _ = breaker.call(|| async { Err::<(), _>(()) }).await;
    assert_eq!(by_kind.load(Ordering::SeqCst), 1);
    assert_eq!(by_name.load(Ordering::SeqCst), 1);
    // call_failure, state_change, circuit_opened
    assert_eq!(all.load(Ordering::SeqCst), 3);

    assert!(breaker.events().remove(id));
    assert!(!breaker.events().remove(id), "removing twice is harmless");
    breaker.reset();
    let _ = breaker.call(|| async { Err::<(), _>(()) }).await;
    assert_eq!(
        by_name.load(Ordering::SeqCst),
        1,
        "removed listener is silent"
    );
    assert_eq!(breaker.events().listener_count(), 2);
}

/// Seed bug B2: the "anyone listening?" answer was cached for a second, so a listener added
/// just after a call missed the next state change.
#[tokio::test]
async fn a_listener_added_after_a_quiet_call_sees_the_next_event() {
    let breaker = breaker("late-listener");
    breaker.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    let recorder = EventRecorder::attach(breaker.events());
    breaker.trip();
    assert_eq!(recorder.names(), ["state_change", "circuit_opened"]);
}

#[tokio::test]
async fn the_global_bus_sees_every_instance() {
    let recorder = EventRecorder::attach(events::global());
    let (a, b) = (breaker("global-a"), breaker("global-b"));
    a.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    let _ = b.call(|| async { Err::<(), _>(()) }).await;
    recorder.detach(events::global());
    assert_eq!(recorder.names_from("global-a"), ["call_success"]);
    assert_eq!(
        recorder.names_from("global-b"),
        ["call_failure", "state_change", "circuit_opened"]
    );
}

#[tokio::test]
async fn events_carry_their_fields_as_metadata() {
    let breaker = breaker("fields");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    breaker
        .events()
        .on(CircuitBreakerEvent::STATE_CHANGE, move |event| {
            sink.lock()
                .unwrap()
                .push((event.metadata(), event.to_string()));
        });
    breaker.trip();
    let seen = seen.lock().unwrap();
    let (metadata, display) = &seen[0];
    assert_eq!(metadata["from"], "closed");
    assert_eq!(metadata["to"], "open");
    assert_eq!(metadata["failure_count"], "0");
    assert_eq!(
        display,
        "circuit_breaker fields state_change from=closed to=open failure_count=0 success_count=0"
    );
}

#[tokio::test]
async fn streams_deliver_in_order_and_unsubscribe_on_drop() {
    let breaker = breaker("stream");
    let mut stream = breaker.events().subscribe(EventFilter::All);
    breaker.trip();
    breaker.reset();
    let kinds: Vec<EventKind> = (&mut stream)
        .take(5)
        .map(|event| event.kind())
        .collect()
        .await;
    assert_eq!(
        kinds,
        [
            CircuitBreakerEvent::STATE_CHANGE,
            CircuitBreakerEvent::CIRCUIT_OPENED,
            CircuitBreakerEvent::STATE_CHANGE,
            CircuitBreakerEvent::CIRCUIT_CLOSED,
            CircuitBreakerEvent::CIRCUIT_RESET
        ]
    );
    drop(stream);
    // Gone at once, not at the next emit: nobody pays for building events no one reads.
    assert_eq!(breaker.events().listener_count(), 0);
    assert!(!breaker.events().is_active());
}

#[tokio::test]
async fn a_stream_that_outlives_its_instance_ends() {
    let breaker = breaker("short-lived");
    let mut stream = breaker.events().subscribe(EventFilter::All);
    breaker.trip();
    drop(breaker);
    assert_eq!(
        stream.next().await.map(|event| event.kind()),
        Some(CircuitBreakerEvent::STATE_CHANGE)
    );
    while stream.next().await.is_some() {}
    drop(stream); // its bus is gone: unsubscribing is a no-op
}

#[tokio::test]
async fn a_slow_stream_drops_and_counts_instead_of_blocking() {
    let breaker = breaker("slow-consumer");
    let mut stream = breaker
        .events()
        .subscribe_with_capacity(CircuitBreakerEvent::CALL_SUCCESS, 2);
    for _ in 0..5 {
        breaker.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    }
    assert_eq!(stream.dropped(), 3);
    assert!(stream.try_recv().is_some());
    assert!(stream.try_recv().is_some());
    assert!(stream.try_recv().is_none());
}

/// Listeners run after the breaker's lock is released, so they may use the breaker (in the
/// seed, a handler ran under the lock and a slow one stalled every caller).
#[tokio::test]
async fn listeners_may_call_back_into_the_breaker() {
    let breaker = breaker("reentrant");
    let inner = breaker.clone();
    let states = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&states);
    breaker
        .events()
        .on(CircuitBreakerEvent::STATE_CHANGE, move |_| {
            sink.lock().unwrap().push(inner.metrics().state);
            if inner.state() == CircuitState::Open {
                inner.reset();
            }
        });
    breaker.trip();
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(
        *states.lock().unwrap(),
        [CircuitState::Open, CircuitState::Closed]
    );
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn events_serialize_flat_with_seed_names() {
    let breaker = breaker("json");
    let recorder = EventRecorder::attach(breaker.events());
    breaker.trip();
    let json = serde_json::to_value(&recorder.events()[0]).unwrap();
    assert_eq!(json["pattern_type"], "circuit_breaker");
    assert_eq!(json["event_type"], "state_change");
    assert_eq!(json["pattern_name"], "json");
    assert_eq!(json["to"], "open");
    assert!(json["timestamp"].as_f64().unwrap() > 1.7e9);
}

#[test]
#[expect(deprecated, reason = "the former names must keep compiling")]
fn former_kind_names_still_work_and_kinds_match_as_patterns() {
    assert_eq!(EventKind::StateChange, CircuitBreakerEvent::STATE_CHANGE);
    assert_eq!(
        EventKind::RateLimitBackendUnavailable.as_str(),
        "rate_limit_backend_unavailable"
    );
    let describe = |kind: EventKind| match kind {
        CircuitBreakerEvent::STATE_CHANGE => "moved",
        CircuitBreakerEvent::CIRCUIT_OPENED => "opened",
        _ => "other",
    };
    assert_eq!(describe(EventKind::CircuitOpened), "opened");
    assert_eq!(describe(CircuitBreakerEvent::CALL_SUCCESS), "other");
    // Kinds sort as their patterns declare them.
    let mut kinds = vec![
        CircuitBreakerEvent::CIRCUIT_RESET,
        CircuitBreakerEvent::STATE_CHANGE,
    ];
    kinds.sort();
    assert_eq!(
        kinds,
        [
            CircuitBreakerEvent::STATE_CHANGE,
            CircuitBreakerEvent::CIRCUIT_RESET
        ]
    );
}
