//! The pure core of the circuit breaker: `(state, input, now) -> (decision, new state)`.
//!
//! No clock, no atomics, no events: the handle reads the time once, runs these functions
//! under its lock, publishes the result to its atomics and emits events after unlocking.
//!
//! The rules, in one place:
//! * **Closed**: every call is admitted; counted outcomes go to the detector, which is asked
//!   after each one whether to open the circuit.
//! * **Open** for `open_duration_for(trips)` from the moment it opened (not from the last
//!   failure); at `opened + duration` (inclusive) it becomes half-open. The first observation
//!   after that instant (a call, `state()`, `metrics()`) makes the transition, so no reader ever
//!   sees a stale "open".
//! * **Half-open**: at most `half_open_max_calls` probes run at once, each admitted and counted
//!   atomically. A counted failure reopens; `success_threshold` successes close; an ignored
//!   or abandoned (dropped) probe gives its slot back.
//! * Each transition starts a new *generation*. An outcome only counts in the generation its
//!   call was admitted in, so a slow call admitted while closed cannot close, reopen or fill a
//!   later half-open state.

use std::time::Duration;

use tokio::time::Instant;

use super::detector::{CallRecord, FailureDetector};
use super::{CircuitBreakerConfig, CircuitState};
use crate::time::deadline;
use crate::RejectionReason;

/// Where the breaker is, with the data that state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Closed,
    Open { until: Instant, open_for: Duration },
    HalfOpen { probes: u32, successes: u32 },
    ForcedOpen,
    Disabled,
}

impl Phase {
    pub(crate) fn state(self) -> CircuitState {
        match self {
            Self::Closed => CircuitState::Closed,
            Self::Open { .. } => CircuitState::Open,
            Self::HalfOpen { .. } => CircuitState::HalfOpen,
            Self::ForcedOpen => CircuitState::ForcedOpen,
            Self::Disabled => CircuitState::Disabled,
        }
    }
}

/// Proof of admission: which generation admitted the call, in which state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) generation: u64,
    pub(crate) admitted_in: CircuitState,
}

impl Ticket {
    pub(crate) fn is_probe(self) -> bool {
        self.admitted_in == CircuitState::HalfOpen
    }
}

/// The answer to "may this call run?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admitted(Ticket),
    Rejected {
        reason: RejectionReason,
        retry_after: Option<Duration>,
    },
}

/// A change of state, for events, callbacks and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) from: CircuitState,
    pub(crate) to: Phase,
    pub(crate) trips: u32,
}

/// The circuit breaker's state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    phase: Phase,
    generation: u64,
    /// Consecutive trips without closing in between; sets the open duration.
    trips: u32,
}

impl Machine {
    pub(crate) fn new() -> Self {
        Self {
            phase: Phase::Closed,
            generation: 0,
            trips: 0,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn trips(&self) -> u32 {
        self.trips
    }

    /// Lets time pass: an open circuit whose duration is over becomes half-open.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Open { until, .. } if now >= until => Some(self.enter(Phase::HalfOpen {
                probes: 0,
                successes: 0,
            })),
            _ => None,
        }
    }

    /// Decides whether a call may run, counting a half-open probe atomically with the check.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        max_probes: u32,
    ) -> (Admission, Option<Transition>) {
        let transition = self.poll(now);
        let ticket = Admission::Admitted(Ticket {
            generation: self.generation,
            admitted_in: self.phase.state(),
        });
        let admission = match &mut self.phase {
            Phase::Closed | Phase::Disabled => ticket,
            Phase::Open { until, .. } => Admission::Rejected {
                reason: RejectionReason::CircuitOpen,
                retry_after: Some(until.saturating_duration_since(now)),
            },
            Phase::ForcedOpen => Admission::Rejected {
                reason: RejectionReason::CircuitForcedOpen,
                retry_after: None,
            },
            Phase::HalfOpen { probes, .. } if *probes < max_probes => {
                *probes += 1;
                ticket
            }
            Phase::HalfOpen { .. } => Admission::Rejected {
                reason: RejectionReason::HalfOpenFull,
                retry_after: None,
            },
        };
        (admission, transition)
    }

    /// Takes the outcome of an admitted call: `Some(record)` for a counted outcome, `None` for
    /// an ignored or abandoned call.
    pub(crate) fn complete(
        &mut self,
        ticket: Ticket,
        record: Option<CallRecord>,
        detector: &mut dyn FailureDetector,
        config: &CircuitBreakerConfig,
        now: Instant,
    ) -> Option<Transition> {
        if ticket.generation != self.generation {
            return None;
        }
        match (self.phase, record) {
            (Phase::Closed, Some(record)) => {
                // Asked after successes too: a slow success can trip a slow-call detector.
                detector.record(record, now);
                detector.should_trip(now).then(|| self.open(config, now))
            }
            (Phase::HalfOpen { probes, successes }, record) => {
                let probes = probes.saturating_sub(1);
                match record {
                    Some(CallRecord { failed: true, .. }) => Some(self.open(config, now)),
                    Some(CallRecord { failed: false, .. })
                        if successes + 1 >= config.success_threshold =>
                    {
                        Some(self.close(detector))
                    }
                    Some(_) => {
                        self.phase = Phase::HalfOpen {
                            probes,
                            successes: successes + 1,
                        };
                        None
                    }
                    None => {
                        self.phase = Phase::HalfOpen { probes, successes };
                        None
                    }
                }
            }
            _ => None,
        }
    }

    /// Opens the circuit now, as if the detector had tripped. No change if already open.
    pub(crate) fn trip(
        &mut self,
        config: &CircuitBreakerConfig,
        now: Instant,
    ) -> Option<Transition> {
        match self.phase {
            Phase::Open { .. } | Phase::ForcedOpen => None,
            _ => Some(self.open(config, now)),
        }
    }

    /// Opens the circuit for exactly `duration`, decided elsewhere: no trip is counted. An
    /// open circuit takes the new end without a transition; forced-open and disabled stay.
    pub(crate) fn open_for(&mut self, duration: Duration, now: Instant) -> Option<Transition> {
        let open = Phase::Open {
            until: deadline(now, duration),
            open_for: duration,
        };
        match self.phase {
            Phase::ForcedOpen | Phase::Disabled => None,
            Phase::Open { .. } => {
                self.phase = open;
                None
            }
            _ => Some(self.enter(open)),
        }
    }

    /// Holds the circuit open until reset.
    pub(crate) fn force_open(&mut self) -> Option<Transition> {
        (self.phase != Phase::ForcedOpen).then(|| self.enter(Phase::ForcedOpen))
    }

    /// Admits everything and stops evaluating outcomes until reset.
    pub(crate) fn disable(&mut self) -> Option<Transition> {
        (self.phase != Phase::Disabled).then(|| self.enter(Phase::Disabled))
    }

    /// Back to closed with a fresh detector, from any state. Always starts a new generation,
    /// so calls admitted before the reset no longer count.
    pub(crate) fn reset(&mut self, detector: &mut dyn FailureDetector) -> Transition {
        self.close(detector)
    }

    fn open(&mut self, config: &CircuitBreakerConfig, now: Instant) -> Transition {
        self.trips = self.trips.saturating_add(1);
        let open_for = config.open_duration_for(self.trips);
        self.enter(Phase::Open {
            until: deadline(now, open_for),
            open_for,
        })
    }

    fn close(&mut self, detector: &mut dyn FailureDetector) -> Transition {
        detector.reset();
        self.trips = 0;
        self.enter(Phase::Closed)
    }

    fn enter(&mut self, phase: Phase) -> Transition {
        let from = self.phase.state();
        self.phase = phase;
        self.generation += 1;
        Transition {
            from,
            to: phase,
            trips: self.trips,
        }
    }
}

#[cfg(test)]
mod tests;
