//! [`Timeout`]: the async shell around the deadline arithmetic.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::deadline::{current_at, resolve, timeline, At, Guarded, Lazy, Named, NO_DEADLINE};
use super::instruments::Instruments;
use super::state::{self, Budget};
use super::{Deadline, TimeoutBuilder, TimeoutConfig, TimeoutEvent, TimeoutMetrics};
use crate::clock::Clock;
use crate::events::{Emitter, EventBus};
use crate::tally::ResettableTally;
use crate::{ConfigError, Error, Rejection};

/// A time limit for each call; also bounded by the [current deadline](Deadline::current).
///
/// Cheap to clone; clones share one limit, one set of counters and one set of listeners. See
/// the [module docs](super) for how it decides.
#[derive(Clone)]
pub struct Timeout {
    pub(super) inner: Arc<Inner>,
}

/// Which count of [`Inner::ended`] is which.
const SUCCEEDED: usize = 0;
const FAILED: usize = 1;
const NANOS: usize = 2;

pub(super) struct Inner {
    pub(super) name: Arc<str>,
    /// The limit in nanoseconds; validation keeps it within `1..=u64::MAX`.
    limit: AtomicU64,
    /// Calls that ended in time with their own success or error, and the total time of the
    /// calls that ran to an end (success, own error or timeout) in nanoseconds, saturating;
    /// counted per thread, so a call ending writes no shared counter.
    ended: ResettableTally<3>,
    timeouts: AtomicU64,
    rejections: AtomicU64,
    /// Read at the start and the end of every call, in nanoseconds since its epoch.
    clock: Clock,
    /// The clock's epoch, from which a call's deadline is counted.
    epoch: Instant,
    /// The epoch on the deadlines' [`timeline`].
    offset: u64,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    instruments: Instruments,
}

/// What a call that may start is given, on the timeout's clock, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Start {
    pub(super) started: u64,
    /// When it is cancelled; also the deadline current inside it.
    pub(super) end: u64,
}

impl Start {
    /// The time it has.
    pub(super) fn limit(self) -> Duration {
        Duration::from_nanos(self.end - self.started)
    }
}

impl Timeout {
    /// Starts building a timeout named `name`.
    pub fn builder(name: impl Into<String>) -> TimeoutBuilder {
        TimeoutBuilder::new(name.into())
    }

    /// A timeout named `"timeout"` with this limit, for one-off use.
    ///
    /// Fails, naming the field `limit`, if the limit is zero.
    pub fn new(limit: Duration) -> Result<Self, ConfigError> {
        Self::builder("timeout").limit(limit).build()
    }

    /// A timeout from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: TimeoutConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: TimeoutConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let clock = Clock::new();
        let epoch = clock.instant_at(0);
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                instruments: Instruments::new(&name),
                name,
                limit: AtomicU64::new(nanos(config.limit)),
                epoch,
                offset: timeline::nanos(epoch),
                clock,
                ended: ResettableTally::new(),
                timeouts: AtomicU64::new(0),
                rejections: AtomicU64::new(0),
            }),
        }
    }

    /// The timeout's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configured limit of each call.
    pub fn limit(&self) -> Duration {
        self.inner.limit()
    }

    /// Runs `operation`, cancelling it (dropping its future) if it is still running when the
    /// limit, or the enclosing [deadline](Deadline::current) if that comes first, has passed.
    ///
    /// * finished in time: its own result, `Err` as [`Error::Inner`] (counted as a failure,
    ///   never as a timeout);
    /// * still running at the limit: [`Error::Timeout`] with the time it ran and the limit it
    ///   had;
    /// * the enclosing deadline had already passed: [`Error::Rejected`] by the
    ///   [deadline](crate::PatternKind::Deadline), and `operation` is never called.
    ///
    /// Inside the operation, [`Deadline::current`] is the point at which it will be cancelled.
    /// Dropping the returned future drops the operation's future too.
    pub fn call<T, E, F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The operation's own errors become this crate's once it has ended: no wrapping
        // future around it.
        self.guard(operation, |result| result.map_err(Error::Inner))
    }

    /// Runs an operation that already returns this crate's [`Error`], such as an inner pattern
    /// of a pipeline. Its errors pass through unchanged, an inner timeout included: only this
    /// timeout's own expiry is counted and reported as a timeout here.
    pub fn execute<T, E, F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        self.guard(operation, |result| result)
    }

    /// The call behind [`call`](Self::call) and [`execute`](Self::execute): `convert` turns
    /// the operation's output into the call's result.
    fn guard<T, E, F, Fut, C>(&self, operation: F, convert: C) -> Call<'_, F, Fut, C>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
        C: Fn(Fut::Output) -> Result<T, Error<E>>,
    {
        Call {
            inner: &self.inner,
            // Made at the call's first poll, so set-up code before the operation's first
            // await already sees its deadline.
            guarded: Guarded::new(Lazy::new(operation)),
            phase: Phase::Unstarted,
            convert,
        }
    }

    /// A snapshot of the counters, with aioresilience's field names.
    pub fn metrics(&self) -> TimeoutMetrics {
        let inner = &*self.inner;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let ended = inner.ended.counts();
        let (successful_executions, failed_executions) = (ended[SUCCEEDED], ended[FAILED]);
        let timed_out_executions = load(&inner.timeouts);
        let total_executions = successful_executions + failed_executions + timed_out_executions;
        let total_execution_time = Duration::from_nanos(ended[NANOS]);
        TimeoutMetrics {
            name: inner.name.to_string(),
            limit: inner.limit(),
            total_executions,
            successful_executions,
            failed_executions,
            timed_out_executions,
            rejected_executions: load(&inner.rejections),
            total_execution_time,
            average_execution_time: state::average(total_execution_time, total_executions),
            timeout_rate: state::ratio(timed_out_executions, total_executions),
        }
    }

    /// Sets every counter back to zero (aioresilience's `reset_metrics`).
    pub fn reset_metrics(&self) {
        let inner = &*self.inner;
        inner.ended.reset();
        crate::metrics::reset_counters([&inner.timeouts, &inner.rejections]);
    }

    /// The current configuration.
    pub fn config(&self) -> TimeoutConfig {
        TimeoutConfig::with_limit(self.limit())
    }

    /// Replaces the configuration at run time; calls already running keep the limit they
    /// started with. Counters and listeners stay.
    pub fn set_config(&self, config: TimeoutConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.inner
            .limit
            .store(nanos(config.limit), Ordering::Relaxed);
        Ok(())
    }

    /// This timeout's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    fn limit(&self) -> Duration {
        Duration::from_nanos(self.limit.load(Ordering::Relaxed))
    }

    /// Reads the clock once and decides whether a call may start, and until when: its own
    /// limit from now, or the enclosing deadline if that comes first.
    #[inline]
    pub(super) fn start(&self) -> Result<Start, Rejection> {
        let started = self.clock.nanos();
        // No timer waits longer than the far future: a longer limit is cut there.
        let own = started.saturating_add(self.limit.load(Ordering::Relaxed).min(FAR_FUTURE_NANOS));
        match current_at() {
            NO_DEADLINE => Ok(Start { started, end: own }),
            enclosing => self.start_within(started, own, resolve(enclosing)),
        }
    }

    /// [`start`](Self::start) inside an enclosing deadline, `enclosing` on the timeline.
    fn start_within(&self, started: u64, own: u64, enclosing: u64) -> Result<Start, Rejection> {
        let (now, own) = (self.on_timeline(started), self.on_timeline(own));
        match state::budget(own, Some(enclosing), now) {
            // Not expired: `until` is after `now`, so after the epoch.
            Budget::Run { until, .. } => Ok(Start {
                started,
                end: until - self.offset,
            }),
            Budget::Expired => {
                self.rejections.fetch_add(1, Ordering::Relaxed);
                // The scope that expired names the rejection. It is there: `enclosing` was.
                let deadline = Deadline::current().unwrap_or_else(|| {
                    Deadline::with_shared_name(self.clock.instant_at(started), &self.name)
                });
                Err(deadline.expired())
            }
        }
    }

    /// `nanos` on this timeout's clock, as a deadline for a timer.
    pub(super) fn at(&self, nanos: u64) -> At {
        At::after(self.epoch, nanos)
    }

    /// `nanos` on this timeout's clock, on the deadlines' timeline.
    #[inline]
    pub(super) fn on_timeline(&self, nanos: u64) -> u64 {
        self.offset.saturating_add(nanos)
    }

    /// The nanoseconds since `started`, a reading of this timeout's clock.
    #[inline]
    fn elapsed(&self, started: u64) -> u64 {
        self.clock.nanos().saturating_sub(started)
    }

    /// A call ended in time, with its own success or error.
    #[inline]
    pub(super) fn finished(&self, start: Start, ok: bool) {
        let elapsed = self.elapsed(start.started);
        self.ended
            .add_with_amount(if ok { SUCCEEDED } else { FAILED }, NANOS, elapsed);
        let elapsed = Duration::from_nanos(elapsed);
        self.instruments.finished(elapsed);
        self.emitter.emit(|| TimeoutEvent::TimeoutSuccess {
            elapsed,
            limit: start.limit(),
        });
    }

    /// A call was still running at its limit and has been cancelled.
    pub(super) fn timed_out<E>(&self, start: Start) -> Error<E> {
        let limit = start.limit();
        let elapsed = self.elapsed(start.started);
        self.ended.add_amount(NANOS, elapsed);
        let elapsed = Duration::from_nanos(elapsed);
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.instruments.timed_out();
        tracing::warn!(target: "resilience::timeout", timeout = %self.name, ?limit, ?elapsed, "operation timed out");
        self.emitter
            .emit(|| TimeoutEvent::TimeoutExceeded { limit });
        Error::Timeout { elapsed, limit }
    }
}

/// Where a [`Call`] is: its start (the clock read, the limit) waits for its first poll, so a
/// call built outside a deadline's scope and awaited inside it honours that deadline.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Unstarted,
    Running(Start),
    Ended,
}

pin_project! {
    /// The future of [`Timeout::call`] and [`Timeout::execute`].
    struct Call<'a, F, Fut, C> {
        inner: &'a Inner,
        #[pin]
        guarded: Guarded<Lazy<F, Fut>>,
        phase: Phase,
        convert: C,
    }
}

impl<F, Fut, C, T, E> Future for Call<'_, F, Fut, C>
where
    F: FnOnce() -> Fut,
    Fut: Future,
    C: Fn(Fut::Output) -> Result<T, Error<E>>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = *this.inner;
        let start = match *this.phase {
            Phase::Running(start) => start,
            Phase::Unstarted => match inner.start() {
                Ok(start) => {
                    *this.phase = Phase::Running(start);
                    start
                }
                Err(rejection) => {
                    *this.phase = Phase::Ended;
                    return Poll::Ready(Err(Error::Rejected(rejection)));
                }
            },
            Phase::Ended => panic!("a timeout's call polled after it ended"),
        };
        let scope = Named {
            at: inner.on_timeline(start.end),
            name: &inner.name,
        };
        let output = std::task::ready!(this.guarded.poll_until(scope, inner.at(start.end), cx));
        *this.phase = Phase::Ended;
        Poll::Ready(match output {
            Some(output) => {
                let result = (this.convert)(output);
                inner.finished(start, result.is_ok());
                result
            }
            None => Err(inner.timed_out(start)),
        })
    }
}

/// The clock's far future (about thirty years) in nanoseconds: beyond it, instants saturate.
const FAR_FUTURE_NANOS: u64 = crate::time::FAR_FUTURE.as_secs() * 1_000_000_000;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("name", &self.inner.name)
            .field("limit", &self.limit())
            .finish_non_exhaustive()
    }
}

crate::registry::registered!(Timeout: TimeoutConfig => TimeoutMetrics);
