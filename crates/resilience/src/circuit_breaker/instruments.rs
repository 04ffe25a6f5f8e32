//! The circuit breaker's metrics: its rows of the table in [`crate::telemetry`], registered
//! once when the breaker is built.

use std::sync::Arc;
use std::time::Duration;

use super::CircuitState;
use crate::classify::Outcome;
use crate::telemetry::{self, Counter, Gauge, Histogram};

const STATES: [CircuitState; 5] = [
    CircuitState::Closed,
    CircuitState::Open,
    CircuitState::HalfOpen,
    CircuitState::ForcedOpen,
    CircuitState::Disabled,
];

fn index(state: CircuitState) -> usize {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
    }
}

/// The slot of the transition `from -> to` among the 20 with `from != to`.
fn transition(from: CircuitState, to: CircuitState) -> usize {
    let (from, to) = (index(from), index(to));
    from * 4 + to - usize::from(to > from)
}

#[derive(Debug)]
pub(crate) struct Instruments {
    /// By outcome: success, failure, ignored, then rejected.
    calls: [Counter; 4],
    state: [Gauge; 5],
    transitions: [Counter; 20],
    duration: Histogram,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        let calls = ["success", "failure", "ignored", "rejected"].map(|outcome| {
            Counter::register(
                &telemetry::CIRCUIT_BREAKER_CALLS,
                name,
                &[("outcome", outcome)],
            )
        });
        let state = STATES.map(|state| {
            Gauge::register(
                &telemetry::CIRCUIT_BREAKER_STATE,
                name,
                &[("state", state.as_str())],
            )
        });
        // Every state, not just closed: a breaker rebuilt under the same name shares its
        // series with the one it replaces, which may have left another state at 1.
        for (slot, gauge) in state.iter().enumerate() {
            gauge.set(if slot == index(CircuitState::Closed) {
                1.0
            } else {
                0.0
            });
        }
        let transitions = std::array::from_fn(|slot| {
            let from = STATES[slot / 4];
            let mut to = slot % 4;
            if to >= slot / 4 {
                to += 1;
            }
            let labels = [("from", from.as_str()), ("to", STATES[to].as_str())];
            Counter::register(&telemetry::CIRCUIT_BREAKER_TRANSITIONS, name, &labels)
        });
        Self {
            calls,
            state,
            transitions,
            duration: Histogram::register(&telemetry::CIRCUIT_BREAKER_CALL_DURATION, name, &[]),
        }
    }

    #[inline]
    pub(crate) fn completed(&self, outcome: Outcome, duration: Option<Duration>) {
        let slot = match outcome {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Ignored => 2,
        };
        self.calls[slot].increment();
        if let Some(duration) = duration {
            self.duration.record(duration);
        }
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        self.calls[3].increment();
    }

    pub(crate) fn transition(&self, from: CircuitState, to: CircuitState) {
        if from == to {
            return;
        }
        self.transitions[transition(from, to)].increment();
        self.state[index(from)].set(0.0);
        self.state[index(to)].set(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for from in STATES {
            for to in STATES {
                if from != to {
                    assert!(seen.insert(transition(from, to)));
                }
            }
        }
        assert_eq!(seen.len(), 20);
        assert!(seen.iter().all(|&slot| slot < 20));
    }

    #[test]
    fn slots_name_their_transition() {
        for slot in 0..20 {
            let from = STATES[slot / 4];
            let mut to = slot % 4;
            if to >= slot / 4 {
                to += 1;
            }
            assert_eq!(transition(from, STATES[to]), slot);
        }
    }
}
