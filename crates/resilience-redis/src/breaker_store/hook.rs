//! From the local breaker to the sync task: its transition hook turns each transition into
//! a [`Change`] for the shared state, in the order the transitions happened.

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitState, StateTransition};
use tokio::sync::mpsc;

use super::Known;

/// A transition of the local breaker that the shared state should follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The detector tripped (or `trip()`): open for `open_for`.
    Opened { open_for: Duration },
    /// `force_open()`.
    ForcedOpen,
    /// Closed. After successful local probes, `expected` is the shared state this instance
    /// knew when its breaker closed: the close applies only if the shared state is still
    /// that one. An operator's reset has none and applies whatever the shared state.
    Reset { expected: Option<Known> },
}

thread_local! {
    /// Set while this crate drives the local breaker itself (applying a shared state, an
    /// operator's reset): the transitions that causes must not be written back as the
    /// breaker's own. The hook runs synchronously on the thread that made the transition,
    /// so a thread-local tells the two apart exactly.
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the transition hook silenced on this thread.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            APPLYING.with(|applying| applying.set(self.0));
        }
    }
    let _restore = Restore(APPLYING.with(|applying| applying.replace(true)));
    f()
}

/// The local breaker's transition hook: forwards its transitions to the sync task. It runs
/// under the breaker's lock, so the changes queue up in the order the transitions happened,
/// and it only reads `seen` (never held while calling the breaker) and sends on an
/// unbounded channel: no await, no lock that could wait for the breaker.
pub(super) fn hook(
    changes: mpsc::UnboundedSender<Change>,
    seen: Arc<Mutex<Known>>,
) -> impl Fn(&StateTransition) + Send + Sync {
    move |transition| {
        if APPLYING.with(Cell::get) {
            return;
        }
        let change = match transition.to {
            CircuitState::Open => Change::Opened {
                open_for: transition.open_for.unwrap_or_default(),
            },
            CircuitState::ForcedOpen => Change::ForcedOpen,
            // Captured now, not when the write happens: a reopen adopted in between must
            // make this close fail, not be overwritten by it.
            CircuitState::Closed if transition.from == CircuitState::HalfOpen => Change::Reset {
                expected: Some(*seen.lock().unwrap_or_else(|p| p.into_inner())),
            },
            CircuitState::Closed => Change::Reset { expected: None },
            _ => return,
        };
        let _ = changes.send(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use resilience::circuit_breaker::CircuitBreaker;

    #[test]
    fn a_close_after_probes_expects_the_shared_state_known_when_it_closed() {
        let (sender, mut changes) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Known {
            epoch: 7,
            version: 4,
        }));
        let breaker = CircuitBreaker::builder("capture")
            .success_threshold(1)
            .build()
            .unwrap();
        breaker.set_transition_hook(hook(sender, Arc::clone(&seen)));
        breaker.open_for(Duration::ZERO);
        breaker.try_acquire().unwrap().success();
        // A reopen adopted after the close, before the sync task writes it.
        *seen.lock().unwrap() = Known {
            epoch: 7,
            version: 5,
        };
        assert_eq!(
            changes.try_recv().unwrap(),
            Change::Opened {
                open_for: Duration::ZERO
            }
        );
        assert_eq!(
            changes.try_recv().unwrap(),
            Change::Reset {
                expected: Some(Known {
                    epoch: 7,
                    version: 4
                })
            }
        );
        // Transitions made while applying a shared state are not sent back.
        quietly(|| breaker.trip());
        assert!(changes.try_recv().is_err());
    }
}
