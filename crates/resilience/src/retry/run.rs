//! The driver of one retried call, shared by the handle's async methods and the tower
//! future: after each attempt it says "return this" or "wait this long", updating metrics,
//! emitting events and logging on the way. It never sleeps or runs the operation itself, so
//! both callers drive it the same way.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff;
use super::handle::{Inner, Settings, AFTER_RETRYING, FIRST_TRY, OTHER_ATTEMPTS};
use super::rules::{Kind, Verdict};
use super::state::{decide, retryable, Attempts, Decision, Retryable, Stop};
use super::{RetryEvent, RetryRules};
use crate::Error;

/// How a rejected value is shown in events and metrics.
const REJECTED_RESULT: &str = "result rejected by the retry predicate";

/// What to do after an attempt.
pub(crate) enum Step<T, E> {
    /// Hand this to the caller.
    Return(Result<T, Error<E>>),
    /// Wait this long, then make the next attempt.
    Wait(Duration),
}

/// Starts a call: deposits into the budget if there is one, and returns when the call started,
/// read from the clock only if a time limit is set. A first-try success takes no lock and
/// writes nothing shared but the budget's count.
#[inline]
pub(crate) fn start(inner: &Inner) -> Option<Instant> {
    let started = inner.has_time_limit().then(Instant::now);
    if inner.has_budget() {
        inner.deposit();
    }
    started
}

/// The counts and the event of a success at the first attempt, whose value needed no judging:
/// all a first-try success costs, with no [`Run`] made.
#[inline(always)]
pub(crate) fn succeeded_first_try(inner: &Inner) {
    inner.counters.calls.add(FIRST_TRY);
    inner.instruments.succeeded();
    emit_success(inner, 1);
}

/// One branch when nobody listens; the event is built out of line.
#[inline(always)]
fn emit_success(inner: &Inner, attempts: u32) {
    if inner.emitter.wants(RetryEvent::RETRY_SUCCESS) {
        emit_success_slow(inner, attempts);
    }
}

#[cold]
#[inline(never)]
fn emit_success_slow(inner: &Inner, attempts: u32) {
    inner.emitter.emit(|| RetryEvent::RetrySuccess { attempts });
}

/// One call's progress.
#[derive(Debug)]
pub(crate) struct Run {
    attempts: Attempts,
    /// When the first attempt started; read only when a time limit is set.
    started: Option<Instant>,
    /// The last wait (decorrelated jitter grows from it).
    previous: Duration,
    /// The settings, fetched at the first failure and kept to the end of the call.
    settings: Option<Arc<Settings>>,
}

impl Run {
    /// A call's progress, from its first attempt's result on; `started` as [`start`] returned
    /// it.
    pub(crate) fn new(started: Option<Instant>) -> Self {
        Self {
            attempts: Attempts::default(),
            started,
            previous: Duration::ZERO,
            settings: None,
        }
    }

    /// Judges an attempt's result.
    #[inline(always)]
    pub(crate) fn step<T, E>(
        &mut self,
        inner: &Inner,
        rules: &RetryRules<T, E>,
        result: Result<T, Error<E>>,
    ) -> Step<T, E>
    where
        E: fmt::Display,
    {
        // Counted when judged (`succeeded`, `returned`, `failed`): a first-try success is
        // counted with one add.
        self.attempts.attempted();
        // The common case, a value under rules that take every value, is a success with no
        // judging: inlined into the caller; the rest is not.
        match result {
            Ok(value) if rules.accepts_every_value() => self.succeeded(inner, Ok(value)),
            other => self.judge(inner, rules, other),
        }
    }

    /// Judges an attempt's result by `rules`.
    fn judge<T, E>(
        &mut self,
        inner: &Inner,
        rules: &RetryRules<T, E>,
        result: Result<T, Error<E>>,
    ) -> Step<T, E>
    where
        E: fmt::Display,
    {
        let own: Result<T, E> = match result {
            Ok(value) => Ok(value),
            Err(Error::Inner(error)) => Err(error),
            Err(other) => {
                let settings = self.settings(inner);
                return match retryable(&other, &settings.config) {
                    Retryable::Yes { retry_after } => {
                        self.failed(inner, rules, Kind::Base, Some(other), retry_after)
                    }
                    Retryable::No => Self::returned(inner, Err(other)),
                };
            }
        };
        match rules.judge(&own, &inner.name) {
            Verdict::Done if own.is_ok() => self.succeeded(inner, own),
            Verdict::Done | Verdict::Return => Self::returned(inner, own.map_err(Error::Inner)),
            Verdict::Retry(kind) => {
                let advised = rules.advised_wait(&own, &inner.name);
                let last = own.err().map(Error::Inner);
                self.failed(inner, rules, kind, last, advised)
            }
        }
    }

    /// Records a completed wait.
    pub(crate) fn waited(inner: &Inner, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        inner
            .counters
            .delay_nanos
            .fetch_add(nanos, Ordering::Relaxed);
    }

    fn settings(&mut self, inner: &Inner) -> Arc<Settings> {
        Arc::clone(self.settings.get_or_insert_with(|| inner.settings()))
    }

    #[inline(always)]
    fn succeeded<T, E>(&self, inner: &Inner, own: Result<T, E>) -> Step<T, E> {
        let attempts = self.attempts.total();
        if attempts == 1 {
            succeeded_first_try(inner);
        } else {
            Self::succeeded_after_retrying(inner, attempts);
        }
        Step::Return(own.map_err(Error::Inner))
    }

    /// The counts and the log of a success that took more than one attempt, kept out of line
    /// so that a first-try success inlines into its caller.
    #[cold]
    #[inline(never)]
    fn succeeded_after_retrying(inner: &Inner, attempts: u32) {
        inner.counters.calls.add(OTHER_ATTEMPTS);
        inner.counters.calls.add(AFTER_RETRYING);
        inner.instruments.succeeded();
        tracing::debug!(target: "resilience::retry", retry = %inner.name, attempts, "succeeded after retrying");
        emit_success(inner, attempts);
    }

    /// A failure that is not retried: returned as is, no event.
    fn returned<T, E: fmt::Display>(inner: &Inner, result: Result<T, Error<E>>) -> Step<T, E> {
        inner.counters.calls.add(OTHER_ATTEMPTS);
        if let Err(error) = &result {
            inner.counters.failed.fetch_add(1, Ordering::Relaxed);
            inner.set_last_error(Arc::from(error.to_string()));
        }
        Step::Return(result)
    }

    /// A retryable failure: wait and retry, or give up. `last` is `None` for a value the
    /// result predicate rejected.
    fn failed<T, E: fmt::Display>(
        &mut self,
        inner: &Inner,
        rules: &RetryRules<T, E>,
        kind: Kind,
        last: Option<Error<E>>,
        retry_after: Option<Duration>,
    ) -> Step<T, E> {
        inner.counters.calls.add(OTHER_ATTEMPTS);
        let error: Arc<str> = match &last {
            Some(error) => Arc::from(error.to_string()),
            None => Arc::from(REJECTED_RESULT),
        };
        inner.counters.failed.fetch_add(1, Ordering::Relaxed);
        inner.set_last_error(Arc::clone(&error));

        let settings = self.settings(inner);
        let config = &settings.config;
        let (max_attempts, strategy) = rules
            .strategy(kind)
            .unwrap_or((config.max_attempts, &config.backoff));
        let failures = self.attempts.failed(kind, rules.override_count());
        let random = if backoff::needs_random(strategy, config.jitter) {
            inner.random()
        } else {
            0.0
        };
        let delay = backoff::delay(
            strategy,
            config.jitter,
            config.max_delay,
            failures,
            self.previous,
            random,
        );
        let elapsed = match config.max_elapsed {
            Some(_) => self.started.get_or_insert_with(Instant::now).elapsed(),
            None => Duration::ZERO,
        };
        let mut decision = decide(
            failures,
            max_attempts,
            delay,
            retry_after,
            elapsed,
            config.max_elapsed,
            config.max_delay,
        );
        if let (Decision::Retry(_), Some(budget)) = (decision, &settings.budget) {
            if !budget.try_withdraw() {
                decision = Decision::Stop(Stop::Budget);
            }
        }

        let attempt = self.attempts.total();
        match decision {
            Decision::Retry(delay) => {
                self.previous = delay;
                inner.instruments.retrying();
                tracing::debug!(target: "resilience::retry", retry = %inner.name, attempt, max_attempts, ?delay, %error, "attempt failed, retrying");
                inner.emitter.emit(|| RetryEvent::RetryAttempt {
                    attempt,
                    max_attempts,
                    delay,
                    error: Arc::clone(&error),
                });
                Step::Wait(delay)
            }
            Decision::Stop(reason) => {
                inner.counters.exhausted.fetch_add(1, Ordering::Relaxed);
                inner.instruments.gave_up();
                tracing::warn!(target: "resilience::retry", retry = %inner.name, attempts = attempt, reason = reason.as_str(), %error, "giving up");
                inner.emitter.emit(|| RetryEvent::RetryExhausted {
                    attempts: attempt,
                    error,
                });
                Step::Return(Err(Error::RetryExhausted {
                    attempts: attempt,
                    last: last.map(Box::new),
                }))
            }
        }
    }
}
