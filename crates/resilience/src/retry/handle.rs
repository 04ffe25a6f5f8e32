//! [`Retry`]: the async shell that runs attempts and sleeps between them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::instruments::Instruments;
use super::run::{self, Run, Step};
use super::{RetryBudget, RetryBuilder, RetryConfig, RetryMetrics, RetryRules};
use crate::events::{Emitter, EventBus};
use crate::tally::ResettableTally;
use crate::{ConfigError, Error};

/// A retry policy: runs an operation again after a failure, waiting longer each time.
///
/// Cheap to clone; clones share the configuration, metrics, listeners, random generator and
/// retry budget. The handle is not generic: what counts as a retryable failure is given per
/// call with [`RetryRules`], so one policy can serve operations of different types. See the
/// [module docs](super) for how it decides.
#[derive(Clone)]
pub struct Retry {
    pub(super) inner: Arc<Inner>,
}

/// A validated configuration and the budget built for it, swapped as a whole by
/// `set_config`.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: RetryConfig,
    pub(crate) budget: Option<RetryBudget>,
}

/// Which of [`Counters::calls`] counts successes at the first attempt.
pub(crate) const FIRST_TRY: usize = 0;
/// Which of [`Counters::calls`] counts successes that took more than one attempt.
pub(crate) const AFTER_RETRYING: usize = 1;
/// Which of [`Counters::calls`] counts every attempt but the first-try successes.
pub(crate) const OTHER_ATTEMPTS: usize = 2;

#[derive(Debug)]
pub(crate) struct Counters {
    /// Counted per thread (see [`FIRST_TRY`], [`AFTER_RETRYING`], [`OTHER_ATTEMPTS`]): every
    /// call adds to one of these, from whichever thread runs it, and a first-try success,
    /// one attempt and one success, with a single plain store on that thread's own row.
    pub(crate) calls: ResettableTally<3>,
    pub(crate) failed: AtomicU64,
    pub(crate) exhausted: AtomicU64,
    pub(crate) delay_nanos: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            calls: ResettableTally::new(),
            failed: AtomicU64::default(),
            exhausted: AtomicU64::default(),
            delay_nanos: AtomicU64::default(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    /// Read without a lock or a shared write (a budget's deposit reads it on every call);
    /// replaced whole by `set_config`, under `replacing`.
    settings: ArcSwap<Settings>,
    replacing: Mutex<()>,
    /// Published copies of what a call needs before its first failure, so a first-try success
    /// takes no lock and reads no clock unless a time limit or a budget is set.
    time_limited: AtomicBool,
    budgeted: AtomicBool,
    rng: Mutex<fastrand::Rng>,
    pub(crate) counters: Counters,
    last_error: Mutex<Option<Arc<str>>>,
    pub(crate) emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    pub(crate) instruments: Instruments,
}

impl Retry {
    /// Starts building a retry policy named `name`.
    pub fn builder(name: impl Into<String>) -> RetryBuilder {
        RetryBuilder::new(name.into())
    }

    /// A retry policy from a plain config, validated the same way as the builder's.
    pub fn from_config(name: impl Into<String>, config: RetryConfig) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new(
        name: &str,
        config: RetryConfig,
        budget: Option<RetryBudget>,
        seed: u64,
    ) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let inner = Inner {
            emitter: Emitter::new(Arc::clone(&name)),
            instruments: Instruments::new(&name),
            name,
            settings: ArcSwap::from_pointee(Settings {
                config: RetryConfig::default(),
                budget: None,
            }),
            replacing: Mutex::new(()),
            time_limited: AtomicBool::new(false),
            budgeted: AtomicBool::new(false),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        };
        inner.install(Settings { config, budget });
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `operation` until it succeeds, retrying every error, within the configured
    /// limits.
    ///
    /// Returns the first success; an error that is not retried as is; or
    /// [`Error::RetryExhausted`] with the last error when the limits are reached. Dropping the
    /// returned future cancels the running attempt or the wait, and no further attempt starts.
    pub fn call<T, E, F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, F, Fut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.attempts(Defaults, operation, |result: Result<T, E>| {
            result.map_err(Error::Inner)
        })
    }

    /// Runs an operation that already returns this crate's [`Error`], such as an inner
    /// pattern of a pipeline (`retry.execute(|| breaker.call(..))`). Errors are returned as
    /// they are, never nested: an inner rejection by a circuit breaker or rate limiter is not
    /// retried (unless [`retry_rejections`](RetryConfig::retry_rejections)), other rejections
    /// wait at least their `retry_after`, inner timeouts are retried.
    pub fn execute<T, E, F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, F, Fut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
        E: fmt::Display,
    {
        self.attempts(Defaults, operation, |result| result)
    }

    /// Like [`call`](Self::call), retrying what `rules` say.
    pub fn call_with<'a, T, E, F, Fut>(
        &'a self,
        rules: &'a RetryRules<T, E>,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'a, T, E, F, Fut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        // The operation's errors become this crate's as each attempt ends: no wrapping
        // future around it.
        self.attempts(rules, operation, |result: Result<T, E>| {
            result.map_err(Error::Inner)
        })
    }

    /// Like [`execute`](Self::execute), judging the operation's own errors and values with
    /// `rules`.
    pub fn execute_with<'a, T, E, F, Fut>(
        &'a self,
        rules: &'a RetryRules<T, E>,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'a, T, E, F, Fut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
        E: fmt::Display,
    {
        self.attempts(rules, operation, |result| result)
    }

    /// The retry loop behind every method: `convert` turns an attempt's output into this
    /// crate's result.
    fn attempts<T, E, R, F, Fut, C>(
        &self,
        rules: R,
        operation: F,
        convert: C,
    ) -> Attempts<'_, R, F, Fut, C>
    where
        R: Rules<T, E>,
        F: FnMut() -> Fut,
        Fut: Future,
        C: Fn(Fut::Output) -> Result<T, Error<E>>,
    {
        Attempts {
            inner: &self.inner,
            rules,
            operation,
            convert,
            progress: Progress::First(None),
            state: State::Starting,
        }
    }

    /// A snapshot of the counters, with aioresilience's field names.
    pub fn metrics(&self) -> RetryMetrics {
        let counters = &self.inner.counters;
        let [first_try, after_retrying, other_attempts] = counters.calls.counts();
        let total_attempts = other_attempts.wrapping_add(first_try);
        let successful_attempts = after_retrying.wrapping_add(first_try);
        RetryMetrics {
            name: self.inner.name.to_string(),
            total_attempts,
            successful_attempts,
            failed_attempts: counters.failed.load(Ordering::Relaxed),
            total_delay: Duration::from_nanos(counters.delay_nanos.load(Ordering::Relaxed)),
            last_error: self.inner.last_error().as_deref().map(str::to_owned),
            retries_exhausted: counters.exhausted.load(Ordering::Relaxed),
            success_rate: if total_attempts == 0 {
                0.0
            } else {
                successful_attempts as f64 / total_attempts as f64
            },
        }
    }

    /// Sets every counter back to zero and forgets the last error
    /// (aioresilience's `reset_metrics`).
    pub fn reset_metrics(&self) {
        let counters = &self.inner.counters;
        counters.calls.reset();
        crate::metrics::reset_counters([
            &counters.failed,
            &counters.exhausted,
            &counters.delay_nanos,
        ]);
        *lock(&self.inner.last_error) = None;
    }

    /// The current configuration.
    pub fn config(&self) -> RetryConfig {
        self.inner.settings().config.clone()
    }

    /// The retry budget in use, if any.
    pub fn budget(&self) -> Option<RetryBudget> {
        self.inner.settings().budget.clone()
    }

    /// Replaces the configuration at run time, keeping metrics, events and listeners. A call
    /// in progress reads the settings at its first failure and keeps them to its end. An
    /// unchanged budget config keeps its budget (and what it has counted); a changed one
    /// starts a fresh budget.
    pub fn set_config(&self, config: RetryConfig) -> Result<(), ConfigError> {
        config.validate()?;
        // Decided and swapped under one lock, so two concurrent calls cannot both keep (or
        // both replace) the old budget.
        let _replacing = lock(&self.inner.replacing);
        let current = self.inner.settings.load();
        let budget = match (&config.budget, &current.budget) {
            (Some(wanted), Some(budget)) if budget.config() == wanted => Some(budget.clone()),
            (Some(wanted), _) => Some(RetryBudget::new(wanted.clone())?),
            (None, _) => None,
        };
        let settings = Settings { config, budget };
        self.inner.publish(&settings);
        self.inner.settings.store(Arc::new(settings));
        Ok(())
    }

    /// This policy's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Records a call in the budget, if there is one.
    pub(crate) fn deposit(&self) {
        if let Some(budget) = &self.settings.load().budget {
            budget.deposit();
        }
    }

    fn install(&self, settings: Settings) {
        self.publish(&settings);
        self.settings.store(Arc::new(settings));
    }

    /// Copies what a call needs before its first failure out of `settings`.
    fn publish(&self, settings: &Settings) {
        self.time_limited
            .store(settings.config.max_elapsed.is_some(), Ordering::Relaxed);
        self.budgeted
            .store(settings.budget.is_some(), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn has_time_limit(&self) -> bool {
        self.time_limited.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn has_budget(&self) -> bool {
        self.budgeted.load(Ordering::Relaxed)
    }

    /// One draw in `[0, 1)` from the handle's seeded generator.
    pub(crate) fn random(&self) -> f64 {
        lock(&self.rng).f64()
    }

    pub(crate) fn set_last_error(&self, error: Arc<str>) {
        *lock(&self.last_error) = Some(error);
    }

    fn last_error(&self) -> Option<Arc<str>> {
        lock(&self.last_error).clone()
    }
}

/// The rules a call judges its attempts by: the caller's, or the defaults.
trait Rules<T, E> {
    fn rules(&self) -> &RetryRules<T, E>;
}

impl<T, E> Rules<T, E> for &RetryRules<T, E> {
    fn rules(&self) -> &RetryRules<T, E> {
        self
    }
}

/// The default rules, which hold nothing: made where they are used, not borrowed.
struct Defaults;

impl<T, E> Rules<T, E> for Defaults {
    fn rules(&self) -> &RetryRules<T, E> {
        const { &RetryRules::new() }
    }
}

pin_project! {
    /// The future of a retried call: its attempts and the waits between them.
    struct Attempts<'a, R, F, Fut, C> {
        inner: &'a Inner,
        rules: R,
        operation: F,
        convert: C,
        progress: Progress,
        #[pin]
        state: State<Fut>,
    }
}

/// How far a call has got past its attempts' results.
enum Progress {
    /// No attempt has failed yet: only when the call started is kept (read at the first poll,
    /// as the call starts then, and only with a time limit), so a first-try success, the
    /// common case, builds nothing else and drops nothing.
    First(Option<Instant>),
    /// An attempt has failed: the rest of the call's state, boxed with its timer, made at the
    /// first wait and reused by every later one.
    Retrying(Pin<Box<Retrying>>),
}

pin_project! {
    struct Retrying {
        run: Run,
        // The wait under way, counted once it has passed.
        delay: Duration,
        #[pin]
        sleep: Sleep,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<Fut> {
        Starting,
        Attempting { #[pin] attempt: Fut },
        Waiting,
        Done,
    }
}

impl<T, E, R, F, Fut, C> Future for Attempts<'_, R, F, Fut, C>
where
    R: Rules<T, E>,
    F: FnMut() -> Fut,
    Fut: Future,
    C: Fn(Fut::Output) -> Result<T, Error<E>>,
    E: fmt::Display,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let inner = *this.inner;
        let rules = this.rules.rules();
        loop {
            match this.state.as_mut().project() {
                StateProjection::Starting => {
                    // Written in place: a call starts before any failure, so there is no
                    // box to drop.
                    if let Progress::First(started) = this.progress {
                        *started = run::start(inner);
                    }
                    let attempt = (this.operation)();
                    this.state.set(State::Attempting { attempt });
                }
                StateProjection::Attempting { attempt } => {
                    let result = (this.convert)(ready!(attempt.poll(cx)));
                    let step = match this.progress {
                        Progress::First(started) => match result {
                            Ok(value) if rules.accepts_every_value() => {
                                run::succeeded_first_try(inner);
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(value));
                            }
                            result => {
                                let mut run = Run::new(*started);
                                let step = run.step(inner, rules, result);
                                if let Step::Wait(delay) = step {
                                    *this.progress = Progress::Retrying(Box::pin(Retrying {
                                        run,
                                        delay,
                                        sleep: tokio::time::sleep(delay),
                                    }));
                                }
                                step
                            }
                        },
                        Progress::Retrying(retrying) => {
                            let mut retrying = retrying.as_mut().project();
                            let step = retrying.run.step(inner, rules, result);
                            if let Step::Wait(delay) = step {
                                *retrying.delay = delay;
                                retrying.sleep.set(tokio::time::sleep(delay));
                            }
                            step
                        }
                    };
                    match step {
                        Step::Return(result) => {
                            this.state.set(State::Done);
                            return Poll::Ready(result);
                        }
                        Step::Wait(_) => this.state.set(State::Waiting),
                    }
                }
                StateProjection::Waiting => {
                    let Progress::Retrying(retrying) = this.progress else {
                        unreachable!("a call waits only after a failure");
                    };
                    let retrying = retrying.as_mut().project();
                    ready!(retrying.sleep.poll(cx));
                    Run::waited(inner, *retrying.delay);
                    let attempt = (this.operation)();
                    this.state.set(State::Attempting { attempt });
                }
                StateProjection::Done => panic!("a retried call polled after it ended"),
            }
        }
    }
}

/// Locks, ignoring poison: every value behind these locks is replaced whole, so a panic
/// elsewhere cannot leave it half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("name", &self.inner.name)
            .field("config", &self.inner.settings().config)
            .finish_non_exhaustive()
    }
}

crate::registry::registered!(Retry: RetryConfig => RetryMetrics);
