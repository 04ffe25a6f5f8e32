//! The circuit breaker in a [`Registry`]: how it is created by name, and the questions only
//! breakers answer (which circuits are open, reset them all).

use super::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerMetrics, CircuitState};
use crate::registry::Registry;

crate::registry::registered!(CircuitBreaker: CircuitBreakerConfig => CircuitBreakerMetrics);

impl Registry<CircuitBreaker> {
    /// Names of the circuits that are open or forced open now (never stale).
    pub fn open_circuits(&self) -> Vec<String> {
        let mut open: Vec<String> = self
            .instances()
            .into_iter()
            .filter(|breaker| breaker.state().is_open())
            .map(|breaker| breaker.name().to_owned())
            .collect();
        open.sort();
        open
    }

    /// Resets every registered breaker.
    pub fn reset_all(&self) {
        for breaker in self.instances() {
            breaker.reset();
        }
    }

    /// Whether any registered circuit is in `state`.
    pub fn any_in(&self, state: CircuitState) -> bool {
        self.instances()
            .iter()
            .any(|breaker| breaker.state() == state)
    }
}
