//! [`Fallback`]: the async shell around the selection and the chain.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::chain::{Started, Step};
use super::instruments::Instruments;
use super::state::{self, Decision, Selection, Verdict};
use super::{ErrorClass, FallbackBuilder, FallbackConfig, FallbackEvent, FallbackMetrics};
use crate::events::{Emitter, EventBus};
use crate::hook::{isolate, CallbackKind};
use crate::tally::ResettableTally;
use crate::{Error, PatternKind};

pub(super) type Predicate<E> = Box<dyn Fn(&Error<E>) -> bool + Send + Sync>;

/// Answers with something else when an operation fails: a value, or the result of a chain of
/// functions of the error, tried in order.
///
/// `T` is what the operation (and so every fallback) returns and `E` its error type. Cheap
/// to clone; clones share the chain, counters and listeners. See the [module docs](super).
pub struct Fallback<T, E> {
    pub(super) inner: Arc<Inner<T, E>>,
}

/// Which count of [`Inner::outcomes`] is which: the operation succeeded, a fallback answered,
/// every fallback failed, or the error was not one to fall back on.
const SUCCEEDED: usize = 0;
const FELL_BACK: usize = 1;
const FAILED: usize = 2;
const PASSED_THROUGH: usize = 3;

pub(super) struct Inner<T, E> {
    name: Arc<str>,
    chain: Box<[Step<T, E>]>,
    config: FallbackConfig,
    selection: Selection,
    predicate: Option<Predicate<E>>,
    /// How calls ended, counted per thread: a call that succeeds writes no shared counter.
    outcomes: ResettableTally<4>,
    emitter: Emitter,
    /// Metric handles, registered once here (zero-sized without feature `metrics`).
    instruments: Instruments,
}

impl<T, E> Fallback<T, E> {
    /// Starts building a fallback named `name`; add at least one fallback to it.
    pub fn builder(name: impl Into<String>) -> FallbackBuilder<T, E> {
        FallbackBuilder::new(name.into())
    }

    pub(super) fn new_validated(
        name: &str,
        config: FallbackConfig,
        chain: Vec<Step<T, E>>,
        predicate: Option<Predicate<E>>,
    ) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                instruments: Instruments::new(&name),
                name,
                chain: chain.into_boxed_slice(),
                selection: Selection::of(&config.fallback_on),
                config,
                predicate,
                outcomes: ResettableTally::new(),
            }),
        }
    }

    /// The fallback's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its configuration (which kinds of error fall back).
    pub fn config(&self) -> &FallbackConfig {
        &self.inner.config
    }

    /// How many fallbacks the chain holds.
    pub fn len(&self) -> usize {
        self.inner.chain.len()
    }

    /// Always `false`: a fallback is built with at least one step.
    pub fn is_empty(&self) -> bool {
        self.inner.chain.is_empty()
    }

    /// Runs `operation`; if it fails with a selected error, tries the fallbacks in order and
    /// returns the first that succeeds.
    ///
    /// * success: the operation's value, fallbacks untouched;
    /// * a selected error: the first fallback's success, or, when every fallback failed,
    ///   [`Error::FallbackFailed`] carrying the primary error and the last fallback's error;
    /// * an error not selected: returned untouched ([`Error::Inner`] for the operation's own).
    pub async fn call<F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.execute(|| async move { operation().await.map_err(Error::Inner) })
            .await
    }

    /// Runs an operation that already returns this crate's [`Error`], such as an inner pattern
    /// of a pipeline: a circuit breaker's rejection or a timeout can fall back too. Errors
    /// that are not selected pass through unchanged.
    pub async fn execute<F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
        E: fmt::Display,
    {
        match self.settle(operation().await) {
            Ok(answer) => answer,
            Err(primary) => self.recover(primary).await,
        }
    }

    // The two steps of `execute` after its operation, for a caller that awaits the operation
    // itself (a pipeline awaits its retry in its own future, so the fallback adds no state
    // machine and no closure around it).

    /// What the fallback makes of the operation's `result` without running its chain: the
    /// answer (a success, counted, or an error the chain does not answer, counted as passed
    /// through), or, as the error, the primary error the chain must answer.
    #[inline]
    pub(crate) fn settle(
        &self,
        result: Result<T, Error<E>>,
    ) -> Result<Result<T, Error<E>>, Error<E>> {
        match result {
            Ok(value) => {
                self.inner.succeeded();
                Ok(Ok(value))
            }
            Err(primary) if self.inner.selects(&primary) => Err(primary),
            Err(primary) => Ok(Err(primary)),
        }
    }

    /// Tries the chain in order for a selected `primary` error.
    pub(crate) fn recover(
        &self,
        primary: Error<E>,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E>
    where
        E: fmt::Display,
    {
        self.inner.recover(primary)
    }

    /// A snapshot of the counters, with aioresilience's field names.
    pub fn metrics(&self) -> FallbackMetrics {
        let inner = &*self.inner;
        let outcomes = inner.outcomes.counts();
        FallbackMetrics {
            name: inner.name.to_string(),
            total_executions: 0,
            successful_executions: outcomes[SUCCEEDED],
            fallback_executions: outcomes[FELL_BACK],
            failed_executions: outcomes[FAILED],
            passed_through_executions: outcomes[PASSED_THROUGH],
            fallback_rate: 0.0,
            failure_rate: 0.0,
        }
        .finish()
    }

    /// Sets every counter back to zero (aioresilience's `reset_metrics`).
    pub fn reset_metrics(&self) {
        self.inner.outcomes.reset();
    }

    /// This fallback's own listeners; events also reach [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl<T, E> Inner<T, E> {
    pub(super) fn succeeded(&self) {
        self.outcomes.add(SUCCEEDED);
    }

    /// Whether `primary` is answered by the chain; counts it as passed through if not.
    pub(super) fn selects(&self, primary: &Error<E>) -> bool {
        let decision = state::decide(self.selection, ErrorClass::of(primary), || {
            let Some(predicate) = &self.predicate else {
                return Verdict::Absent;
            };
            let kind = CallbackKind::ErrorHook;
            match isolate(kind, PatternKind::Fallback, &self.name, || {
                predicate(primary)
            }) {
                Some(true) => Verdict::Holds,
                Some(false) => Verdict::Fails,
                None => Verdict::Panicked,
            }
        });
        if decision == Decision::PassThrough {
            self.outcomes.add(PASSED_THROUGH);
        }
        decision == Decision::Fallback
    }

    /// Tries the chain in order for a selected `primary` error.
    pub(super) async fn recover(&self, primary: Error<E>) -> Result<T, Error<E>>
    where
        E: fmt::Display,
    {
        let mut last = None;
        for (index, step) in self.chain.iter().enumerate() {
            let result = match step.start(&primary) {
                Started::Ready(result) => result,
                Started::Pending(future) => future.await,
            };
            match result {
                Ok(value) => {
                    self.outcomes.add(FELL_BACK);
                    self.instruments.triggered.increment();
                    tracing::debug!(target: "resilience::fallback", fallback = %self.name, index, error = %primary, "fallback used");
                    self.emitter.emit(|| FallbackEvent::FallbackTriggered {
                        index,
                        error: primary.to_string().into(),
                    });
                    return Ok(value);
                }
                Err(error) => last = Some(error),
            }
        }
        let Some(fallback) = last else {
            // No step at all: impossible by construction (`build` requires one), and then the
            // honest answer is the primary error.
            return Err(primary);
        };
        self.outcomes.add(FAILED);
        self.instruments.failed.increment();
        let tried = self.chain.len();
        tracing::warn!(target: "resilience::fallback", fallback = %self.name, tried, error = %fallback, primary = %primary, "every fallback failed");
        self.emitter.emit(|| FallbackEvent::FallbackFailed {
            tried,
            error: fallback.to_string().into(),
        });
        Err(Error::FallbackFailed {
            primary: Box::new(primary),
            fallback,
        })
    }
}

impl<T, E> Clone for Fallback<T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T, E> fmt::Debug for Fallback<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("name", &self.inner.name)
            .field("chain", &self.inner.chain)
            .field("fallback_on", &self.inner.config.fallback_on)
            .field("when", &self.inner.predicate.is_some())
            .finish()
    }
}
