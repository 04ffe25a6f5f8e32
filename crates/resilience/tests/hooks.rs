//! A panicking listener, state-change callback or predicate never reaches the caller and
//! never breaks the breaker; it is reported to the error handler (the seed's
//! `set_error_handler`). Its own test binary: the handler is process-wide.

use std::sync::{Arc, Mutex};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent, CircuitState};
use resilience::classify::Classifier;
use resilience::events::EventFilter;
use resilience::{CallbackKind, CallbackPanic, Error};

#[tokio::test]
async fn panicking_callbacks_are_isolated_and_reported() {
    let reports: Arc<Mutex<Vec<CallbackPanic>>> = Arc::default();
    let sink = Arc::clone(&reports);
    resilience::set_error_handler(move |panic| sink.lock().unwrap().push(panic.clone()));

    let transitions = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&transitions);
    let breaker = CircuitBreaker::builder("fragile")
        .failure_threshold(2)
        .on_state_change(move |from, to| {
            seen.lock().unwrap().push((from, to));
            panic!("callback exploded");
        })
        .build()
        .unwrap();
    breaker.events().on(CircuitBreakerEvent::CALL_FAILURE, |_| {
        panic!("listener exploded")
    });
    let after = Arc::new(Mutex::new(0));
    let count = Arc::clone(&after);
    breaker
        .events()
        .on(EventFilter::All, move |_| *count.lock().unwrap() += 1);

    // The caller sees its own error, untouched by the panics around it.
    for _ in 0..2 {
        let result = breaker.call(|| async { Err::<(), _>("db down") }).await;
        assert!(matches!(result, Err(Error::Inner("db down"))));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        *transitions.lock().unwrap(),
        [(CircuitState::Closed, CircuitState::Open)]
    );
    assert_eq!(*after.lock().unwrap(), 4, "the other listener still ran");

    // A panicking predicate counts as a failure and does not unwind into the caller.
    breaker.reset();
    let classifier = Classifier::<(), &str>::new().ignore_if(|_| panic!("predicate exploded"));
    let result = breaker
        .call_with(&classifier, || async { Err("boom") })
        .await;
    assert!(matches!(result, Err(Error::Inner("boom"))));
    assert_eq!(breaker.metrics().failed_requests, 1);

    let reports = reports.lock().unwrap();
    let kinds: Vec<CallbackKind> = reports.iter().map(|report| report.kind).collect();
    assert_eq!(
        kinds,
        [
            CallbackKind::Listener,
            CallbackKind::Listener,
            CallbackKind::StateChange, // closed -> open
            CallbackKind::StateChange, // reset: open -> closed
            CallbackKind::ErrorHook,   // the predicate
            CallbackKind::Listener,    // call_failure of the last call
        ]
    );
    assert!(reports.iter().all(|report| &*report.name == "fragile"));
    assert_eq!(reports[0].message, "listener exploded");
    resilience::reset_error_handler();
}
