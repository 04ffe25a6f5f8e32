//! The one error type every pattern returns, and the typed rejection inside it.
//!
//! An operation protected by any pattern fails in exactly one of four ways, and [`Error`] keeps
//! them apart so callers can `match` instead of parsing strings:
//!
//! * [`Error::Inner`]: the operation ran and returned its own error, handed back untouched;
//! * [`Error::Rejected`]: a pattern refused to run the operation at all (circuit open, bulkhead
//!   full, rate limited, ...); the [`Rejection`] says who refused, why, and when to come back;
//! * [`Error::Timeout`]: the operation ran out of time and was cancelled;
//! * [`Error::FallbackFailed`]: the operation failed and so did its fallback.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod name;

pub(crate) use name::Name;

/// Which pattern produced an event, a rejection or a metric snapshot.
///
/// The string forms ([`PatternKind::as_str`]) are aioresilience's `pattern_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum PatternKind {
    /// [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker).
    CircuitBreaker,
    /// Bulkhead.
    Bulkhead,
    /// Timeout.
    Timeout,
    /// Deadline shared by several operations.
    Deadline,
    /// Retry.
    Retry,
    /// Rate limiter.
    RateLimiter,
    /// Load shedder.
    LoadShedder,
    /// Backpressure.
    Backpressure,
    /// Fallback.
    Fallback,
    /// Adaptive concurrency limiter.
    AdaptiveConcurrency,
    /// Hedging: extra attempts raced against a slow one.
    Hedge,
    /// Cache of results with a time to live.
    Cache,
    /// Request coalescing (single-flight).
    Coalesce,
    /// Chaos: fault, outcome, latency and behaviour injection.
    Chaos,
    /// Client-side adaptive throttling.
    Throttle,
    /// A stage written outside this crate, under its own `snake_case` name.
    #[cfg_attr(feature = "serde", serde(skip_deserializing))]
    Custom(&'static str),
}

impl PatternKind {
    /// The pattern's name in `snake_case`, as the Python libraries spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CircuitBreaker => "circuit_breaker",
            Self::Bulkhead => "bulkhead",
            Self::Timeout => "timeout",
            Self::Deadline => "deadline",
            Self::Retry => "retry",
            Self::RateLimiter => "rate_limiter",
            Self::LoadShedder => "load_shedder",
            Self::Backpressure => "backpressure",
            Self::Fallback => "fallback",
            Self::AdaptiveConcurrency => "adaptive_concurrency",
            Self::Hedge => "hedge",
            Self::Cache => "cache",
            Self::Coalesce => "coalesce",
            Self::Chaos => "chaos",
            Self::Throttle => "throttle",
            Self::Custom(name) => name,
        }
    }

    /// Human form used in messages ("circuit breaker").
    const fn label(self) -> &'static str {
        match self {
            Self::CircuitBreaker => "circuit breaker",
            Self::RateLimiter => "rate limiter",
            Self::LoadShedder => "load shedder",
            Self::AdaptiveConcurrency => "adaptive concurrency limiter",
            Self::Coalesce => "coalescer",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for PatternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a pattern refused to run an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RejectionReason {
    /// The circuit is open: the protected dependency recently failed.
    CircuitOpen,
    /// The circuit was forced open by an operator and stays open until reset.
    CircuitForcedOpen,
    /// The circuit is half-open and all trial calls (probes) are taken.
    HalfOpenFull,
    /// Every concurrent slot is taken and there is no queue.
    CapacityFull,
    /// Every slot is taken and the waiting queue is full too.
    QueueFull,
    /// The caller waited in the queue for longer than allowed.
    WaitTimeout,
    /// The caller exceeded its rate.
    RateLimited,
    /// The system is overloaded and this request was shed.
    LoadShed,
    /// Too much work is pending downstream.
    Backpressure,
    /// The adaptive concurrency limit is reached.
    ConcurrencyLimit,
    /// The shared deadline had already passed before the operation started.
    DeadlineExpired,
    /// A backend the pattern decides with (the Redis holding a distributed rate limiter's
    /// budgets) could not be reached, and the pattern's failure policy refuses meanwhile.
    /// Not the caller's doing: HTTP integrations answer 503, not 429.
    BackendUnavailable,
    /// The request could not be copied for the extra attempts of a hedging layer, so it was
    /// not sent at all rather than sent unhedged. The caller's doing, not the dependency's.
    NotCloneable,
    /// The shared execution this call joined (request coalescing) panicked, so there is no
    /// result to share; this call's own operation never ran.
    LeaderPanicked,
    /// The client throttled itself: the dependency has lately refused so much of what it was
    /// sent that this request was dropped locally instead of adding to its load.
    Throttled,
    /// A stage written outside this crate refused, for the reason it names (`snake_case`).
    Custom(&'static str),
}

impl RejectionReason {
    /// The reason in `snake_case`, stable for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::CircuitForcedOpen => "circuit_forced_open",
            Self::HalfOpenFull => "half_open_full",
            Self::CapacityFull => "capacity_full",
            Self::QueueFull => "queue_full",
            Self::WaitTimeout => "wait_timeout",
            Self::RateLimited => "rate_limited",
            Self::LoadShed => "load_shed",
            Self::Backpressure => "backpressure",
            Self::ConcurrencyLimit => "concurrency_limit",
            Self::DeadlineExpired => "deadline_expired",
            Self::BackendUnavailable => "backend_unavailable",
            Self::NotCloneable => "not_cloneable",
            Self::LeaderPanicked => "leader_panicked",
            Self::Throttled => "throttled",
            Self::Custom(reason) => reason,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::CircuitOpen => "is open",
            Self::CircuitForcedOpen => "is forced open",
            Self::HalfOpenFull => "is half-open and all probes are taken",
            Self::CapacityFull => "is at capacity",
            Self::QueueFull => "is at capacity and its queue is full",
            Self::WaitTimeout => "timed out waiting for a slot",
            Self::RateLimited => "rate limit exceeded",
            Self::LoadShed => "shed the request under load",
            Self::Backpressure => "is applying backpressure",
            Self::ConcurrencyLimit => "is at its concurrency limit",
            Self::DeadlineExpired => "expired before the operation started",
            Self::BackendUnavailable => "cannot reach its backend",
            Self::NotCloneable => "cannot copy the request for its extra attempts",
            Self::LeaderPanicked => "saw the shared call it joined panic",
            Self::Throttled => "throttled the request: the dependency is refusing much of its load",
            Self::Custom(reason) => reason,
        }
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pattern's refusal to run an operation.
///
/// Cheap to create and clone: rejecting allocates nothing, and a pattern's own rejections
/// copy a short instance name rather than share it. `retry_after` is computed from the pattern's real state (the remaining open time of
/// a circuit, the time until the next token of a rate limiter) and is `None` only when no
/// honest estimate exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pattern: PatternKind,
    name: Name,
    reason: RejectionReason,
    retry_after: Option<Duration>,
}

impl Rejection {
    /// A rejection by the instance `name` of `pattern`.
    pub fn new(
        pattern: PatternKind,
        name: Arc<str>,
        reason: RejectionReason,
        retry_after: Option<Duration>,
    ) -> Self {
        Self::named(pattern, Name::from(name), reason, retry_after)
    }

    /// A rejection carrying a pattern's own copy of its name (see [`Name`]).
    pub(crate) fn named(
        pattern: PatternKind,
        name: Name,
        reason: RejectionReason,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            pattern,
            name,
            reason,
            retry_after,
        }
    }

    /// The kind of pattern that refused.
    pub fn pattern(&self) -> PatternKind {
        self.pattern
    }

    /// The name of the instance that refused.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why it refused.
    pub fn reason(&self) -> RejectionReason {
        self.reason
    }

    /// How long until a new attempt may be admitted, when it can be known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.pattern.label(),
            self.name,
            self.reason.describe()
        )?;
        if let Some(after) = self.retry_after {
            write!(f, ", retry after {after:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// The error of an operation run through a resilience pattern.
///
/// `E` is the operation's own error type, which is never wrapped, boxed or converted.
/// The `Display` wording is for humans and is not a stable contract; match on the variants.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E> {
    /// The operation ran and failed with its own error.
    Inner(E),
    /// A pattern refused to run the operation.
    Rejected(Rejection),
    /// The operation did not finish in time and was cancelled.
    Timeout {
        /// How long the operation had run when it was cancelled.
        elapsed: Duration,
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// A retry policy gave up: every attempt failed, or it ran out of time or budget.
    RetryExhausted {
        /// Attempts made, the first call included.
        attempts: u32,
        /// The last attempt's error; `None` when the last attempt returned a value that the
        /// retry's result predicate rejected (the value is dropped, never passed off as a
        /// success).
        last: Option<Box<Self>>,
    },
    /// The operation failed and its fallback failed too.
    FallbackFailed {
        /// Why the fallback was tried.
        primary: Box<Self>,
        /// The error of the last fallback tried.
        fallback: E,
    },
}

impl<E> Error<E> {
    /// Whether a pattern refused to run the operation.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }

    /// Whether the operation timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Whether a retry policy gave up.
    pub fn is_retry_exhausted(&self) -> bool {
        matches!(self, Self::RetryExhausted { .. })
    }

    /// Whether this is the operation's own error.
    pub fn is_inner(&self) -> bool {
        matches!(self, Self::Inner(_))
    }

    /// The rejection, if a pattern refused to run the operation.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// When to try again, if a pattern refused and could tell.
    pub fn retry_after(&self) -> Option<Duration> {
        self.rejection().and_then(Rejection::retry_after)
    }

    /// The operation's own error, if that is what this is.
    pub fn inner(&self) -> Option<&E> {
        match self {
            Self::Inner(error) => Some(error),
            _ => None,
        }
    }

    /// Turns this into the operation's own error, if that is what it is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(error) => Some(error),
            _ => None,
        }
    }

    /// Maps the operation's error type, keeping every other variant.
    pub fn map_inner<F, E2>(self, mut f: F) -> Error<E2>
    where
        F: FnMut(E) -> E2,
    {
        self.map_with(&mut f)
    }

    // Through a trait object, so the recursion into `primary` does not instantiate a new
    // closure type at every level.
    fn map_with<E2>(self, f: &mut dyn FnMut(E) -> E2) -> Error<E2> {
        match self {
            Self::Inner(error) => Error::Inner(f(error)),
            Self::Rejected(rejection) => Error::Rejected(rejection),
            Self::Timeout { elapsed, limit } => Error::Timeout { elapsed, limit },
            Self::RetryExhausted { attempts, last } => Error::RetryExhausted {
                attempts,
                last: last.map(|last| Box::new(last.map_with(f))),
            },
            Self::FallbackFailed { primary, fallback } => Error::FallbackFailed {
                primary: Box::new(primary.map_with(f)),
                fallback: f(fallback),
            },
        }
    }
}

impl<E> Error<Error<E>> {
    /// Removes one level of nesting, as when one pattern's tower layer wraps another's: an
    /// inner error of this crate's kind becomes the error itself. A fallback that failed with
    /// something other than the operation's own error (say, a rejection) is reported as that
    /// error.
    pub fn flatten(self) -> Error<E> {
        match self {
            Self::Inner(inner) => inner,
            Self::Rejected(rejection) => Error::Rejected(rejection),
            Self::Timeout { elapsed, limit } => Error::Timeout { elapsed, limit },
            Self::RetryExhausted { attempts, last } => Error::RetryExhausted {
                attempts,
                last: last.map(|last| Box::new(last.flatten())),
            },
            Self::FallbackFailed {
                primary,
                fallback: Error::Inner(fallback),
            } => Error::FallbackFailed {
                primary: Box::new(primary.flatten()),
                fallback,
            },
            // The fallback itself was refused or timed out: that is the error to report.
            Self::FallbackFailed { fallback, .. } => fallback,
        }
    }
}

impl<E> From<Rejection> for Error<E> {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner(error) => error.fmt(f),
            Self::Rejected(rejection) => rejection.fmt(f),
            Self::Timeout { elapsed, limit } => {
                write!(f, "operation timed out after {elapsed:?} (limit {limit:?})")
            }
            Self::RetryExhausted {
                attempts,
                last: Some(last),
            } => write!(f, "gave up after {attempts} attempts: {last}"),
            Self::RetryExhausted {
                attempts,
                last: None,
            } => write!(
                f,
                "gave up after {attempts} attempts: the last result was rejected"
            ),
            Self::FallbackFailed { primary, fallback } => {
                write!(f, "fallback failed: {fallback} (after: {primary})")
            }
        }
    }
}

impl<E> std::error::Error for Error<E>
where
    E: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Inner(error) => Some(error),
            Self::Rejected(rejection) => Some(rejection),
            Self::Timeout { .. } => None,
            Self::RetryExhausted { last, .. } => last
                .as_deref()
                .map(|last| last as &(dyn std::error::Error + 'static)),
            Self::FallbackFailed { fallback, .. } => Some(fallback),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Rejection {
        Rejection::new(
            PatternKind::CircuitBreaker,
            Arc::from("payments"),
            RejectionReason::CircuitOpen,
            Some(Duration::from_secs(3)),
        )
    }

    #[test]
    fn rejection_display_names_pattern_instance_and_reason() {
        assert_eq!(
            open().to_string(),
            "circuit breaker payments is open, retry after 3s"
        );
    }

    #[test]
    fn accessors_and_predicates() {
        let error: Error<std::io::Error> = open().into();
        assert!(error.is_rejected());
        assert!(!error.is_timeout());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            error.rejection().map(Rejection::reason),
            Some(RejectionReason::CircuitOpen)
        );
        assert!(error.into_inner().is_none());

        let inner: Error<&str> = Error::Inner("boom");
        assert_eq!(inner.inner(), Some(&"boom"));
        assert_eq!(inner.map_inner(str::len).into_inner(), Some(4));
    }

    #[test]
    fn source_is_the_operations_error() {
        use std::error::Error as _;
        let io = std::io::Error::other("disk");
        let error = Error::Inner(io);
        assert_eq!(error.source().unwrap().to_string(), "disk");
    }
}
