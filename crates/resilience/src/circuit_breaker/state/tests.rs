//! Unit tests and a proptest model check of the state machine.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::circuit_breaker::detector::ConsecutiveFailures;
use crate::circuit_breaker::DetectorConfig;

fn config(threshold: u32, success_threshold: u32, max_probes: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        detector: DetectorConfig::ConsecutiveFailures { threshold },
        open_duration: Duration::from_secs(10),
        success_threshold,
        half_open_max_calls: max_probes,
        ..CircuitBreakerConfig::default()
    }
}

const FAIL: Option<CallRecord> = Some(CallRecord {
    failed: true,
    duration: None,
});
const OK: Option<CallRecord> = Some(CallRecord {
    failed: false,
    duration: None,
});

fn admitted(admission: Admission) -> Ticket {
    match admission {
        Admission::Admitted(ticket) => ticket,
        Admission::Rejected { reason, .. } => panic!("rejected: {reason:?}"),
    }
}

#[test]
fn opens_at_threshold_and_half_opens_exactly_at_the_open_duration() {
    let config = config(2, 1, 1);
    let mut detector = ConsecutiveFailures::new(2);
    let mut machine = Machine::new();
    let t0 = Instant::now();
    for _ in 0..2 {
        let ticket = admitted(machine.admit(t0, 1).0);
        machine.complete(ticket, FAIL, &mut detector, &config, t0);
    }
    assert_eq!(machine.phase().state(), CircuitState::Open);

    let before = t0 + Duration::from_secs(10) - Duration::from_nanos(1);
    let (admission, transition) = machine.admit(before, 1);
    assert_eq!(
        admission,
        Admission::Rejected {
            reason: RejectionReason::CircuitOpen,
            retry_after: Some(Duration::from_nanos(1)),
        }
    );
    assert_eq!(transition, None);

    let at = t0 + Duration::from_secs(10);
    let (admission, transition) = machine.admit(at, 1);
    assert!(matches!(admission, Admission::Admitted(t) if t.is_probe()));
    assert_eq!(
        transition.map(|t| t.to.state()),
        Some(CircuitState::HalfOpen)
    );
}

#[test]
fn stale_outcomes_do_not_count_in_a_later_state() {
    let config = config(1, 1, 1);
    let mut detector = ConsecutiveFailures::new(1);
    let mut machine = Machine::new();
    let t0 = Instant::now();
    let slow = admitted(machine.admit(t0, 1).0);
    let fast = admitted(machine.admit(t0, 1).0);
    machine.complete(fast, FAIL, &mut detector, &config, t0);
    let later = t0 + Duration::from_secs(10);
    machine.poll(later);
    // The slow call from the closed state succeeds while half-open: it must not close.
    assert_eq!(
        machine.complete(slow, OK, &mut detector, &config, later),
        None
    );
    assert_eq!(machine.phase().state(), CircuitState::HalfOpen);
}

#[test]
fn an_ignored_probe_gives_its_slot_back() {
    let config = config(1, 1, 1);
    let mut detector = ConsecutiveFailures::new(1);
    let mut machine = Machine::new();
    let t0 = Instant::now();
    machine.trip(&config, t0);
    let at = t0 + Duration::from_secs(10);
    let probe = admitted(machine.admit(at, 1).0);
    assert!(matches!(machine.admit(at, 1).0, Admission::Rejected { .. }));
    machine.complete(probe, None, &mut detector, &config, at);
    let again = admitted(machine.admit(at, 1).0);
    machine.complete(again, OK, &mut detector, &config, at);
    assert_eq!(machine.phase().state(), CircuitState::Closed);
}

#[test]
fn repeated_trips_lengthen_the_open_duration() {
    let config = CircuitBreakerConfig {
        open_duration_multiplier: 2.0,
        ..config(1, 1, 1)
    };
    let mut detector = ConsecutiveFailures::new(1);
    let mut machine = Machine::new();
    let t0 = Instant::now();
    machine.trip(&config, t0);
    let t1 = t0 + Duration::from_secs(10);
    let probe = admitted(machine.admit(t1, 1).0);
    let transition = machine.complete(probe, FAIL, &mut detector, &config, t1);
    assert_eq!(
        transition.map(|t| t.to),
        Some(Phase::Open {
            until: t1 + Duration::from_secs(20),
            open_for: Duration::from_secs(20)
        })
    );
    assert_eq!(machine.trips(), 2);
}

/// What a test can do to the machine.
#[derive(Debug, Clone)]
enum Op {
    Admit,
    Finish { index: usize, outcome: u8 },
    Advance(u64),
    Trip,
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Admit),
        6 => (any::<usize>(), 0..3u8).prop_map(|(index, outcome)| Op::Finish { index, outcome }),
        3 => (0..15_000u64).prop_map(Op::Advance),
        1 => Just(Op::Trip),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

/// The rules restated as plainly as possible, independently of `Machine`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
    Forced,
    Disabled,
}

impl Model {
    fn state(self) -> CircuitState {
        match self {
            Self::Closed { .. } => CircuitState::Closed,
            Self::Open { .. } => CircuitState::Open,
            Self::HalfOpen { .. } => CircuitState::HalfOpen,
            Self::Forced => CircuitState::ForcedOpen,
            Self::Disabled => CircuitState::Disabled,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The machine agrees with the plain model after every operation, and never has more
    /// probes in flight than allowed, nor a probe count that differs from the probes really
    /// outstanding (no leaked or double-released probe).
    #[test]
    fn machine_matches_the_reference_model(
        threshold in 1..4u32,
        success_threshold in 1..3u32,
        max_probes in 1..3u32,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let config = config(threshold, success_threshold, max_probes);
        let open_for = config.open_duration;
        let mut detector = ConsecutiveFailures::new(threshold);
        let mut machine = Machine::new();
        let mut now = Instant::now();
        let mut model = Model::Closed { failures: 0 };
        let mut epoch = 0u64;
        // Outstanding calls: (machine ticket, model epoch, admitted as probe).
        let mut outstanding: Vec<(Ticket, u64, bool)> = Vec::new();

        for op in ops {
            // Time passing, as the model sees it.
            if let Model::Open { until } = model {
                if now >= until {
                    model = Model::HalfOpen { in_flight: 0, successes: 0 };
                    epoch += 1;
                }
            }
            match op {
                Op::Admit => {
                    let (admission, _) = machine.admit(now, max_probes);
                    let expected = match &mut model {
                        Model::Closed { .. } | Model::Disabled => Some(false),
                        Model::HalfOpen { in_flight, .. } if *in_flight < max_probes => {
                            *in_flight += 1;
                            Some(true)
                        }
                        _ => None,
                    };
                    match (admission, expected) {
                        (Admission::Admitted(ticket), Some(probe)) => {
                            prop_assert_eq!(ticket.is_probe(), probe);
                            outstanding.push((ticket, epoch, probe));
                        }
                        (Admission::Rejected { .. }, None) => {}
                        (got, want) => prop_assert!(false, "admit: {:?} vs model {:?}", got, want),
                    }
                }
                Op::Finish { index, outcome } => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (ticket, call_epoch, probe) = outstanding.remove(index % outstanding.len());
                    let record = match outcome { 0 => OK, 1 => FAIL, _ => None };
                    machine.complete(ticket, record, &mut detector, &config, now);
                    if call_epoch == epoch {
                        model = match (model, record) {
                            (Model::Closed { .. }, Some(CallRecord { failed: false, .. })) => {
                                Model::Closed { failures: 0 }
                            }
                            (Model::Closed { failures }, Some(_)) if failures + 1 >= threshold => {
                                epoch += 1;
                                Model::Open { until: now + open_for }
                            }
                            (Model::Closed { failures }, Some(_)) => {
                                Model::Closed { failures: failures + 1 }
                            }
                            (Model::HalfOpen { in_flight, successes }, record) => {
                                prop_assert!(probe);
                                match record {
                                    None => Model::HalfOpen { in_flight: in_flight - 1, successes },
                                    Some(CallRecord { failed: true, .. }) => {
                                        epoch += 1;
                                        Model::Open { until: now + open_for }
                                    }
                                    Some(_) if successes + 1 >= success_threshold => {
                                        epoch += 1;
                                        Model::Closed { failures: 0 }
                                    }
                                    Some(_) => Model::HalfOpen { in_flight: in_flight - 1, successes: successes + 1 },
                                }
                            }
                            (model, _) => model,
                        };
                    }
                }
                Op::Advance(millis) => {
                    now += Duration::from_millis(millis);
                    machine.poll(now);
                    continue;
                }
                Op::Trip => {
                    machine.trip(&config, now);
                    if !matches!(model, Model::Open { .. } | Model::Forced) {
                        epoch += 1;
                        model = Model::Open { until: now + open_for };
                    }
                }
                Op::ForceOpen => {
                    machine.force_open();
                    if model != Model::Forced {
                        epoch += 1;
                        model = Model::Forced;
                    }
                }
                Op::Disable => {
                    machine.disable();
                    if model != Model::Disabled {
                        epoch += 1;
                        model = Model::Disabled;
                    }
                }
                Op::Reset => {
                    machine.reset(&mut detector);
                    epoch += 1;
                    model = Model::Closed { failures: 0 };
                }
            }
            machine.poll(now);
            if let Model::Open { until } = model {
                if now >= until {
                    model = Model::HalfOpen { in_flight: 0, successes: 0 };
                    epoch += 1;
                }
            }
            prop_assert_eq!(machine.phase().state(), model.state());
            if let (Phase::HalfOpen { probes, .. }, Model::HalfOpen { in_flight, .. }) = (machine.phase(), model) {
                prop_assert!(probes <= max_probes);
                prop_assert_eq!(probes, in_flight);
                let live = outstanding.iter().filter(|(_, e, probe)| *e == epoch && *probe).count();
                prop_assert_eq!(probes as usize, live);
            }
        }
    }
}
