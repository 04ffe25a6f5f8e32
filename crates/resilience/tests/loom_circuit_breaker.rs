//! loom models of the circuit breaker's shared state: the published state word and the
//! half-open probe slots, run through the real handle (its atomics and its lock come from
//! loom under `--cfg loom`, see `src/sync.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p resilience --release --test loom_circuit_breaker
//! ```
//!
//! No clock is needed: `open_for(Duration::ZERO)` leaves the circuit open until its next
//! call, which makes it half-open; a long `open_duration` keeps a tripped circuit open for
//! the whole model.
#![cfg(loom)]

use std::sync::{Arc as StdArc, Mutex as StdMutex};
use std::time::Duration;

use loom::thread;
use resilience::circuit_breaker::{CircuitBreaker, CircuitState, StateTransition};
use resilience::RejectionReason;

const LONG: Duration = Duration::from_secs(3600);

/// A breaker that has just become due to half-open: its next call makes the transition.
fn due_to_half_open(max_probes: u32, success_threshold: u32) -> CircuitBreaker {
    let breaker = CircuitBreaker::builder("loom")
        .open_duration(LONG)
        .half_open_max_calls(max_probes)
        .success_threshold(success_threshold)
        .build()
        .unwrap();
    breaker.open_for(Duration::ZERO);
    breaker
}

/// Three threads race for two probe slots, the first of them also making the transition
/// from open: never more than two admitted, the refused one refused as "half-open full", and
/// the slots counted exactly (all given back once the permits are dropped).
#[test]
fn half_open_admits_at_most_max_probes() {
    loom::model(|| {
        let breaker = due_to_half_open(2, 5);
        let racers: Vec<_> = (0..3)
            .map(|_| {
                let breaker = breaker.clone();
                thread::spawn(move || breaker.try_acquire_owned())
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();

        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 2, "two probe slots, three callers");
        for rejection in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(rejection.reason(), RejectionReason::HalfOpenFull);
        }
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.metrics().half_open_calls, 2);
        drop(results);
        assert_eq!(breaker.metrics().half_open_calls, 0, "a probe slot leaked");
    });
}

/// Probes come and go while others are admitted: each thread takes a probe and gives it
/// back (dropped: ignored), one of them twice. The number of probes admitted at one time never
/// passes the limit, and at the end every slot is free again.
#[test]
fn probe_slots_are_given_back_exactly_once() {
    loom::model(|| {
        let breaker = due_to_half_open(1, 5);
        let held = StdArc::new(loom::sync::atomic::AtomicUsize::new(0));
        let racers: Vec<_> = (0..2)
            .map(|rounds| {
                let (breaker, held) = (breaker.clone(), StdArc::clone(&held));
                thread::spawn(move || {
                    for _ in 0..=rounds {
                        if let Ok(permit) = breaker.try_acquire() {
                            let before = held.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
                            assert_eq!(before, 0, "two probes admitted with one slot");
                            held.fetch_sub(1, loom::sync::atomic::Ordering::SeqCst);
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for racer in racers {
            racer.join().unwrap();
        }
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.metrics().half_open_calls, 0, "a probe slot leaked");
        breaker.try_acquire().expect("the slot is free again");
    });
}

/// Probe outcomes race: one success (with a threshold of one, it closes) and one failure
/// (it reopens). Whichever lands first decides; the other belongs to an older generation
/// and changes nothing. The published word agrees with the locked state.
#[test]
fn racing_probe_outcomes_decide_once() {
    loom::model(|| {
        let breaker = due_to_half_open(2, 1);
        let first = breaker.try_acquire_owned().unwrap();
        let second = breaker.try_acquire().unwrap();
        let success = thread::spawn(move || first.success());
        second.failure();
        success.join().unwrap();

        let state = breaker.metrics().state;
        assert!(
            matches!(state, CircuitState::Closed | CircuitState::Open),
            "{state:?}"
        );
        assert_eq!(breaker.state(), state, "the state word lost a transition");
        assert_eq!(breaker.metrics().half_open_calls, 0);
    });
}

/// Transitions from three threads at once (trip, reset, force open) plus a caller: the
/// published word always ends equal to the locked state (no stale word written over a newer
/// one), and the transition hook, called in transition order, sees one unbroken chain whose
/// last state is the final one.
#[test]
fn state_word_keeps_every_transition() {
    loom::model(|| {
        let breaker = CircuitBreaker::builder("loom")
            .open_duration(LONG)
            .build()
            .unwrap();
        let seen = StdArc::new(StdMutex::new(Vec::<StateTransition>::new()));
        let log = StdArc::clone(&seen);
        breaker.set_transition_hook(move |t| log.lock().unwrap().push(*t));

        let trip = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.trip())
        };
        let reset = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.reset())
        };
        let caller = {
            let breaker = breaker.clone();
            thread::spawn(move || {
                if let Ok(permit) = breaker.try_acquire() {
                    permit.failure();
                }
            })
        };
        breaker.force_open();
        for t in [trip, reset, caller] {
            t.join().unwrap();
        }

        let locked = breaker.metrics().state;
        assert_eq!(breaker.state(), locked, "the state word lost a transition");
        let seen = seen.lock().unwrap();
        let mut at = CircuitState::Closed;
        for transition in seen.iter() {
            assert_eq!(transition.from, at, "transitions out of order: {seen:?}");
            at = transition.to;
        }
        assert_eq!(at, locked, "the last transition seen is not the state");
    });
}
