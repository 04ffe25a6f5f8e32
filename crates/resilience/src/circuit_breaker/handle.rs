//! [`CircuitBreaker`]: the async shell around the pure state machine.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::detector::{CallRecord, DetectorState, FailureDetector, RestoreError};
use super::instruments::Instruments;
use super::permit::{Admitted, OwnedPermit, Permit};
use super::state::{Admission, Machine, Phase, Ticket, Transition};
use super::transition::{StateTransition, TransitionHook};
use super::{
    CircuitBreakerBuilder, CircuitBreakerConfig, CircuitBreakerEvent, CircuitBreakerMetrics,
    CircuitState,
};
use crate::classify::{judge, Classify, EveryError, Outcome};
use crate::clock::Clock;
use crate::error::Name;
use crate::events::{Emitter, EventBus};
use crate::hook::{isolate, CallbackKind};
use crate::stage::{self, Admit, LeaseToken, Leased, Stage, StagePermit};
use crate::started::Started;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{Mutex, MutexGuard};
use crate::tally::ResettableTally;
use crate::{ConfigError, Error, PatternKind, Rejection, RejectionReason};

pub(crate) type StateCallback = Arc<dyn Fn(CircuitState, CircuitState) + Send + Sync>;

/// A circuit breaker: stops calling a failing dependency, then probes it until it recovers.
///
/// Cheap to clone; clones share one state, so a breaker built once can be handed to every
/// task, service and layer that talks to the same dependency. See the
/// [module docs](super) for how it decides.
#[derive(Clone)]
pub struct CircuitBreaker {
    pub(super) inner: Arc<Inner>,
}

/// What the lock protects: everything a transition reads or writes.
struct Core {
    machine: Machine,
    detector: Box<dyn FailureDetector>,
    config: CircuitBreakerConfig,
    consecutive_failures: u64,
    last_failure: Option<Instant>,
    /// Called under the lock on every transition (see `set_transition_hook`).
    hook: Option<TransitionHook>,
}

/// Which of [`Inner::counts`] counts successes.
const SUCCESSES: usize = 0;
/// Which of [`Inner::counts`] counts rejections.
const REJECTED: usize = 1;

pub(crate) struct Inner {
    name: Arc<str>,
    /// The name again, as every rejection copies it (see [`Name`]): reading a name as a
    /// `str` stays free on the paths that judge outcomes.
    rejection_name: Name,
    core: Mutex<Core>,
    /// The phase and generation, published after every change so the hot paths can decide
    /// without the lock: `generation << 3 | state code`.
    word: AtomicU64,
    /// When an open circuit may half-open, in nanoseconds since the clock's epoch.
    open_until: AtomicU64,
    /// Whether a closed-state success would change nothing but counters (see
    /// `FailureDetector::success_is_noop`); lets successes skip the lock.
    success_noop: AtomicBool,
    /// Whether the detector wants call durations.
    measure: AtomicBool,
    /// The per-call time limit in nanoseconds, 0 for none.
    timeout: AtomicU64,
    /// Every time the breaker reads, on one timeline (see [`Clock`] for its source).
    clock: Clock,
    /// Successes and rejections, counted per thread: the closed-state success path and the
    /// open-state rejection write nothing that threads share (see [`SUCCESSES`], [`REJECTED`]).
    counts: ResettableTally,
    failures: AtomicU64,
    ignored: AtomicU64,
    /// The success count as it was at the last failure: consecutive successes are the
    /// difference, so a success costs one count, not two.
    successes_at_failure: AtomicU64,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    instruments: Instruments,
    on_state_change: Option<StateCallback>,
}

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED_OPEN: u64 = 3;
const DISABLED: u64 = 4;

fn code(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => CLOSED,
        CircuitState::Open => OPEN,
        CircuitState::HalfOpen => HALF_OPEN,
        CircuitState::ForcedOpen => FORCED_OPEN,
        CircuitState::Disabled => DISABLED,
    }
}

fn decode(word: u64) -> (u64, u64) {
    (word >> 3, word & 0b111)
}

fn state_of(code: u64) -> CircuitState {
    match code {
        CLOSED => CircuitState::Closed,
        OPEN => CircuitState::Open,
        HALF_OPEN => CircuitState::HalfOpen,
        FORCED_OPEN => CircuitState::ForcedOpen,
        _ => CircuitState::Disabled,
    }
}

impl CircuitBreaker {
    /// Starts building a breaker named `name`.
    pub fn builder(name: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name.into())
    }

    /// A breaker from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: CircuitBreakerConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new(
        name: &str,
        config: CircuitBreakerConfig,
        on_state_change: Option<StateCallback>,
    ) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let detector = config.detector.build();
        let core = Core {
            machine: Machine::new(),
            detector,
            config,
            consecutive_failures: 0,
            last_failure: None,
            hook: None,
        };
        let inner = Inner {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name),
            rejection_name: Name::new(&name),
            name,
            word: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            success_noop: AtomicBool::new(false),
            measure: AtomicBool::new(false),
            timeout: AtomicU64::new(0),
            clock: Clock::new(),
            counts: ResettableTally::new(),
            failures: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            successes_at_failure: AtomicU64::new(0),
            on_state_change,
            core: Mutex::new(core),
        };
        inner.publish(&inner.lock());
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current state. Never stale: an open circuit whose open duration has passed is
    /// reported (and becomes) half-open.
    pub fn state(&self) -> CircuitState {
        let (_, state) = decode(self.inner.word.load(Ordering::Acquire));
        match state {
            CLOSED => CircuitState::Closed,
            HALF_OPEN => CircuitState::HalfOpen,
            FORCED_OPEN => CircuitState::ForcedOpen,
            DISABLED => CircuitState::Disabled,
            _ if self
                .inner
                .open_remaining(self.inner.clock.nanos())
                .is_some() =>
            {
                CircuitState::Open
            }
            _ => self.inner.update(|core, now| core.machine.poll(now)),
        }
    }

    /// Whether the circuit is closed, read from the state word without moving an expired
    /// open circuit to half-open (so no event is emitted and no lock taken).
    pub(super) fn is_closed_now(&self) -> bool {
        decode(self.inner.word.load(Ordering::Acquire)).1 == CLOSED
    }

    /// Whether anything but `holders` other handles refer to this breaker (a clone, or the
    /// permit of a call in flight: an owned permit holds a handle, a borrowed one borrows
    /// one).
    pub(super) fn is_shared_beyond(&self, holders: usize) -> bool {
        Arc::strong_count(&self.inner) > holders
    }

    stage::entry_points! {
        /// Runs `operation` if the breaker admits it, counting every `Err` as a failure.
        ///
        /// Dropping the returned future at any point releases what it holds: a half-open probe
        /// slot is given back, never leaked.
        call;
        /// Like [`call`](Self::call), judging the outcome with `classifier`.
        call_with;
        /// Runs an operation that already returns this crate's [`Error`](crate::Error), such as an inner pattern
        /// of a pipeline. The operation's own errors are judged by `classifier`; an inner timeout,
        /// exhausted retry or failed fallback counts as a failure; an inner rejection (a full
        /// bulkhead, say) is ignored. Errors pass through unchanged.
        execute(classifier);
    }

    /// Runs `operation`, or `fallback` with the rejection when the breaker refuses it
    /// (c-breaker's `fallback`). The operation's own failures are returned, not replaced.
    pub async fn call_or_fallback<T, E, F, Fut, Fb, FbFut>(
        &self,
        operation: F,
        fallback: Fb,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        Fb: FnOnce(Rejection) -> FbFut,
        FbFut: Future<Output = Result<T, E>>,
    {
        match self.call(operation).await {
            Err(Error::Rejected(rejection)) => {
                fallback(rejection.clone())
                    .await
                    .map_err(|error| Error::FallbackFailed {
                        primary: Box::new(Error::Rejected(rejection)),
                        fallback: error,
                    })
            }
            other => other,
        }
    }

    /// Runs a blocking `operation` if the breaker admits it, for synchronous code.
    ///
    /// A configured `timeout` does not apply: blocking work cannot be cancelled.
    #[inline]
    pub fn call_blocking<T, E, F>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
    {
        let permit = Permit::new(&self.inner, self.inner.acquire()?);
        let result = operation();
        permit.record(self.inner.classify(&EveryError, &result));
        result.map_err(Error::Inner)
    }

    /// Asks for admission without running anything; the caller reports the outcome on the
    /// returned [`Permit`]. A permit dropped without an outcome counts as ignored and gives a
    /// half-open probe slot back.
    ///
    /// The permit borrows the breaker. For a permit that must outlive the borrow (moved into
    /// a spawned task), use [`try_acquire_owned`](Self::try_acquire_owned).
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejection> {
        let admitted = self.inner.acquire()?;
        Ok(Permit::new(&self.inner, admitted))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that holds a reference to the
    /// breaker instead of borrowing it, so it can be moved into a task and outlive this
    /// handle. Taking and dropping the reference costs two atomic operations the borrowed
    /// permit does not pay.
    ///
    /// ```
    /// use resilience::circuit_breaker::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = CircuitBreaker::builder("ledger").build()?;
    /// let permit = breaker.try_acquire_owned()?;
    /// tokio::spawn(async move {
    ///     // ... make the call ...
    ///     permit.success();
    /// })
    /// .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejection> {
        // Borrowed until admitted: a rejection takes no reference count.
        let admitted = self.inner.acquire()?;
        Ok(OwnedPermit::new(self.clone(), admitted))
    }

    /// Like [`try_acquire_owned`](Self::try_acquire_owned), the permit taking this handle's
    /// reference instead of one of its own (a keyed map's lookup hands its clone on).
    pub(super) fn try_acquire_into(self) -> Result<OwnedPermit, Rejection> {
        let admitted = self.inner.acquire()?;
        Ok(OwnedPermit::new(self, admitted))
    }

    /// Opens the circuit now, as if the detector had tripped.
    pub fn trip(&self) {
        self.inner
            .update(|core, now| core.machine.trip(&core.config, now));
    }

    /// Opens the circuit for exactly `duration` from now, as decided elsewhere: for example by
    /// another instance sharing this breaker's state, so that `retry_after` tells the time
    /// actually left.
    ///
    /// Unlike [`trip`](Self::trip) it does not count as a trip (the open duration of the next
    /// trip does not grow), and an open circuit takes the new end of its open period
    /// (without a new transition). A forced-open or disabled breaker is left as it is. A
    /// zero `duration` makes the circuit half-open at its next call.
    pub fn open_for(&self, duration: Duration) {
        let inner = &*self.inner;
        let (transition, failures) = {
            let mut core = inner.lock();
            let transition = core.machine.open_for(duration, inner.clock.now());
            inner.publish(&core);
            (transition, core.consecutive_failures)
        };
        if let Some(transition) = transition {
            inner.announce(transition, failures);
        }
    }

    /// Installs the transition hook: `hook` is called on every change of state, in the
    /// order the changes happen, exactly once each. A breaker has one hook; installing
    /// another replaces it.
    ///
    /// Meant for code that mirrors the state elsewhere (a store shared by several
    /// processes); listeners that only observe should use [`events`](Self::events). The
    /// hook runs on the thread that made the transition, *under the breaker's lock*: keep it
    /// short (a send on a channel), and never call back into this breaker from it, which
    /// would deadlock.
    ///
    /// ```
    /// use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
    /// use std::sync::mpsc;
    ///
    /// # fn main() -> Result<(), resilience::ConfigError> {
    /// let breaker = CircuitBreaker::builder("payments").build()?;
    /// let (sender, transitions) = mpsc::channel();
    /// breaker.set_transition_hook(move |transition| {
    ///     let _ = sender.send((transition.from, transition.to));
    /// });
    /// breaker.force_open();
    /// breaker.reset();
    /// let seen: Vec<_> = transitions.try_iter().collect();
    /// assert_eq!(
    ///     seen,
    ///     [
    ///         (CircuitState::Closed, CircuitState::ForcedOpen),
    ///         (CircuitState::ForcedOpen, CircuitState::Closed),
    ///     ]
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_transition_hook(&self, hook: impl Fn(&StateTransition) + Send + Sync + 'static) {
        self.inner.lock().hook = Some(Arc::new(hook));
    }

    /// Holds the circuit open, rejecting every call, until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.inner.update(|core, _| core.machine.force_open());
    }

    /// Admits every call and only keeps metrics, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.inner.update(|core, _| core.machine.disable());
    }

    /// Back to closed with fresh counters, from any state. Calls admitted before the reset no
    /// longer count. Emits `circuit_reset`.
    pub fn reset(&self) {
        let inner = &*self.inner;
        let (from, transition) = {
            let mut core = inner.lock();
            let from = core.machine.phase().state();
            let transition = {
                let Core {
                    machine, detector, ..
                } = &mut *core;
                machine.reset(detector.as_mut())
            };
            core.consecutive_failures = 0;
            core.last_failure = None;
            inner.counts.reset();
            for counter in [&inner.failures, &inner.ignored, &inner.successes_at_failure] {
                counter.store(0, Ordering::Relaxed);
            }
            inner.publish(&core);
            (from, transition)
        };
        if from != CircuitState::Closed {
            inner.announce(transition, 0);
        }
        inner
            .emitter
            .emit(|| CircuitBreakerEvent::CircuitReset { from });
        tracing::info!(target: "resilience::circuit_breaker", breaker = %inner.name, %from, "circuit reset");
    }

    /// A snapshot of the counters and state, with aioresilience's and c-breaker's field names.
    pub fn metrics(&self) -> CircuitBreakerMetrics {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let (transition, metrics) = {
            let mut core = inner.lock();
            let transition = core.machine.poll(now);
            if transition.is_some() {
                inner.publish(&core);
            }
            let phase = core.machine.phase();
            let counts = inner.counts.counts();
            let metrics = CircuitBreakerMetrics {
                name: inner.name.to_string(),
                state: phase.state(),
                total_requests: 0,
                failure_rate: 0.0,
                successful_requests: counts[SUCCESSES],
                failed_requests: inner.failures.load(Ordering::Relaxed),
                ignored_requests: inner.ignored.load(Ordering::Relaxed),
                rejected_requests: counts[REJECTED],
                consecutive_failures: core.consecutive_failures,
                consecutive_successes: inner.consecutive_successes(),
                time_since_last_failure: core
                    .last_failure
                    .map(|at| now.saturating_duration_since(at)),
                remaining_open_time: match phase {
                    Phase::Open { until, .. } => Some(until.saturating_duration_since(now)),
                    _ => None,
                },
                half_open_calls: match phase {
                    Phase::HalfOpen { probes, .. } => probes,
                    _ => 0,
                },
                trips: core.machine.trips(),
                detector: core.detector.snapshot(now),
            };
            (transition.map(|t| (t, core.consecutive_failures)), metrics)
        };
        if let Some((transition, failures)) = transition {
            inner.announce(transition, failures);
        }
        metrics.finish()
    }

    /// The failure detector's state (c-breaker's `get_state`), times relative to now.
    pub fn detector_state(&self) -> DetectorState {
        self.inner.lock().detector.snapshot(self.inner.clock.now())
    }

    /// Loads a detector state taken by [`detector_state`](Self::detector_state), for example
    /// from another process (c-breaker's `load_state`).
    pub fn restore_detector(&self, state: &DetectorState) -> Result<(), RestoreError> {
        let mut core = self.inner.lock();
        core.detector.restore(state, self.inner.clock.now())?;
        self.inner.publish(&core);
        Ok(())
    }

    /// The current configuration.
    pub fn config(&self) -> CircuitBreakerConfig {
        self.inner.lock().config.clone()
    }

    /// Replaces the configuration at run time, keeping the state, counters, events and
    /// listeners. A changed detector starts empty; an unchanged one keeps its history.
    pub fn set_config(&self, config: CircuitBreakerConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let mut core = self.inner.lock();
        if core.config.detector != config.detector {
            core.detector = config.detector.build();
        }
        core.config = config;
        self.inner.publish(&core);
        Ok(())
    }

    /// This breaker's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic under this lock can only come from a user detector; its state is still the
        // best we have, so keep going rather than poisoning every later call.
        self.core
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// How long an open circuit has left at `now` (nanoseconds since the clock's epoch);
    /// `None` once its time is up. Integer arithmetic: this runs on every rejection.
    fn open_remaining(&self, now: u64) -> Option<Duration> {
        let until = self.open_until.load(Ordering::Relaxed);
        (now < until).then(|| Duration::from_nanos(until - now))
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn consecutive_successes(&self) -> u64 {
        let successes = self.counts.counts()[SUCCESSES];
        successes.saturating_sub(self.successes_at_failure.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn call_timeout(&self) -> Option<Duration> {
        match self.timeout.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Copies what the hot paths need out of the locked state, and tells the transition hook
    /// about a transition. Every transition is published before the lock is released, so
    /// comparing generations finds each one exactly once, in order.
    fn publish(&self, core: &Core) {
        let machine = &core.machine;
        let phase = machine.phase();
        if let Some(hook) = &core.hook {
            let (generation, from) = decode(self.word.load(Ordering::Relaxed));
            if generation != machine.generation() {
                hook(&StateTransition {
                    from: state_of(from),
                    to: phase.state(),
                    open_for: match phase {
                        Phase::Open { open_for, .. } => Some(open_for),
                        _ => None,
                    },
                });
            }
        }
        if let Phase::Open { until, .. } = phase {
            self.open_until
                .store(self.clock.nanos_at(until), Ordering::Relaxed);
        }
        self.success_noop.store(
            core.consecutive_failures == 0 && core.detector.success_is_noop(),
            Ordering::Relaxed,
        );
        self.measure
            .store(core.detector.needs_duration(), Ordering::Relaxed);
        let timeout = core.config.timeout.map_or(0, |limit| {
            u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.timeout.store(timeout, Ordering::Relaxed);
        // Released last, so a reader that sees the new word also sees the values above.
        self.word.store(
            machine.generation() << 3 | code(phase.state()),
            Ordering::Release,
        );
    }

    /// Runs `change` on the locked state, then announces its transition after unlocking.
    fn update(
        &self,
        change: impl FnOnce(&mut Core, Instant) -> Option<Transition>,
    ) -> CircuitState {
        let (state, transition, failures) = {
            let mut core = self.lock();
            let transition = change(&mut core, self.clock.now());
            if transition.is_some() {
                self.publish(&core);
            }
            let state = core.machine.phase().state();
            (state, transition, core.consecutive_failures)
        };
        if let Some(transition) = transition {
            self.announce(transition, failures);
        }
        state
    }

    /// Admission: decided from the published word alone in the closed state and while an
    /// open circuit's time is not up; otherwise under the lock.
    ///
    /// Inlined, and the locked decision kept out of line, so the two hot answers (a closed
    /// circuit's admission, an open one's rejection) cost no call and no spilled registers.
    #[inline(always)]
    pub(super) fn acquire(&self) -> Result<Admitted, Rejection> {
        let word = self.word.load(Ordering::Acquire);
        let ticket = match decode(word).1 {
            // The published word is the ticket of a call admitted now.
            CLOSED | DISABLED => word,
            state => {
                // One read of the clock serves both the lock-free rejection and the locked
                // decision.
                let now = self.clock.nanos();
                match self.open_remaining(now) {
                    Some(remaining) if state == OPEN => {
                        return Err(self.reject(
                            RejectionReason::CircuitOpen,
                            Some(remaining),
                            CircuitState::Open,
                        ))
                    }
                    _ => ticket_tag(self.acquire_locked(now)?),
                }
            }
        };
        Ok(Admitted {
            ticket,
            started: self.started(),
        })
    }

    /// When an admitted call starts, if the detector measures calls.
    #[inline]
    fn started(&self) -> Started {
        if self.measure.load(Ordering::Relaxed) {
            Started::at_nanos(self.clock.nanos())
        } else {
            Started::UNTIMED
        }
    }

    /// Admission under the lock, at `now` (nanoseconds since the clock's epoch): half-open
    /// probes, an open circuit whose time is up, a forced-open one.
    #[inline(never)]
    fn acquire_locked(&self, now: u64) -> Result<Ticket, Rejection> {
        let (admission, transition, state) = {
            let mut core = self.lock();
            let max_probes = core.config.half_open_max_calls;
            let (admission, transition) =
                core.machine.admit(self.clock.instant_at(now), max_probes);
            if transition.is_some() || matches!(admission, Admission::Admitted(_)) {
                self.publish(&core);
            }
            let state = core.machine.phase().state();
            (
                admission,
                transition.map(|t| (t, core.consecutive_failures)),
                state,
            )
        };
        if let Some((transition, failures)) = transition {
            self.announce(transition, failures);
        }
        match admission {
            Admission::Admitted(ticket) => Ok(ticket),
            Admission::Rejected {
                reason,
                retry_after,
            } => Err(self.reject(reason, retry_after, state)),
        }
    }

    #[inline]
    fn reject(
        &self,
        reason: RejectionReason,
        retry_after: Option<Duration>,
        state: CircuitState,
    ) -> Rejection {
        self.counts.add(REJECTED);
        self.instruments.rejected();
        self.emitter
            .emit(|| CircuitBreakerEvent::CallRejected { state, retry_after });
        Rejection::named(
            PatternKind::CircuitBreaker,
            self.rejection_name.clone(),
            reason,
            retry_after,
        )
    }

    /// Takes the outcome of a call `admitted`.
    pub(super) fn complete(&self, admitted: Admitted, outcome: Outcome) {
        let ticket = ticket_of_tag(admitted.ticket);
        if outcome == Outcome::Success && !ticket.is_probe() && admitted.started == Started::UNTIMED
        {
            let (generation, state) = decode(self.word.load(Ordering::Acquire));
            let unchanged = generation == ticket.generation
                && (state == DISABLED
                    || (state == CLOSED && self.success_noop.load(Ordering::Relaxed)));
            if unchanged {
                self.counts.add(SUCCESSES);
                self.instruments.completed(Outcome::Success, None);
                self.emitter.emit(|| CircuitBreakerEvent::CallSuccess {
                    state: ticket.admitted_in,
                    duration: None,
                });
                return;
            }
        }
        self.complete_locked(ticket, outcome, admitted.started);
    }

    fn complete_locked(&self, ticket: Ticket, outcome: Outcome, started: Started) {
        let now = self.clock.now();
        let duration = started
            .instant(&self.clock)
            .map(|at| now.saturating_duration_since(at));
        let (transition, failure_count) = {
            let mut core = self.lock();
            let record = match outcome {
                Outcome::Success => {
                    self.counts.add(SUCCESSES);
                    core.consecutive_failures = 0;
                    Some(CallRecord {
                        failed: false,
                        duration,
                    })
                }
                Outcome::Failure => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    self.successes_at_failure
                        .store(self.counts.counts()[SUCCESSES], Ordering::Relaxed);
                    core.consecutive_failures += 1;
                    core.last_failure = Some(now);
                    Some(CallRecord {
                        failed: true,
                        duration,
                    })
                }
                Outcome::Ignored => {
                    self.ignored.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            let Core {
                machine,
                detector,
                config,
                ..
            } = &mut *core;
            let transition = machine.complete(ticket, record, detector.as_mut(), config, now);
            self.publish(&core);
            (transition, core.consecutive_failures)
        };
        self.instruments.completed(outcome, duration);
        match outcome {
            Outcome::Success => self.emitter.emit(|| CircuitBreakerEvent::CallSuccess {
                state: ticket.admitted_in,
                duration,
            }),
            Outcome::Failure => {
                tracing::debug!(target: "resilience::circuit_breaker", breaker = %self.name, failure_count, "call failed");
                self.emitter.emit(|| CircuitBreakerEvent::CallFailure {
                    state: ticket.admitted_in,
                    failure_count,
                });
            }
            Outcome::Ignored => {}
        }
        if let Some(transition) = transition {
            self.announce(transition, failure_count);
        }
    }

    pub(super) fn classify<T, E>(
        &self,
        classifier: &impl Classify<T, E>,
        result: &Result<T, E>,
    ) -> Outcome {
        judge(classifier, result, PatternKind::CircuitBreaker, &self.name)
    }

    /// Reports a transition: events, the state-change callback and a log line. Never called
    /// under the lock.
    fn announce(&self, transition: Transition, failure_count: u64) {
        let Transition { from, to, trips } = transition;
        let to_state = to.state();
        let success_count = self.consecutive_successes();
        self.instruments.transition(from, to_state);
        self.emitter.emit(|| CircuitBreakerEvent::StateChange {
            from,
            to: to_state,
            failure_count,
            success_count,
        });
        match to {
            Phase::Open { open_for, .. } => {
                tracing::warn!(target: "resilience::circuit_breaker", breaker = %self.name, %from, ?open_for, trips, "circuit opened");
                self.emitter.emit(|| CircuitBreakerEvent::CircuitOpened {
                    from,
                    open_for,
                    trips,
                });
            }
            Phase::HalfOpen { .. } => {
                tracing::info!(target: "resilience::circuit_breaker", breaker = %self.name, "circuit half-open");
                self.emitter.emit(|| CircuitBreakerEvent::CircuitHalfOpen);
            }
            Phase::Closed => {
                tracing::info!(target: "resilience::circuit_breaker", breaker = %self.name, %from, "circuit closed");
                self.emitter
                    .emit(|| CircuitBreakerEvent::CircuitClosed { from });
            }
            Phase::ForcedOpen | Phase::Disabled => {
                tracing::info!(target: "resilience::circuit_breaker", breaker = %self.name, %from, to = %to_state, "state changed");
            }
        }
        if let Some(callback) = &self.on_state_change {
            isolate(
                CallbackKind::StateChange,
                PatternKind::CircuitBreaker,
                &self.name,
                || callback(from, to_state),
            );
        }
    }
}

/// Decides at once: admitted while closed (or with a free probe slot while half-open),
/// refused with the remaining open time otherwise. The configured `timeout` is the call limit.
impl Stage for CircuitBreaker {
    type Permit = OwnedPermit;

    #[inline]
    fn admit(&self) -> Admit<OwnedPermit> {
        Admit::ready(self.try_acquire_owned())
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::CircuitBreaker
    }

    #[inline]
    fn call_limit(&self) -> Option<Duration> {
        self.inner.call_timeout()
    }

    /// A call run by `call` borrows the breaker: no reference count is taken.
    #[inline]
    fn lease(&self) -> Leased<OwnedPermit> {
        match self.inner.acquire() {
            Ok(admitted) => Leased::Token(
                LeaseToken::new(admitted.ticket)
                    .started_at(admitted.started.instant(&self.inner.clock))
                    .wanting_outcome(),
            ),
            Err(rejection) => Leased::Rejected(rejection),
        }
    }

    #[inline]
    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        let admitted = Admitted {
            ticket: token.tag(),
            started: Started::of(&self.inner.clock, token.started()),
        };
        self.inner.complete(admitted, outcome);
    }
}

/// A ticket as a lease token's word: the generation and the state, as in the state word.
fn ticket_tag(ticket: Ticket) -> u64 {
    ticket.generation << 3 | code(ticket.admitted_in)
}

pub(super) fn ticket_of_tag(tag: u64) -> Ticket {
    let (generation, state) = decode(tag);
    Ticket {
        generation,
        admitted_in: state_of(state),
    }
}

// The stage's entry points are inlined into the generic runners (`stage::call`, the tower
// layer), which are compiled in the caller's crate: called instead, each passes the permit
// through memory, read back with wide loads right after it was written field by field.
impl StagePermit for OwnedPermit {
    /// Every outcome counts: a half-open probe's decides the circuit.
    #[inline]
    fn wants_outcome(&self) -> bool {
        true
    }

    #[inline]
    fn record(self, outcome: Outcome) {
        Self::record(self, outcome);
    }
}

impl std::borrow::Borrow<Inner> for CircuitBreaker {
    fn borrow(&self) -> &Inner {
        &self.inner
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
