//! [`RetryRules`]: which outcomes of one kind of operation are retried, and how.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Backoff;
use crate::classify::{judge, Classifier, Classify, Outcome};
use crate::hook::{isolate, CallbackKind};
use crate::PatternKind;

type ErrorPredicate<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;
type AdvisedWait<T, E> = Arc<dyn Fn(&Result<T, E>) -> Option<Duration> + Send + Sync>;

/// Which results of an operation returning `Result<T, E>` are retried, for
/// [`Retry::call_with`](super::Retry::call_with) and the other `_with` methods.
///
/// A [`Retry`](super::Retry) handle is not generic: it holds the timing and limits, while
/// rules are typed by the operation, so one handle can serve operations of several types.
/// Rules are built on a [`Classifier`] read the retry's way: *failure* means "retry",
/// *ignored* means "return as is", *success* means "done".
///
/// An error is judged in this order:
/// 1. [`never_retry_if`](Self::never_retry_if) matches: returned as is;
/// 2. a [`strategy_if`](Self::strategy_if) override matches (the first, in the order they
///    were added): retried with that override's strategy and its own attempt count;
/// 3. otherwise the classifier decides: every error is retried by default,
///    [`retry_if`](Self::retry_if) narrows that down.
///
/// A value is retried when [`retry_on_result`](Self::retry_on_result) matches it; if the
/// attempts run out, the caller gets [`Error::RetryExhausted`](crate::Error::RetryExhausted)
/// with `last: None`, never the rejected value passed off as a success.
///
/// Predicates and hooks are user code: a panic is caught and reported to the
/// [error handler](crate::set_error_handler). A panicking `never_retry_if` or `strategy_if`
/// predicate counts as not matching; a panicking classifier predicate counts as a failure,
/// so the attempt is retried.
///
/// ```
/// use resilience::retry::{Backoff, RetryRules};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// enum ApiError { BadRequest, Unavailable, Throttled }
///
/// let rules = RetryRules::<u16, ApiError>::new()
///     .never_retry_if(|error| matches!(error, ApiError::BadRequest))
///     .strategy_if(
///         |error| matches!(error, ApiError::Throttled),
///         6,
///         Backoff::exponential(Duration::from_secs(1), 2.0),
///     )
///     .retry_on_result(|status| *status >= 500);
/// # let _ = rules;
/// ```
pub struct RetryRules<T, E> {
    classifier: Classifier<T, E>,
    never: Option<ErrorPredicate<E>>,
    overrides: Vec<Override<E>>,
    advised: Option<AdvisedWait<T, E>>,
}

struct Override<E> {
    matches: ErrorPredicate<E>,
    max_attempts: u32,
    backoff: Backoff,
}

/// Which budget of attempts, and which strategy, a retried failure uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The policy's own `max_attempts` and backoff.
    Base,
    /// The override at this index.
    Override(usize),
}

/// What to do with one attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A success: return it.
    Done,
    /// Not to be retried: return it as is.
    Return,
    /// Retry it, counting against `Kind`'s attempts.
    Retry(Kind),
}

impl<T, E> RetryRules<T, E> {
    /// Every error is retried; every value is a success. Allocates nothing.
    pub const fn new() -> Self {
        Self {
            classifier: Classifier::new(),
            never: None,
            overrides: Vec::new(),
            advised: None,
        }
    }

    /// Rules reading `classifier` the retry's way: failures are retried, ignored errors are
    /// returned as is, failing results are retried.
    pub fn from_classifier(classifier: Classifier<T, E>) -> Self {
        Self {
            classifier,
            ..Self::new()
        }
    }

    /// Only errors for which `predicate` holds are retried; others are returned as is
    /// (aioresilience's `retry_on_exceptions`). Overrides still apply.
    #[must_use]
    pub fn retry_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.classifier = self.classifier.failure_if(predicate);
        self
    }

    /// Errors for which `predicate` holds are never retried, whatever else matches (a
    /// "bad request" will not get better by asking again).
    #[must_use]
    pub fn never_retry_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.never = Some(Arc::new(predicate));
        self
    }

    /// Successful values for which `predicate` holds are retried
    /// (aioresilience's `retry_on_result`), for example an HTTP response with status 503.
    #[must_use]
    pub fn retry_on_result<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.classifier = self.classifier.failure_on_result(predicate);
        self
    }

    /// Calls `hook` with every error of the operation and its outcome:
    /// [`Outcome::Failure`] when it is to be retried (limits permitting),
    /// [`Outcome::Ignored`] when it is returned as is.
    #[must_use]
    pub fn on_error<H>(mut self, hook: H) -> Self
    where
        H: Fn(&E, Outcome) + Send + Sync + 'static,
    {
        self.classifier = self.classifier.on_error(hook);
        self
    }

    /// Errors for which `predicate` holds are retried with `backoff`, up to `max_attempts`
    /// attempts *of this kind* (aioresilience's `exception_strategies`).
    ///
    /// Each override counts its own attempts: failures of other kinds do not use up its
    /// attempts, nor do its failures use up the policy's `max_attempts`.
    /// `max_attempts` counts the first call if it failed this way; 0 and 1 both mean "never
    /// retried". `max_delay`, jitter, the time limit and the budget are the policy's.
    #[must_use]
    pub fn strategy_if<P>(mut self, predicate: P, max_attempts: u32, backoff: Backoff) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.overrides.push(Override {
            matches: Arc::new(predicate),
            max_attempts: max_attempts.max(1),
            backoff,
        });
        self
    }

    /// Reads how long the other side asked to be left alone from a result that is retried
    /// (an HTTP `Retry-After`, gRPC's `grpc-retry-pushback-ms`): the next attempt waits at
    /// least that long. A wait longer than the policy's `max_delay` is not waited out: the
    /// retry gives up at once ([`Error::RetryExhausted`](crate::Error::RetryExhausted), this
    /// error as `last`) rather than come back before it was asked to. Rejections by this crate's patterns carry their own `retry_after`, read the same
    /// way.
    ///
    /// ```
    /// use resilience::retry::RetryRules;
    /// use std::time::Duration;
    ///
    /// struct Throttled { retry_after_ms: u64 }
    ///
    /// let rules = RetryRules::<(), Throttled>::new().retry_after(|result| {
    ///     let throttled = result.as_ref().err()?;
    ///     Some(Duration::from_millis(throttled.retry_after_ms))
    /// });
    /// # let _ = rules;
    /// ```
    #[must_use]
    pub fn retry_after<H>(mut self, hook: H) -> Self
    where
        H: Fn(&Result<T, E>) -> Option<Duration> + Send + Sync + 'static,
    {
        self.advised = Some(Arc::new(hook));
        self
    }

    /// The wait `result` asks for, if a [`retry_after`](Self::retry_after) hook says; user
    /// code isolated (a panic asks for nothing).
    pub(crate) fn advised_wait(&self, result: &Result<T, E>, name: &Arc<str>) -> Option<Duration> {
        let hook = self.advised.as_ref()?;
        isolate(CallbackKind::ErrorHook, PatternKind::Retry, name, || {
            hook(result)
        })
        .flatten()
    }

    /// The classifier these rules are built on.
    pub fn classifier(&self) -> &Classifier<T, E> {
        &self.classifier
    }

    /// The attempts and strategy of an override; `None` for [`Kind::Base`].
    pub(crate) fn strategy(&self, kind: Kind) -> Option<(u32, &Backoff)> {
        match kind {
            Kind::Base => None,
            Kind::Override(index) => self
                .overrides
                .get(index)
                .map(|found| (found.max_attempts, &found.backoff)),
        }
    }

    /// How many overrides there are.
    pub(crate) fn override_count(&self) -> usize {
        self.overrides.len()
    }

    /// Whether every value is a success without running user code (no
    /// [`retry_on_result`](Self::retry_on_result) predicate nor classifier hook): then a
    /// value needs no judging. Errors are judged as always.
    #[inline]
    pub(crate) fn accepts_every_value(&self) -> bool {
        !self.classifier.runs_user_code()
    }

    /// Judges one attempt's result, user code isolated.
    pub(crate) fn judge(&self, result: &Result<T, E>, name: &Arc<str>) -> Verdict {
        let Err(error) = result else {
            return match judge(&self.classifier, result, PatternKind::Retry, name) {
                Outcome::Failure => Verdict::Retry(Kind::Base),
                Outcome::Success | Outcome::Ignored => Verdict::Done,
            };
        };
        let holds = |predicate: &ErrorPredicate<E>| {
            isolate(CallbackKind::ErrorHook, PatternKind::Retry, name, || {
                predicate(error)
            }) == Some(true)
        };
        let decided = if self.never.as_ref().is_some_and(holds) {
            Some((Outcome::Ignored, Verdict::Return))
        } else {
            self.overrides
                .iter()
                .position(|found| holds(&found.matches))
                .map(|index| (Outcome::Failure, Verdict::Retry(Kind::Override(index))))
        };
        match decided {
            Some((outcome, verdict)) => {
                isolate(CallbackKind::ErrorHook, PatternKind::Retry, name, || {
                    self.classifier.notify(result, outcome);
                });
                verdict
            }
            None => match judge(&self.classifier, result, PatternKind::Retry, name) {
                Outcome::Failure => Verdict::Retry(Kind::Base),
                Outcome::Success | Outcome::Ignored => Verdict::Return,
            },
        }
    }
}

impl<T, E> Default for RetryRules<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> From<Classifier<T, E>> for RetryRules<T, E> {
    fn from(classifier: Classifier<T, E>) -> Self {
        Self::from_classifier(classifier)
    }
}

impl<T, E> Clone for RetryRules<T, E> {
    fn clone(&self) -> Self {
        Self {
            classifier: self.classifier.clone(),
            never: self.never.clone(),
            overrides: self
                .overrides
                .iter()
                .map(|found| Override {
                    matches: Arc::clone(&found.matches),
                    max_attempts: found.max_attempts,
                    backoff: found.backoff,
                })
                .collect(),
            advised: self.advised.clone(),
        }
    }
}

impl<T, E> fmt::Debug for RetryRules<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overrides: Vec<_> = self
            .overrides
            .iter()
            .map(|found| (found.max_attempts, found.backoff))
            .collect();
        f.debug_struct("RetryRules")
            .field("classifier", &self.classifier)
            .field("never_retry_if", &self.never.is_some())
            .field("overrides", &overrides)
            .field("retry_after", &self.advised.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn name() -> Arc<str> {
        Arc::from("test")
    }

    #[test]
    fn default_retries_every_error_and_accepts_every_value() {
        let rules = RetryRules::<u32, &str>::new();
        assert_eq!(rules.judge(&Err("x"), &name()), Verdict::Retry(Kind::Base));
        assert_eq!(rules.judge(&Ok(1), &name()), Verdict::Done);
    }

    #[test]
    fn order_is_never_then_overrides_then_classifier() {
        let rules = RetryRules::<u32, i32>::new()
            .retry_if(|code| *code >= 500)
            .never_retry_if(|code| *code == 501)
            .strategy_if(|code| *code == 429, 5, Backoff::constant(Duration::ZERO))
            .strategy_if(|code| *code >= 429, 2, Backoff::constant(Duration::ZERO))
            .retry_on_result(|value| *value == 0);
        let judge = |result: Result<u32, i32>| rules.judge(&result, &name());
        assert_eq!(judge(Err(501)), Verdict::Return);
        assert_eq!(judge(Err(429)), Verdict::Retry(Kind::Override(0)));
        assert_eq!(judge(Err(501 - 1)), Verdict::Retry(Kind::Override(1)));
        assert_eq!(judge(Err(404 - 4)), Verdict::Return);
        assert_eq!(judge(Ok(0)), Verdict::Retry(Kind::Base));
        assert_eq!(judge(Ok(1)), Verdict::Done);
        assert_eq!(
            rules.strategy(Kind::Override(0)).map(|(max, _)| max),
            Some(5)
        );
        assert_eq!(rules.strategy(Kind::Base), None);
    }

    #[test]
    fn panicking_predicates_are_contained() {
        let rules = RetryRules::<u32, i32>::new()
            .never_retry_if(|_| panic!("never"))
            .strategy_if(|_| panic!("override"), 9, Backoff::constant(Duration::ZERO))
            .retry_if(|_| panic!("classifier"));
        assert_eq!(rules.judge(&Err(1), &name()), Verdict::Retry(Kind::Base));
    }

    #[test]
    fn hints_are_read_and_panics_contained() {
        let rules = RetryRules::<u32, u64>::new().retry_after(|result| match result {
            Err(0) => panic!("hint"),
            Err(secs) => Some(Duration::from_secs(*secs)),
            Ok(_) => None,
        });
        assert_eq!(
            rules.advised_wait(&Err(2), &name()),
            Some(Duration::from_secs(2))
        );
        assert_eq!(rules.advised_wait(&Err(0), &name()), None);
        assert_eq!(
            RetryRules::<u32, u64>::new().advised_wait(&Err(2), &name()),
            None
        );
    }

    #[test]
    fn on_error_sees_the_retry_outcome() {
        use std::sync::Mutex;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let rules = RetryRules::<u32, i32>::new()
            .never_retry_if(|code| *code == 400)
            .strategy_if(|code| *code == 429, 3, Backoff::constant(Duration::ZERO))
            .on_error(move |code, outcome| log.lock().unwrap().push((*code, outcome)));
        for code in [400, 429, 500] {
            rules.judge(&Err(code), &name());
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (400, Outcome::Ignored),
                (429, Outcome::Failure),
                (500, Outcome::Failure)
            ]
        );
    }
}
