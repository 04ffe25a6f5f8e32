//! The controller's shared state: the pure core under a std mutex, the counters, and the
//! release path that admits waiters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::instruments::Instruments;
use super::state::{Core, Marks, Switch};
use super::{BackpressureConfig, BackpressureEvent, BackpressureMetrics};
use crate::events::{Emitter, EventBus};
use crate::{PatternKind, Rejection, RejectionReason};

/// What every clone of a [`Backpressure`](super::Backpressure) controller shares.
pub(super) struct Inner {
    name: Arc<str>,
    /// A std mutex, never held across an await: every critical section is a few pure
    /// decisions and, at most, waking the waiters they admit. Listeners run after unlocking.
    shared: Mutex<Shared>,
    /// Whether backpressure is on, copied out of the core under the lock after every
    /// change, so producers (and the stream adapter, before each pull) can ask without
    /// locking.
    active: AtomicBool,
    /// The configured wait timeout in nanoseconds, so `acquire` needs no second lock.
    wait_timeout: AtomicU64,
    rejected_backpressure: AtomicU64,
    rejected_wait_timeout: AtomicU64,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    pub(super) instruments: Instruments,
}

/// What the lock protects.
pub(super) struct Shared {
    pub(super) core: Core<oneshot::Sender<()>>,
    pub(super) config: BackpressureConfig,
    pub(super) marks: Marks,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Inner {
    pub(super) fn new(name: &str, config: BackpressureConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name),
            name,
            shared: Mutex::new(Shared {
                core: Core::new(),
                marks: Marks::from(&config),
                config,
            }),
            active: AtomicBool::new(false),
            wait_timeout: AtomicU64::new(nanos(config.wait_timeout)),
            rejected_backpressure: AtomicU64::new(0),
            rejected_wait_timeout: AtomicU64::new(0),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn events(&self) -> &EventBus {
        self.emitter.local()
    }

    pub(super) fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    pub(super) fn wait_timeout(&self) -> Duration {
        Duration::from_nanos(self.wait_timeout.load(Relaxed))
    }

    pub(super) fn metrics(&self) -> BackpressureMetrics {
        let inner = self;
        let (pending, waiting, active, admitted, config) = {
            let shared = inner.lock();
            let core = &shared.core;
            (
                core.pending(),
                core.waiting(),
                core.active(),
                core.admitted(),
                shared.config,
            )
        };
        let rejected_backpressure = inner.rejected_backpressure.load(Relaxed);
        let rejected_wait_timeout = inner.rejected_wait_timeout.load(Relaxed);
        let in_system = u64::from(pending) + u64::from(waiting);
        BackpressureMetrics {
            name: inner.name.to_string(),
            pending_count: pending,
            waiting_count: waiting,
            max_pending: config.max_pending,
            high_water_mark: config.high_water_mark,
            low_water_mark: config.low_water_mark,
            backpressure_active: active,
            total_accepted: admitted,
            total_rejected: rejected_backpressure + rejected_wait_timeout,
            rejected_backpressure,
            rejected_wait_timeout,
            utilization: (in_system as f64 / f64::from(config.max_pending)).min(1.0),
        }
    }

    /// Applies a validated config (see `Backpressure::set_config`).
    pub(super) fn reconfigure(&self, config: BackpressureConfig) {
        let inner = self;
        let mut switches = Vec::new();
        let marks = Marks::from(&config);
        {
            let mut shared = inner.lock();
            shared.config = config;
            shared.marks = marks;
            inner
                .wait_timeout
                .store(nanos(config.wait_timeout), Relaxed);
            switches.extend(shared.core.reconfigure(marks));
            Self::grant_waiters(&mut shared, &mut switches);
            inner.publish(&shared);
        }
        for switch in switches {
            inner.announce(Some(switch), marks);
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing under this lock calls user code; a poisoned lock still holds valid state.
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(super) fn publish(&self, shared: &Shared) {
        self.active.store(shared.core.active(), Relaxed);
    }

    /// An admitted item is done: pending - 1, and the waiters that may now go are admitted.
    pub(super) fn release(&self) {
        let mut shared = self.lock();
        let marks = shared.marks;
        let Some(switch) = shared.core.release(marks) else {
            // Still on, or off with nobody waiting: nothing else can change (the fast path).
            return;
        };
        let mut switches = vec![switch];
        Self::grant_waiters(&mut shared, &mut switches);
        self.publish(&shared);
        drop(shared);
        for switch in switches {
            self.announce(Some(switch), marks);
        }
    }

    /// Admits waiters in arrival order while the core allows it, waking each one.
    fn grant_waiters(shared: &mut Shared, switches: &mut Vec<Switch>) {
        let marks = shared.marks;
        while let Some((sender, switch)) = shared.core.grant(marks) {
            switches.extend(switch);
            if sender.send(()).is_err() {
                // Its receiver is gone without the waiter leaving the queue, which its guard
                // prevents; should it happen anyway, the slot goes on to the next waiter.
                switches.extend(shared.core.release(marks));
            }
        }
    }

    pub(super) fn reject(&self, reason: RejectionReason) -> Rejection {
        let counter = match reason {
            RejectionReason::WaitTimeout => &self.rejected_wait_timeout,
            _ => &self.rejected_backpressure,
        };
        counter.fetch_add(1, Relaxed);
        self.instruments.rejected.increment();
        tracing::debug!(target: "resilience::backpressure", controller = %self.name, %reason, "producer rejected");
        // No honest `retry_after`: when pending work falls to the low mark depends on
        // consumers, not on a clock.
        Rejection::new(
            PatternKind::Backpressure,
            Arc::clone(&self.name),
            reason,
            None,
        )
    }

    /// Reports a switch; never called under the lock.
    pub(super) fn announce(&self, switch: Option<Switch>, marks: Marks) {
        match switch {
            Some(Switch::On { pending }) => {
                self.instruments.active.set(1.0);
                tracing::info!(target: "resilience::backpressure", controller = %self.name, pending, high_water_mark = marks.high, "backpressure on");
                self.emitter.emit(|| BackpressureEvent::BackpressureHigh {
                    pending,
                    high_water_mark: marks.high,
                });
            }
            Some(Switch::Off { pending }) => {
                self.instruments.active.set(0.0);
                tracing::info!(target: "resilience::backpressure", controller = %self.name, pending, low_water_mark = marks.low, "backpressure off");
                self.emitter.emit(|| BackpressureEvent::BackpressureLow {
                    pending,
                    low_water_mark: marks.low,
                });
            }
            None => {}
        }
    }
}
