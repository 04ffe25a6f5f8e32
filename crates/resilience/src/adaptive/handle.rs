//! [`AdaptiveLimiter`]: the async shell around a [`LimitAlgorithm`].

use std::fmt;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::instruments::Instruments;
use super::permit::{Admission, OwnedPermit, Permit};
use super::state;
use super::window::{self, Closed, SharedWindow, Ticket};
use super::{
    AdaptiveConfig, AdaptiveEvent, AdaptiveLimiterBuilder, AdaptiveMetrics, Aimd, AlgorithmConfig,
    LimitAlgorithm, Sample,
};
use crate::classify::Outcome;
use crate::clock::Clock;
use crate::error::Name;
use crate::events::{Emitter, EventBus};
use crate::stage::{self, Admit, LeaseToken, Leased, Stage, StagePermit};
use crate::started::Started;
use crate::sync::Padded;
use crate::tally::Tally;
use crate::{ConfigError, PatternKind, Rejection, RejectionReason};

/// An adaptive concurrency limiter: admits calls while fewer than its limit are in flight, and
/// moves the limit with what the calls' outcomes and latencies say.
///
/// Cheap to clone; clones share one limit and one in-flight count. See the
/// [module docs](super) for how it decides.
#[derive(Clone)]
pub struct AdaptiveLimiter {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    name: Arc<str>,
    /// The name again, as every rejection copies it (see [`Name`]).
    rejection_name: Name,
    /// What every call reads and writes, together on cache lines of their own.
    hot: Padded<Hot>,
    algorithm: Mutex<Learner>,
    /// The clock calls are timed on: the time-stamp counter, or tokio's clock when it was
    /// paused at build time (see [`Clock`]).
    clock: Clock,
    config: Mutex<AdaptiveConfig>,
    wait_timeout: AtomicU64,
    /// Calls ended with a success (yes) or a failure (no), counted per thread: a completed
    /// call pays no atomic read-modify-write for its count. The calls admitted are those
    /// ended plus those in flight, so admission counts nothing.
    outcomes: Tally,
    /// Calls ended with an outcome that says nothing (cancelled ones among them): rare.
    ignored: AtomicU64,
    rejected: AtomicU64,
    notify: Notify,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    instruments: Instruments,
}

/// The atomics every admission and every release touch. Two threads taking and releasing
/// slots of one limiter pass these lines back and forth; kept together, a call moves one line
/// pair between cores instead of several, and the lines hold nothing else (the reference count,
/// the read-only fields) that would be dragged along.
struct Hot {
    in_flight: AtomicU32,
    /// The algorithm's limit, published after every change so admission needs no lock.
    limit: AtomicU32,
    /// Callers waiting in `acquire`; releases only touch `notify` when there are any.
    waiters: AtomicU32,
    /// AIMD's window, counted without the lock (see [`SharedWindow`]); for another algorithm
    /// it counts nothing, and every call is a timed sample fed under the lock.
    window: SharedWindow,
}

impl AdaptiveLimiter {
    /// Starts building a limiter named `name`.
    pub fn builder(name: impl Into<String>) -> AdaptiveLimiterBuilder {
        AdaptiveLimiterBuilder::new(name.into())
    }

    /// A limiter from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: AdaptiveConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new(name: &str, config: AdaptiveConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let clock = Clock::new();
        let window = SharedWindow::default();
        let algorithm = Learner::new(&config.algorithm, &window, &clock);
        let inner = Inner {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name, algorithm.limit().max(1)),
            rejection_name: Name::new(&name),
            name,
            hot: Padded(Hot {
                in_flight: AtomicU32::new(0),
                limit: AtomicU32::new(algorithm.limit().max(1)),
                waiters: AtomicU32::new(0),
                window,
            }),
            algorithm: Mutex::new(algorithm),
            clock,
            wait_timeout: AtomicU64::new(nanos(config.wait_timeout)),
            config: Mutex::new(config),
            outcomes: Tally::new(),
            ignored: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            notify: Notify::new(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.inner.hot.limit.load(Ordering::Acquire)
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> u32 {
        self.inner.hot.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot if fewer than the limit are in flight, without waiting
    /// (aioresilience's `acquire`). Report the outcome on the [`Permit`].
    ///
    /// The permit borrows the limiter; for one that must outlive the borrow (moved into a
    /// spawned task), use [`try_acquire_owned`](Self::try_acquire_owned).
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejection> {
        Ok(Permit::new(self, self.take_now()?))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that holds a reference to the
    /// limiter instead of borrowing it, so it can be moved into a task and outlive this
    /// handle. Taking and dropping the reference costs two atomic operations the borrowed
    /// permit does not pay.
    ///
    /// ```
    /// use resilience::adaptive::AdaptiveLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = AdaptiveLimiter::builder("search").build()?;
    /// let permit = limiter.try_acquire_owned()?;
    /// tokio::spawn(async move {
    ///     // ... make the call ...
    ///     permit.success();
    /// })
    /// .await?;
    /// assert_eq!(limiter.in_flight(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejection> {
        Ok(OwnedPermit::new(self.clone(), self.take_now()?))
    }

    /// Takes a slot if one is free now, or after a due window raised the limit.
    #[inline]
    fn take_now(&self) -> Result<Admission, Rejection> {
        match self.take_slot() {
            Some(admission) => Ok(admission),
            None => self.take_after_poll(),
        }
    }

    /// At the limit: a time window may be due and may raise the limit, so look before
    /// refusing.
    #[cold]
    fn take_after_poll(&self) -> Result<Admission, Rejection> {
        if self.inner.poll() {
            if let Some(admission) = self.take_slot() {
                return Ok(admission);
            }
        }
        Err(self.inner.reject())
    }

    /// Takes a slot, waiting up to `timeout` for one to free up (or for the limit to rise).
    /// Dropping the future gives up waiting; nothing leaks.
    ///
    /// The permit holds a reference to the limiter: it is what the limiter hands out as a
    /// [`Stage`], whose waits run in a future of their own.
    pub async fn acquire(&self, timeout: Duration) -> Result<OwnedPermit, Rejection> {
        if timeout.is_zero() {
            return self.try_acquire_owned();
        }
        if let Some(permit) = self.enter() {
            return Ok(permit);
        }
        // Saturating: a caller may pass `Duration::MAX` for "wait as long as it takes".
        let deadline = crate::time::deadline(Instant::now(), timeout);
        let _waiting = Waiting::new(&self.inner);
        loop {
            let mut notified = pin!(self.inner.notify.notified());
            notified.as_mut().enable();
            // Registered before looking, so a release between the look and the wait wakes us.
            if let Some(permit) = self.enter() {
                return Ok(permit);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_acquire_owned();
            }
        }
    }

    #[inline]
    fn enter(&self) -> Option<OwnedPermit> {
        let admission = self.take_slot()?;
        Some(OwnedPermit::new(self.clone(), admission))
    }

    /// Takes a slot if one is free now: when it was taken, and the calls in flight with it.
    #[inline]
    fn take_slot(&self) -> Option<Admission> {
        let inner = &*self.inner;
        // Read before the compare-exchange, which would otherwise wait for it.
        let started = inner.start();
        let limit = inner.hot.limit.load(Ordering::Acquire);
        let admitted = inner
            .hot
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |in_flight| {
                state::admit(in_flight, limit)
            })
            .ok()?;
        inner.instruments.accepted.increment();
        Some(Admission {
            started,
            // At most the limit, itself a `u32`.
            in_flight: NonZeroU32::MIN.saturating_add(admitted),
        })
    }

    stage::entry_points! {
        /// Runs `operation` with a slot (waiting up to the configured `wait_timeout`), counting
        /// every `Err` as a failure.
        call;
        /// Like [`call`](Self::call), judging the outcome with `classifier`.
        call_with;
        /// Runs an operation that already returns this crate's [`Error`](crate::Error) (an inner pattern of a
        /// pipeline): an inner timeout or exhausted retry is a failure, an inner rejection is
        /// ignored, and errors pass through unchanged.
        execute;
    }

    /// A snapshot with aioresilience's keys; `utilization` is in flight over the limit, at most 1.
    pub fn metrics(&self) -> AdaptiveMetrics {
        let inner = &*self.inner;
        inner.poll();
        let algorithm = inner.lock_algorithm().name();
        let current_limit = self.limit();
        // Every admitted call is in flight or has ended with one outcome: the sum is exact
        // whenever no call ends during the snapshot (as for any snapshot of several counts).
        let (success_count, failure_count) = inner.outcomes.totals();
        let ignored_count = inner.ignored.load(Ordering::Relaxed);
        let active_count = self.in_flight();
        AdaptiveMetrics {
            name: inner.name.to_string(),
            algorithm,
            current_limit,
            active_count,
            total_requests: success_count + failure_count + ignored_count + u64::from(active_count),
            success_count,
            failure_count,
            ignored_count,
            rejected_count: inner.rejected.load(Ordering::Relaxed),
            utilization: state::utilization(active_count, current_limit),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> AdaptiveConfig {
        self.inner.lock_config().clone()
    }

    /// Replaces the configuration at run time, keeping calls in flight, counters and
    /// listeners. A changed algorithm starts afresh from its `initial_limit`; an unchanged
    /// one keeps its state.
    pub fn set_config(&self, config: AdaptiveConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = &*self.inner;
        let change = {
            let mut current = inner.lock_config();
            inner
                .wait_timeout
                .store(nanos(config.wait_timeout), Ordering::Relaxed);
            let change = (current.algorithm != config.algorithm).then(|| {
                let mut algorithm = inner.lock_algorithm();
                *algorithm = Learner::new(&config.algorithm, &inner.hot.window, &inner.clock);
                inner.publish(algorithm.limit(), algorithm.name())
            });
            *current = config;
            change.flatten()
        };
        if let Some(change) = change {
            inner.announce(change);
        }
        Ok(())
    }

    /// This limiter's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

/// A limit change to announce once the lock is released.
type Change = (u32, u32, &'static str);

impl Inner {
    fn lock_algorithm(&self) -> MutexGuard<'_, Learner> {
        // A panic under this lock can only come from a custom algorithm; its state is still
        // the best we have.
        self.algorithm
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock_config(&self) -> MutexGuard<'_, AdaptiveConfig> {
        self.config
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(super) fn wait_timeout(&self) -> Duration {
        Duration::from_nanos(self.wait_timeout.load(Ordering::Relaxed))
    }

    /// Stores a new limit; returns the change if there was one.
    /// Always called under the algorithm lock, so a load and a store suffice (no
    /// read-modify-write on every completed call).
    fn publish(&self, limit: u32, algorithm: &'static str) -> Option<Change> {
        let new = limit.max(1);
        let old = self.hot.limit.load(Ordering::Acquire);
        if old == new {
            return None;
        }
        self.hot.limit.store(new, Ordering::Release);
        Some((old, new, algorithm))
    }

    /// Lets the algorithm close a due window; returns whether the limit rose.
    fn poll(&self) -> bool {
        let change = {
            let mut algorithm = self.lock_algorithm();
            let limit = match &mut *algorithm {
                Learner::Counted(aimd) => {
                    let window = &self.hot.window;
                    let closed = window.settle_locked(self.clock.ticks(), window.poll_ticket());
                    Learner::close(aimd, closed)
                }
                Learner::Sampled(algorithm) => algorithm.poll(self.clock.now()),
            };
            self.publish(limit, algorithm.name())
        };
        change.is_some_and(|change| self.announce(change))
    }

    /// When a call admitted now started, in nanoseconds on the limiter's clock, if the
    /// algorithm measures latency.
    #[inline]
    fn start(&self) -> Started {
        if self.hot.window.is_counting() {
            Started::UNTIMED
        } else {
            Started::at_nanos(self.clock.nanos())
        }
    }

    /// `started` as an instant, if the call was timed.
    pub(super) fn started_at(&self, started: Started) -> Option<Instant> {
        started.instant(&self.clock)
    }

    /// Ends a call: frees its slot, feeds its outcome (or its sample) to the algorithm, wakes
    /// a waiter.
    #[inline]
    pub(super) fn complete(&self, started: Started, in_flight: u32, outcome: Outcome) {
        // Read before the locked operations below, which would otherwise wait for it: ticks
        // for AIMD's window, nanoseconds for a sample.
        let counting = self.hot.window.is_counting();
        let now = if counting {
            self.clock.ticks()
        } else {
            self.clock.nanos()
        };
        // SeqCst pairs with the waiter's registration: either it sees the freed slot, or we
        // see it waiting.
        self.hot.in_flight.fetch_sub(1, Ordering::SeqCst);
        match outcome {
            Outcome::Success => self.outcomes.count(true),
            Outcome::Failure => self.outcomes.count(false),
            Outcome::Ignored => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
        let raised = if counting {
            match self.hot.window.add(now, outcome) {
                None => false,
                Some(ticket) => self.count_locked(now, ticket),
            }
        } else {
            self.sample(now, started, in_flight, outcome)
        };
        if !raised && self.hot.waiters.load(Ordering::SeqCst) > 0 {
            self.notify.notify_one();
        }
    }

    /// A call whose count opened AIMD's window, filled it or found its interval passed,
    /// settled under the lock; returns whether the limit rose.
    #[cold]
    fn count_locked(&self, now: u64, ticket: Ticket) -> bool {
        let change = {
            let mut algorithm = self.lock_algorithm();
            let closed = self.hot.window.settle_locked(now, ticket);
            let limit = match &mut *algorithm {
                Learner::Counted(aimd) => Learner::close(aimd, closed),
                // The algorithm was replaced since this call looked: the window it counted in
                // was reset with it, and the outcome is dropped with the old algorithm.
                Learner::Sampled(algorithm) => algorithm.limit(),
            };
            self.publish(limit, algorithm.name())
        };
        change.is_some_and(|change| self.announce(change))
    }

    /// Feeds a timed sample to an algorithm that learns from latency; returns whether the
    /// limit rose.
    fn sample(&self, now: u64, started: Started, in_flight: u32, outcome: Outcome) -> bool {
        // An untimed call (admitted while the algorithm measured no latency) ends now.
        let (started, latency) = match started.nanos() {
            Some(started) => {
                let latency = Duration::from_nanos(now.saturating_sub(started));
                self.instruments.latency.record(latency);
                (started.min(now), latency)
            }
            None => (now, Duration::ZERO),
        };
        let sample = Sample::new(self.clock.instant_at(started), latency, in_flight, outcome);
        let change = {
            let mut algorithm = self.lock_algorithm();
            let limit = match &mut *algorithm {
                Learner::Sampled(algorithm) => algorithm.update(&sample),
                // Replaced by AIMD since this call looked: the sample goes with the old one.
                Learner::Counted(aimd) => aimd.limit(),
            };
            self.publish(limit, algorithm.name())
        };
        change.is_some_and(|change| self.announce(change))
    }

    /// Reports a limit change (never under a lock); returns whether the limit rose, having
    /// woken every waiter if so.
    fn announce(&self, (old_limit, new_limit, algorithm): Change) -> bool {
        tracing::debug!(target: "resilience::adaptive", limiter = %self.name, algorithm, old_limit, new_limit, "limit changed");
        self.emitter.emit(|| AdaptiveEvent::LoadLevelChange {
            old_limit,
            new_limit,
            algorithm,
        });
        self.instruments.limit.set(f64::from(new_limit));
        let raised = new_limit > old_limit;
        if raised {
            self.notify.notify_waiters();
        }
        raised
    }

    fn reject(&self) -> Rejection {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.instruments.rejected.increment();
        tracing::trace!(target: "resilience::adaptive", limiter = %self.name, "at the concurrency limit");
        // No honest estimate of when a slot frees up exists: `retry_after` stays `None`.
        Rejection::named(
            PatternKind::AdaptiveConcurrency,
            self.rejection_name.clone(),
            RejectionReason::ConcurrencyLimit,
            None,
        )
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The algorithm, as the limiter feeds it.
#[derive(Debug)]
enum Learner {
    /// AIMD, whose windows the limiter counts in its [`SharedWindow`]: it is only told when
    /// one closes.
    Counted(Aimd),
    /// Any other algorithm, fed every call's timed sample.
    Sampled(Box<dyn LimitAlgorithm>),
}

impl Learner {
    /// A fresh algorithm of `config`, with `window` reset to count for it (or to count
    /// nothing). Under the lock, or before the limiter is shared.
    fn new(config: &AlgorithmConfig, window: &SharedWindow, clock: &Clock) -> Self {
        match config {
            AlgorithmConfig::Aimd(aimd) if aimd.measurement_window < window::MAX_SAMPLES => {
                window.reset(
                    aimd.measurement_window,
                    clock.ticks_in(aimd.measurement_interval),
                );
                Self::Counted(Aimd::new(aimd.clone()))
            }
            config => {
                window.reset(0, 0);
                Self::Sampled(config.build())
            }
        }
    }

    /// The limit after `closed`, if a window closed.
    fn close(aimd: &mut Aimd, closed: Option<Closed>) -> u32 {
        match closed {
            Some(Closed {
                successes,
                failures,
            }) => aimd.close_counted(successes, failures),
            None => aimd.limit(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Counted(aimd) => aimd.name(),
            Self::Sampled(algorithm) => algorithm.name(),
        }
    }

    fn limit(&self) -> u32 {
        match self {
            Self::Counted(aimd) => aimd.limit(),
            Self::Sampled(algorithm) => algorithm.limit(),
        }
    }
}

/// Counts a caller as waiting for as long as it lives, even if its future is dropped.
struct Waiting<'a>(&'a Inner);

impl<'a> Waiting<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.hot.waiters.fetch_add(1, Ordering::SeqCst);
        Self(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.hot.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl fmt::Debug for AdaptiveLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimiter")
            .field("name", &self.inner.name)
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("config", &*self.inner.lock_config())
            .finish()
    }
}

/// Takes a slot if fewer than the limit are in flight; otherwise waits up to the configured
/// `wait_timeout` (zero: not at all) for one to free up or for the limit to rise.
impl Stage for AdaptiveLimiter {
    type Permit = OwnedPermit;

    #[inline]
    fn admit(&self) -> Admit<OwnedPermit> {
        match self.enter() {
            Some(permit) => Admit::admitted(permit),
            None => self.admit_later(),
        }
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::AdaptiveConcurrency
    }

    /// A call run by `call` that finds a free slot borrows the limiter: no reference count is
    /// taken. Its token carries the calls in flight and the start, which the limit learns
    /// from.
    #[inline]
    fn lease(&self) -> Leased<OwnedPermit> {
        match self.take_slot() {
            Some(Admission { started, in_flight }) => Leased::Token(
                LeaseToken::new(u64::from(in_flight.get()))
                    .started_at(self.inner.started_at(started))
                    .wanting_outcome(),
            ),
            None => Leased::Admit(self.admit_later()),
        }
    }

    #[inline]
    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        let inner = &*self.inner;
        let started = Started::of(&inner.clock, token.started());
        let in_flight = u32::try_from(token.tag()).unwrap_or(u32::MAX);
        inner.complete(started, in_flight, outcome);
    }
}

impl AdaptiveLimiter {
    /// The admission of a call that found no free slot: rejected at once, or waiting up to
    /// the configured `wait_timeout`.
    fn admit_later(&self) -> Admit<OwnedPermit> {
        let timeout = self.inner.wait_timeout();
        if timeout.is_zero() {
            return Admit::ready(self.try_acquire_owned());
        }
        let limiter = self.clone();
        Admit::waiting(async move { limiter.acquire(timeout).await })
    }
}

impl StagePermit for OwnedPermit {
    /// The outcome and the call's duration are what the limit learns from.
    fn wants_outcome(&self) -> bool {
        true
    }

    fn record(self, outcome: Outcome) {
        Self::record(self, outcome);
    }
}

crate::registry::registered!(AdaptiveLimiter: AdaptiveConfig => AdaptiveMetrics);
