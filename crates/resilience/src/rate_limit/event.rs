//! The rate limiter's events.

use std::fmt;
use std::time::Duration;

use super::{Decision, Denial};
use crate::events::{Emitter, EventKind, Payload, Seconds};
use crate::PatternKind;
use crate::Rate;

/// Something that happened in a rate limiter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RateLimiterEvent {
    /// A request was within its rate.
    RateLimitPassed {
        /// The key, for a keyed limiter (`None` for a direct one).
        key: Option<String>,
        /// The rate it was checked against.
        rate: Rate,
        /// Requests still allowed right now.
        remaining: u32,
    },
    /// A request was denied.
    RateLimitExceeded {
        /// The key, for a keyed limiter (`None` for a direct one).
        key: Option<String>,
        /// The rate it was checked against.
        rate: Rate,
        /// Why: its budget was spent, or no room was left for a new key.
        reason: Denial,
        /// When a request would be allowed.
        retry_after: Option<Duration>,
    },
    /// A distributed limiter's backend (Redis) could not decide, so its failure policy did.
    BackendUnavailable {
        /// The key being checked.
        key: Option<String>,
        /// The policy that decided instead (`"fail_open"`, `"fail_closed"`, `"local"`).
        policy: &'static str,
        /// Why the backend could not decide, rendered for display.
        error: String,
    },
}

impl RateLimiterEvent {
    /// `"rate_limit_passed"`: a rate limiter allowed a request.
    pub const RATE_LIMIT_PASSED: EventKind =
        EventKind::builtin(PatternKind::RateLimiter, "rate_limit_passed", 23);
    /// `"rate_limit_exceeded"`: a rate limiter denied a request.
    pub const RATE_LIMIT_EXCEEDED: EventKind =
        EventKind::builtin(PatternKind::RateLimiter, "rate_limit_exceeded", 24);
    /// `"rate_limit_backend_unavailable"`: a distributed rate limiter's backend could not decide; its failure policy did.
    pub const RATE_LIMIT_BACKEND_UNAVAILABLE: EventKind = EventKind::builtin(
        PatternKind::RateLimiter,
        "rate_limit_backend_unavailable",
        25,
    );
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::RATE_LIMIT_PASSED,
        Self::RATE_LIMIT_EXCEEDED,
        Self::RATE_LIMIT_BACKEND_UNAVAILABLE,
    ];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RateLimitPassed { .. } => Self::RATE_LIMIT_PASSED,
            Self::RateLimitExceeded { .. } => Self::RATE_LIMIT_EXCEEDED,
            Self::BackendUnavailable { .. } => Self::RATE_LIMIT_BACKEND_UNAVAILABLE,
        }
    }
}

impl Payload for RateLimiterEvent {
    fn kind(&self) -> EventKind {
        // The inherent method, which callers use without importing the trait.
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::RateLimitPassed {
                key,
                rate,
                remaining,
            } => {
                if let Some(key) = key {
                    visit("key", key);
                }
                visit("rate", rate);
                visit("remaining", remaining);
            }
            Self::RateLimitExceeded {
                key,
                rate,
                reason,
                retry_after,
            } => {
                if let Some(key) = key {
                    visit("key", key);
                }
                visit("rate", rate);
                visit("reason", reason);
                if let Some(after) = retry_after {
                    visit("retry_after", &Seconds(*after));
                }
            }
            Self::BackendUnavailable { key, policy, error } => {
                if let Some(key) = key {
                    visit("key", key);
                }
                visit("policy", policy);
                visit("error", error);
            }
        }
    }
}

/// Reports one decision of a rate limiter: emits `rate_limit_passed` or `rate_limit_exceeded`
/// through `emitter` and logs denials at `DEBUG` under `resilience::rate_limit`.
///
/// This crate's limiters call it after every check, and a limiter implemented in another crate
/// (over a shared store, say) should too: its users then get the same events, fields and logs
/// whichever limiter they run, and with nobody listening it costs one atomic load per bus (and,
/// for a denial, one for the most verbose level any `tracing` subscriber wants) and allocates
/// nothing. `name` is the limiter's name as logged, `key` the key checked (`None` for
/// a limiter without keys), `rate` the rate it was checked against.
///
/// Call it after every lock is released: listeners run here, synchronously.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resilience::events::Emitter;
/// use resilience::rate_limit::{report_decision, Decision, Denial, RateLimiterEvent};
/// use resilience::Rate;
///
/// // A limiter of another crate owns an emitter and returns `emitter.local()` as `events()`.
/// let emitter = Emitter::new(Arc::from("api"));
/// emitter.local().on(RateLimiterEvent::RATE_LIMIT_EXCEEDED, |event| {
///     assert_eq!(event.metadata()["key"], "ada");
///     assert_eq!(event.metadata()["retry_after"], "0.5");
/// });
///
/// // What its store decided for key "ada":
/// let half = Duration::from_millis(500);
/// let decision = Decision::denied(Denial::RateExceeded, 2, half, Some(half));
/// report_decision(&emitter, "api", Some("ada"), Rate::per_second(2), &decision);
/// ```
#[inline]
pub fn report_decision(
    emitter: &Emitter,
    name: &str,
    key: Option<&str>,
    rate: Rate,
    decision: &Decision,
) {
    if watched(emitter, decision) {
        emit_and_log(emitter, name, key, rate, decision);
    }
}

/// Whether someone listens for `decision`'s event or logs it (a denial, at `DEBUG`): one
/// load per bus and, for a denial, one for the level, gathered into one answer.
#[inline]
pub(crate) fn watched(emitter: &Emitter, decision: &Decision) -> bool {
    let (kind, logged) = match decision.denial() {
        None => (RateLimiterEvent::RATE_LIMIT_PASSED, false),
        Some(_) => (
            RateLimiterEvent::RATE_LIMIT_EXCEEDED,
            tracing::level_enabled!(tracing::Level::DEBUG),
        ),
    };
    // Both asked, without a branch between them.
    logged | emitter.wants(kind)
}

/// Emits `decision`'s event and logs a denial: what [`report_decision`] does once someone
/// is [`watched`]. Out of line, as it is off the path of an unwatched limiter.
#[cold]
#[inline(never)]
pub(crate) fn emit_and_log(
    emitter: &Emitter,
    name: &str,
    key: Option<&str>,
    rate: Rate,
    decision: &Decision,
) {
    match decision.denial() {
        None => emitter.emit(|| RateLimiterEvent::RateLimitPassed {
            key: key.map(str::to_owned),
            rate,
            remaining: decision.remaining(),
        }),
        Some(reason) => {
            let retry_after = decision.retry_after();
            tracing::debug!(target: "resilience::rate_limit", limiter = name, key, %rate, %reason, ?retry_after, "rate limit exceeded");
            emitter.emit(|| RateLimiterEvent::RateLimitExceeded {
                key: key.map(str::to_owned),
                rate,
                reason,
                retry_after,
            });
        }
    }
}

// The names these kinds had when `EventKind` was an enum, kept (hidden, deprecated) so that
// code written against them still compiles; each says what replaces it.
#[expect(non_upper_case_globals, reason = "the former enum variants' names")]
impl EventKind {
    #[doc(hidden)]
    #[deprecated(note = "use `RateLimiterEvent::RATE_LIMIT_PASSED`")]
    pub const RateLimitPassed: Self = RateLimiterEvent::RATE_LIMIT_PASSED;
    #[doc(hidden)]
    #[deprecated(note = "use `RateLimiterEvent::RATE_LIMIT_EXCEEDED`")]
    pub const RateLimitExceeded: Self = RateLimiterEvent::RATE_LIMIT_EXCEEDED;
    #[doc(hidden)]
    #[deprecated(note = "use `RateLimiterEvent::RATE_LIMIT_BACKEND_UNAVAILABLE`")]
    pub const RateLimitBackendUnavailable: Self = RateLimiterEvent::RATE_LIMIT_BACKEND_UNAVAILABLE;
}
