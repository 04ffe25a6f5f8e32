//! What counts as a failure: the equivalent of aioresilience's `ExceptionConfig`.
//!
//! By default every `Err` is a failure and every `Ok` a success. A [`Classifier`] refines that
//! for one kind of operation (its `T` and `E`):
//!
//! * [`failure_if`](Classifier::failure_if): only errors matching the predicate are failures;
//!   the others are *ignored* (aioresilience's `failure_exceptions` / `failure_predicate`);
//! * [`ignore_if`](Classifier::ignore_if): errors matching it are ignored, whatever else holds
//!   (c-breaker's `excluded_exceptions`), for example "not found" answers that say nothing about
//!   the health of a dependency;
//! * [`failure_on_result`](Classifier::failure_on_result): successful results that are
//!   failures all the same, for example HTTP responses with a 5xx status;
//! * [`on_error`](Classifier::on_error): a hook that sees every error and its outcome.
//!
//! An *ignored* outcome is neither success nor failure: it changes no counter that decides a
//! transition, and a half-open probe that ends ignored gives its probe slot back, so an ignored
//! error can never leave a circuit stuck half-open.
//!
//! Predicates and hooks are user code: a pattern runs them isolated, so a panic is reported to
//! the [error handler](crate::set_error_handler) and the outcome counts as a failure (as in
//! aioresilience when a predicate raises).
//!
//! ```
//! use resilience::classify::{Classifier, Outcome};
//!
//! #[derive(Debug)]
//! enum DbError { NotFound, Unavailable }
//!
//! let classifier = Classifier::<u32, DbError>::new()
//!     .ignore_if(|error| matches!(error, DbError::NotFound))
//!     .failure_on_result(|rows| *rows == 0);
//!
//! assert_eq!(classifier.classify(&Err(DbError::NotFound)), Outcome::Ignored);
//! assert_eq!(classifier.classify(&Err(DbError::Unavailable)), Outcome::Failure);
//! assert_eq!(classifier.classify(&Ok(0)), Outcome::Failure);
//! assert_eq!(classifier.classify(&Ok(7)), Outcome::Success);
//! ```

use std::fmt;
use std::sync::Arc;

/// How a completed call is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed in a way that says something about the dependency's health.
    Failure,
    /// The call's result says nothing about health; it is not counted either way.
    Ignored,
}

type ErrorPredicate<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;
type ResultPredicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;
type ErrorHook<E> = Arc<dyn Fn(&E, Outcome) + Send + Sync>;

/// Decides the [`Outcome`] of a call returning `Result<T, E>`.
///
/// The default classifier holds nothing and allocates nothing: every `Err` is a failure.
pub struct Classifier<T, E> {
    failure_if: Option<ErrorPredicate<E>>,
    ignore_if: Option<ErrorPredicate<E>>,
    failure_on_result: Option<ResultPredicate<T>>,
    on_error: Option<ErrorHook<E>>,
}

impl<T, E> Classifier<T, E> {
    /// The default: every `Err` is a failure, every `Ok` a success.
    pub const fn new() -> Self {
        Self {
            failure_if: None,
            ignore_if: None,
            failure_on_result: None,
            on_error: None,
        }
    }

    /// Only errors for which `predicate` holds are failures; other errors are ignored.
    #[must_use]
    pub fn failure_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.failure_if = Some(Arc::new(predicate));
        self
    }

    /// Errors for which `predicate` holds are ignored, taking precedence over
    /// [`failure_if`](Self::failure_if).
    #[must_use]
    pub fn ignore_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.ignore_if = Some(Arc::new(predicate));
        self
    }

    /// Successful results for which `predicate` holds count as failures.
    #[must_use]
    pub fn failure_on_result<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.failure_on_result = Some(Arc::new(predicate));
        self
    }

    /// Calls `hook` with every error and the outcome it was given.
    #[must_use]
    pub fn on_error<H>(mut self, hook: H) -> Self
    where
        H: Fn(&E, Outcome) + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// The outcome of `result`. User predicates run here and may panic; patterns call this
    /// isolated.
    pub fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(value) => match &self.failure_on_result {
                Some(is_failure) if is_failure(value) => Outcome::Failure,
                _ => Outcome::Success,
            },
            Err(error) => {
                if self.ignore_if.as_ref().is_some_and(|ignore| ignore(error)) {
                    return Outcome::Ignored;
                }
                match &self.failure_if {
                    Some(is_failure) if !is_failure(error) => Outcome::Ignored,
                    _ => Outcome::Failure,
                }
            }
        }
    }
}

/// Anything that judges the outcome of a `Result<T, E>`: a [`Classifier`], or
/// [`EveryError`], the default, which counts every `Err` as a failure.
///
/// Patterns accept any `Classify`, so a layer can be generic over its judge without boxing.
pub trait Classify<T, E> {
    /// The outcome of `result`. May run user code, which may panic; patterns isolate it.
    fn outcome(&self, result: &Result<T, E>) -> Outcome;

    /// Tells an error hook, if any, which outcome an error was given.
    fn notify(&self, result: &Result<T, E>, outcome: Outcome) {
        let _ = (result, outcome);
    }

    /// Whether this judge runs user code (which must be isolated against panics).
    fn runs_user_code(&self) -> bool {
        true
    }
}

/// The default judge: every `Err` is a failure, every `Ok` a success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EveryError;

impl<T, E> Classify<T, E> for EveryError {
    fn outcome(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    fn runs_user_code(&self) -> bool {
        false
    }
}

impl<T, E> Classify<T, E> for Classifier<T, E> {
    fn outcome(&self, result: &Result<T, E>) -> Outcome {
        self.classify(result)
    }

    fn notify(&self, result: &Result<T, E>, outcome: Outcome) {
        if let (Some(hook), Err(error)) = (&self.on_error, result) {
            hook(error, outcome);
        }
    }

    fn runs_user_code(&self) -> bool {
        self.failure_if.is_some()
            || self.ignore_if.is_some()
            || self.failure_on_result.is_some()
            || self.on_error.is_some()
    }
}

/// Judges the result of an operation that already returns this crate's [`Error`](crate::Error),
/// as an outer pattern sees an inner one's: the operation's own errors go to `classifier`; a
/// timeout, an exhausted retry or a failed fallback is a failure; a rejection by an inner
/// pattern (a full bulkhead, say) says nothing about the dependency and is ignored.
#[inline]
pub(crate) fn judge_nested<T, E>(
    classifier: &impl Classify<T, E>,
    result: Result<T, crate::Error<E>>,
    pattern: crate::PatternKind,
    name: &str,
) -> (Outcome, Result<T, crate::Error<E>>) {
    match result {
        Ok(value) => {
            let result = Ok(value);
            let outcome = judge(classifier, &result, pattern, name);
            (outcome, result.map_err(crate::Error::Inner))
        }
        Err(crate::Error::Inner(error)) => {
            let result = Err(error);
            let outcome = judge(classifier, &result, pattern, name);
            (outcome, result.map_err(crate::Error::Inner))
        }
        Err(crate::Error::Rejected(rejection)) => {
            (Outcome::Ignored, Err(crate::Error::Rejected(rejection)))
        }
        Err(other) => (Outcome::Failure, Err(other)),
    }
}

/// Judges `result` with user code isolated: a panicking predicate is reported to the
/// [error handler](crate::set_error_handler) and the outcome counts as a failure.
#[inline]
pub(crate) fn judge<T, E>(
    classifier: &impl Classify<T, E>,
    result: &Result<T, E>,
    pattern: crate::PatternKind,
    name: &str,
) -> Outcome {
    if !classifier.runs_user_code() {
        return classifier.outcome(result);
    }
    judge_isolated(classifier, result, pattern, name)
}

/// [`judge`] for a classifier that runs user code, out of line: the guard against its panics
/// is the bulk of the code, and a classifier without user code never reaches it.
#[inline(never)]
fn judge_isolated<T, E>(
    classifier: &impl Classify<T, E>,
    result: &Result<T, E>,
    pattern: crate::PatternKind,
    name: &str,
) -> Outcome {
    let kind = crate::hook::CallbackKind::ErrorHook;
    let outcome = crate::hook::isolate(kind, pattern, name, || classifier.outcome(result))
        .unwrap_or(Outcome::Failure);
    crate::hook::isolate(kind, pattern, name, || classifier.notify(result, outcome));
    outcome
}

impl<T, E> Default for Classifier<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> Clone for Classifier<T, E> {
    fn clone(&self) -> Self {
        Self {
            failure_if: self.failure_if.clone(),
            ignore_if: self.ignore_if.clone(),
            failure_on_result: self.failure_on_result.clone(),
            on_error: self.on_error.clone(),
        }
    }
}

impl<T, E> fmt::Debug for Classifier<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("failure_if", &self.failure_if.is_some())
            .field("ignore_if", &self.ignore_if.is_some())
            .field("failure_on_result", &self.failure_on_result.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

/// Writes a permit's `success`, `failure` and `ignore`, each a shortcut for its
/// `record(self, Outcome)`.
// Inlined: from another crate each would otherwise be a call to a one-line function.
macro_rules! outcome_shortcuts {
    () => {
        /// The call succeeded.
        #[inline]
        pub fn success(self) {
            self.record($crate::classify::Outcome::Success);
        }

        /// The call failed.
        #[inline]
        pub fn failure(self) {
            self.record($crate::classify::Outcome::Failure);
        }

        /// The call's outcome says nothing about the dependency.
        #[inline]
        pub fn ignore(self) {
            self.record($crate::classify::Outcome::Ignored);
        }
    };
}
pub(crate) use outcome_shortcuts;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_counts_every_error() {
        let classifier = Classifier::<(), &str>::new();
        assert_eq!(classifier.classify(&Ok(())), Outcome::Success);
        assert_eq!(classifier.classify(&Err("x")), Outcome::Failure);
        assert!(!classifier.runs_user_code());
        assert!(!Classify::<(), &str>::runs_user_code(&EveryError));
    }

    #[test]
    fn failure_if_ignores_non_matching_errors() {
        let classifier = Classifier::<(), i32>::new().failure_if(|code| *code >= 500);
        assert_eq!(classifier.classify(&Err(503)), Outcome::Failure);
        assert_eq!(classifier.classify(&Err(404)), Outcome::Ignored);
    }

    #[test]
    fn ignore_wins_over_failure_if() {
        let classifier = Classifier::<(), i32>::new()
            .failure_if(|_| true)
            .ignore_if(|code| *code == 404);
        assert_eq!(classifier.classify(&Err(404)), Outcome::Ignored);
        assert_eq!(classifier.classify(&Err(500)), Outcome::Failure);
    }

    #[test]
    fn on_error_sees_errors_only() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let classifier = Classifier::<(), i32>::new().on_error(move |_, outcome| {
            assert_eq!(outcome, Outcome::Failure);
            counter.fetch_add(1, Ordering::SeqCst);
        });
        classifier.notify(&Ok(()), Outcome::Success);
        classifier.notify(&Err(1), Outcome::Failure);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
