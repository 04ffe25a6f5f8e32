//! [`Hedge`]: the handle that runs hedged calls, and the state its clones share.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use tokio::time::Instant;

use super::latency::Latencies;
use super::race::{FromFn, Launch, Race};
use super::state::Plan;
use super::{HedgeBuilder, HedgeConfig, HedgeDelay, HedgeEvent, HedgeMetrics, HedgeTrigger};
use crate::classify::{judge, Classify, EveryError, Outcome};
use crate::events::{Emitter, EventBus};
use crate::retry::RetryBudget;
use crate::tally::Tally;
use crate::{ConfigError, Error, PatternKind};

/// A hedging policy: when an attempt is slow, start another and take whichever answers
/// first.
///
/// Cheap to clone; clones share the configuration, counters, latency histogram, listeners and
/// budget. Not generic: what counts as an acceptable answer is given per call (a
/// [`Classifier`](crate::classify::Classifier), every `Ok` by default). See the
/// [module docs](super) for how it decides.
#[derive(Clone)]
pub struct Hedge {
    pub(super) inner: Arc<Inner>,
}

/// Which count of [`Inner::counts`] is which: calls, extra attempts started, calls an extra
/// attempt won, extra attempts the budget refused, calls whose every attempt failed.
const CALLS: usize = 0;
const HEDGED: usize = 1;
const WINS: usize = 2;
const SKIPPED: usize = 3;
const FAILED: usize = 4;

/// Where the delay of a new call comes from.
enum Delay {
    /// A fixed delay (zero: parallel), or none (fallback mode).
    Fixed(Option<Duration>),
    /// Measured.
    Percentile(Latencies),
}

pub(crate) struct Inner {
    name: Arc<str>,
    config: HedgeConfig,
    delay: Delay,
    budget: Option<RetryBudget>,
    /// Counted per thread: a call that is not hedged writes no shared counter.
    counts: Tally<5>,
    emitter: Emitter,
}

impl Hedge {
    /// Starts building a hedge named `name`.
    pub fn builder(name: impl Into<String>) -> HedgeBuilder {
        HedgeBuilder::new(name.into())
    }

    /// A hedge from a plain config, validated the same way as the builder's.
    pub fn from_config(name: impl Into<String>, config: HedgeConfig) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new(name: &str, config: HedgeConfig, budget: Option<RetryBudget>) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let delay = match config.delay {
            HedgeDelay::Latency(delay) => Delay::Fixed(Some(delay)),
            HedgeDelay::Parallel => Delay::Fixed(Some(Duration::ZERO)),
            HedgeDelay::Fallback => Delay::Fixed(None),
            HedgeDelay::Percentile {
                percentile,
                min_samples,
                refresh,
            } => Delay::Percentile(Latencies::new(
                percentile,
                min_samples,
                refresh,
                Instant::now(),
            )),
        };
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                config,
                delay,
                budget,
                counts: Tally::new(),
            }),
        }
    }

    /// The hedge's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `operation(1)`, and `operation(2)`, `operation(3)`, ... as the delay passes or
    /// attempts fail, until one returns `Ok`; the other attempts are cancelled (dropped) at
    /// once.
    ///
    /// `operation` receives the attempt number (the primary is 1), so an extra attempt can go
    /// elsewhere, such as another replica. When every attempt failed and no other may start,
    /// the last failure is returned as [`Error::Inner`]. Dropping the returned future
    /// cancels every running attempt.
    pub fn call<T, E, F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, F, Fut>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(&EveryError, operation)
    }

    /// Runs an operation that already returns this crate's [`Error`], such as attempts
    /// bounded by their own timeout (`hedge.execute(|_| timeout.call(..))`): a timeout or a
    /// rejection ends that attempt only, as a failure, and the others go on.
    pub fn execute<T, E, F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, F, Fut>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        self.execute_with(&EveryError, operation)
    }

    /// Like [`call`](Self::call), accepting every result that `classifier` does not call a
    /// failure (an ignored error, such as "not found", is an answer too: another attempt
    /// would say the same).
    pub fn call_with<'a, T, E, C, F, Fut>(
        &'a self,
        classifier: &'a C,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'a, T, E, C, F, Fut>
    where
        C: Classify<T, E>,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Call {
            inner: &self.inner,
            judge: Plain(classifier),
            race: Race::new(None, FromFn(operation)),
        }
    }

    /// Like [`execute`](Self::execute), judging the operation's own errors and values with
    /// `classifier`. An inner pattern's timeout, rejection or exhausted retry is never
    /// accepted.
    pub fn execute_with<'a, T, E, C, F, Fut>(
        &'a self,
        classifier: &'a C,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'a, T, E, C, F, Fut>
    where
        C: Classify<T, E>,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        Call {
            inner: &self.inner,
            judge: Nested(classifier),
            race: Race::new(None, FromFn(operation)),
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> HedgeMetrics {
        let counts = self.inner.counts.counts();
        let (total_requests, hedged_attempts) = (counts[CALLS], counts[HEDGED]);
        HedgeMetrics {
            name: self.inner.name.to_string(),
            total_requests,
            hedged_attempts,
            hedge_wins: counts[WINS],
            skipped_by_budget: counts[SKIPPED],
            failed_requests: counts[FAILED],
            hedge_rate: if total_requests == 0 {
                0.0
            } else {
                hedged_attempts as f64 / total_requests as f64
            },
            current_delay: self.current_delay(),
        }
    }

    /// The delay a call starting now would use; `None` in fallback mode, or in percentile
    /// mode before enough calls were measured.
    pub fn current_delay(&self) -> Option<Duration> {
        match &self.inner.delay {
            Delay::Fixed(delay) => *delay,
            Delay::Percentile(latencies) => latencies.delay(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HedgeConfig {
        &self.inner.config
    }

    /// The budget extra attempts are drawn from, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.inner.budget.as_ref()
    }

    /// This hedge's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

/// Whether an attempt of `execute` answered: its own results as `classifier` says, never an
/// inner pattern's error. Takes the result and hands it back, since a classifier judges an
/// owned `Result<T, E>`.
fn judge_nested<T, E>(
    classifier: &impl Classify<T, E>,
    result: Result<T, Error<E>>,
    name: &str,
) -> (bool, Result<T, Error<E>>) {
    let own = match result {
        Ok(value) => Ok(value),
        Err(Error::Inner(error)) => Err(error),
        Err(other) => return (false, Err(other)),
    };
    let accepted = judge(classifier, &own, PatternKind::Hedge, name) != Outcome::Failure;
    (accepted, own.map_err(Error::Inner))
}

pin_project! {
    /// A hedged call of the handle: the race of the attempts `L` makes, each output judged by
    /// `J`.
    ///
    /// Made by hand rather than by an `async fn`, so that a call answered at once is a single
    /// small future: nothing runs before it is first polled, and then the race starts its
    /// primary attempt in place.
    struct Call<'a, L, J>
    where
        L: Launch,
    {
        inner: &'a Inner,
        judge: J,
        #[pin]
        race: Race<L, L::Future, L::Output>,
    }
}

impl<L, J> Future for Call<'_, L, J>
where
    L: Launch,
    J: Judge<L::Output>,
{
    type Output = J::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<J::Output> {
        let this = self.project();
        let (inner, judge) = (*this.inner, &*this.judge);
        this.race
            .poll(cx, inner, |output| judge.accept(output, &inner.name))
            .map(J::finish)
    }
}

/// How a call of the handle judges an attempt's output, and what the call returns.
trait Judge<O> {
    /// What the call returns.
    type Output;

    /// Whether `output` answers the call, handing it back.
    fn accept(&self, output: O, name: &str) -> (bool, O);

    /// The call's result from the winning output, or from the last failure.
    fn finish(output: O) -> Self::Output;
}

/// [`Hedge::call_with`]: the operation's own results, its errors becoming this crate's once
/// the race is over.
struct Plain<'a, C>(&'a C);

impl<T, E, C: Classify<T, E>> Judge<Result<T, E>> for Plain<'_, C> {
    type Output = Result<T, Error<E>>;

    fn accept(&self, result: Result<T, E>, name: &str) -> (bool, Result<T, E>) {
        let outcome = judge(self.0, &result, PatternKind::Hedge, name);
        (outcome != Outcome::Failure, result)
    }

    fn finish(result: Result<T, E>) -> Self::Output {
        result.map_err(Error::Inner)
    }
}

/// [`Hedge::execute_with`]: results already in this crate's [`Error`].
struct Nested<'a, C>(&'a C);

impl<T, E, C: Classify<T, E>> Judge<Result<T, Error<E>>> for Nested<'_, C> {
    type Output = Result<T, Error<E>>;

    fn accept(&self, result: Result<T, Error<E>>, name: &str) -> (bool, Result<T, Error<E>>) {
        judge_nested(self.0, result, name)
    }

    fn finish(result: Result<T, Error<E>>) -> Self::Output {
        result
    }
}

impl Inner {
    /// The hedge's name.
    #[cfg_attr(
        not(feature = "tower"),
        expect(dead_code, reason = "the tower layer's rejections carry it")
    )]
    pub(super) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// A call starts: counts it, deposits into the budget, and makes its plan. Returns the
    /// plan, the start time when the delay needs it now, and whether the call is parallel.
    pub(super) fn begin(&self) -> (Plan, Option<Instant>, bool) {
        self.counts.add(CALLS);
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        let max_attempts = self.config.max_hedged_attempts + 1;
        match &self.delay {
            Delay::Fixed(delay) => (
                Plan::new(max_attempts, *delay),
                None,
                *delay == Some(Duration::ZERO),
            ),
            Delay::Percentile(latencies) => (
                Plan::new(max_attempts, latencies.delay()),
                Some(Instant::now()),
                false,
            ),
        }
    }

    /// Asks the budget for attempt `attempt`.
    pub(super) fn may_hedge(&self, attempt: u32) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if budget.try_withdraw() {
            return true;
        }
        self.counts.add(SKIPPED);
        tracing::debug!(target: "resilience::hedge", hedge = %self.name, attempt, "budget refused an extra attempt");
        self.emitter.emit(|| HedgeEvent::HedgeSkipped { attempt });
        false
    }

    /// Attempt `attempt` started `after` the call did.
    pub(super) fn hedged(&self, attempt: u32, after: Duration, trigger: HedgeTrigger) {
        self.counts.add(HEDGED);
        tracing::debug!(target: "resilience::hedge", hedge = %self.name, attempt, ?after, %trigger, "extra attempt started");
        self.emitter.emit(|| HedgeEvent::HedgeAttempt {
            attempt,
            after,
            trigger,
        });
    }

    /// Attempt `attempt` of `attempts` answered.
    pub(super) fn succeeded(&self, attempt: u32, attempts: u32, started_at: Option<Instant>) {
        if attempt > 1 {
            self.counts.add(WINS);
        }
        if let (Delay::Percentile(latencies), Some(started_at)) = (&self.delay, started_at) {
            let now = Instant::now();
            latencies.record(now.saturating_duration_since(started_at), now);
        }
        self.emitter
            .emit(|| HedgeEvent::HedgeSuccess { attempt, attempts });
    }

    /// Every one of `attempts` failed.
    pub(super) fn exhausted(&self, attempts: u32) {
        self.counts.add(FAILED);
        tracing::debug!(target: "resilience::hedge", hedge = %self.name, attempts, "every attempt failed");
        self.emitter.emit(|| HedgeEvent::HedgeFailure { attempts });
    }
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

crate::registry::registered!(Hedge: HedgeConfig => HedgeMetrics);
