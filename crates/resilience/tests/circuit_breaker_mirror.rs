//! What a shared store needs from the core breaker to mirror its state: a transition hook
//! that sees every transition once and in order, and `open_for`, which opens the circuit for
//! a time decided elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState, StateTransition};
use resilience::RejectionReason;
use tokio::time::advance;

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder("mirror")
        .failure_threshold(1)
        .open_duration(Duration::from_secs(60))
        .open_duration_backoff(2.0, Duration::from_secs(600))
        .build()
        .unwrap()
}

fn record(breaker: &CircuitBreaker) -> Arc<Mutex<Vec<StateTransition>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    breaker.set_transition_hook(move |transition| sink.lock().unwrap().push(*transition));
    seen
}

#[test]
fn the_hook_sees_transitions_from_many_threads_in_order() {
    let breaker = breaker();
    let seen = record(&breaker);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let breaker = breaker.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    if i % 2 == 0 {
                        breaker.force_open();
                    } else {
                        breaker.reset();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 1, "{}", seen.len());
    // Each transition starts where the one before ended: none is missing or reordered.
    assert_eq!(seen[0].from, CircuitState::Closed);
    for pair in seen.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "{pair:?}");
    }
    assert_eq!(seen.last().unwrap().to, breaker.state());
}

#[tokio::test(start_paused = true)]
async fn open_for_opens_for_the_time_given_without_growing_the_backoff() {
    let breaker = breaker();
    let seen = record(&breaker);
    breaker.open_for(Duration::from_secs(7));
    assert_eq!(breaker.state(), CircuitState::Open);
    let rejection = breaker.try_acquire().unwrap_err();
    assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
    assert_eq!(rejection.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(
        seen.lock().unwrap()[0].open_for,
        Some(Duration::from_secs(7))
    );

    // Already open: only the end moves, without a transition.
    breaker.open_for(Duration::from_secs(3));
    assert_eq!(
        breaker.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(3))
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    advance(Duration::from_secs(3)).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // `open_for` counted no trip: the detector's own trip opens for the base duration.
    breaker.try_acquire().unwrap().failure();
    assert_eq!(
        breaker.metrics().remaining_open_time,
        Some(Duration::from_secs(60))
    );

    // Forced open stays forced open.
    breaker.force_open();
    breaker.open_for(Duration::from_secs(1));
    assert_eq!(breaker.state(), CircuitState::ForcedOpen);
}

#[tokio::test(start_paused = true)]
async fn open_for_zero_half_opens_at_the_next_call() {
    let breaker = breaker();
    breaker.open_for(Duration::ZERO);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert!(breaker.try_acquire().is_ok());
}
