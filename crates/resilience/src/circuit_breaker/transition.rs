//! [`StateTransition`]: what a transition hook sees.

use std::sync::Arc;
use std::time::Duration;

use super::CircuitState;

/// One change of state, as a [transition hook](super::CircuitBreaker::set_transition_hook)
/// sees it.
///
/// Unlike the `state_change` event, which is emitted after the breaker's lock is released
/// (so two listeners on two threads may see two quick transitions in either order), the hook
/// runs under the lock, so it sees every transition exactly once and in the order they
/// happened. That is what code mirroring the state elsewhere, such as a shared store, needs.
///
/// A [`reset`](super::CircuitBreaker::reset) of a closed breaker is reported too, from
/// `Closed` to `Closed`: it starts the breaker afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateTransition {
    /// The state before.
    pub from: CircuitState,
    /// The state after.
    pub to: CircuitState,
    /// For a transition to [`CircuitState::Open`]: how long the circuit stays open.
    pub open_for: Option<Duration>,
}

pub(crate) type TransitionHook = Arc<dyn Fn(&StateTransition) + Send + Sync>;
