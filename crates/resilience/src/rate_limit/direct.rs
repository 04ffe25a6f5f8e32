//! [`DirectRateLimiter`]: one budget for everything that passes through it.

use std::sync::atomic::Ordering;

use super::budget::OneBudget;
use super::{Decision, InMemoryRateLimiter, RateLimiter};
use crate::stage::{Admit, Stage};
use crate::{PatternKind, Rate, Rejection};

/// A single (unkeyed) rate limiter: one budget shared by every caller, such as the limit a
/// downstream API puts on this whole process.
///
/// With GCRA (the default) its whole state is one `AtomicU64` updated by compare-exchange:
/// no lock, no allocation. The other algorithms keep their state under a short
/// `std::sync::Mutex`. Cheap to clone; clones share the budget. It is the
/// [`InMemoryRateLimiter`] over [`OneBudget`]: everything but the budget is shared with the
/// keyed [`LocalRateLimiter`](super::LocalRateLimiter).
///
/// Through the [`RateLimiter`] trait it ignores keys: `check("a")` and `check("b")` spend the
/// same budget. Per-call rates (`check_rate`) each get a budget of their own, kept in a small
/// keyed store bounded by `max_keys`. It is a [`Stage`], so a pipeline can put it in
/// front of a call, and [`RateLimitLayer`](super::RateLimitLayer) makes it tower middleware.
///
/// ```
/// use resilience::rate_limit::DirectRateLimiter;
/// use resilience::Rate;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), resilience::ConfigError> {
/// let limiter = DirectRateLimiter::builder("partner-api").rate(Rate::per_second(2)).build()?;
/// assert_eq!(limiter.check_now().remaining(), 1);
/// assert_eq!(limiter.check_now().remaining(), 0);
/// let denied = limiter.try_acquire().unwrap_err();
/// assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
/// # Ok(())
/// # }
/// ```
pub type DirectRateLimiter = InMemoryRateLimiter<OneBudget>;

impl InMemoryRateLimiter<OneBudget> {
    /// Decides one request now.
    // Inlined where it is called, so the decision stays in registers.
    #[inline]
    pub fn check_now(&self) -> Decision {
        self.inner.decide("")
    }

    /// Decides one request at `rate` now, against that rate's own budget.
    pub fn check_rate_now(&self, rate: Rate) -> Decision {
        self.inner.decide_at("", rate)
    }

    /// The decision [`check_now`](Self::check_now) would return now, without spending
    /// anything: how much budget is left (`remaining` after one more request), when it is
    /// whole again, and, if the next request would be denied, when it would fit. Nothing is
    /// counted or reported, so peeking any number of times never changes what the next
    /// check decides.
    pub fn peek(&self) -> Decision {
        self.inner.peek("", None)
    }

    /// The decision [`check_rate_now`](Self::check_rate_now) would return now for `rate`,
    /// without spending anything.
    pub fn peek_rate(&self, rate: Rate) -> Decision {
        self.inner.peek("", Some(rate))
    }

    /// Decides one request now, as a `Result`: the decision if allowed, the [`Rejection`] with
    /// its `retry_after` if not. Never waits.
    #[inline]
    pub fn try_acquire(&self) -> Result<Decision, Rejection> {
        let decision = self.check_now();
        if decision.is_allowed() {
            Ok(decision)
        } else {
            Err(self.inner.rejection(&decision))
        }
    }
}

/// Spends one unit of the budget on admission, so the permit holds nothing. With a zero
/// `max_wait` (the default) it decides at once; otherwise it waits for the budget as
/// [`acquire`](RateLimiter::acquire) does.
impl Stage for DirectRateLimiter {
    type Permit = ();

    // Inlined into the caller's admission, so the answer is never copied through memory.
    #[inline]
    fn admit(&self) -> Admit<()> {
        if self.inner.max_wait.load(Ordering::Relaxed) == 0 {
            return Admit::ready(self.try_acquire().map(drop));
        }
        let limiter = self.clone();
        Admit::waiting(async move { RateLimiter::acquire(&limiter, "").await.map(drop) })
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::RateLimiter
    }
}
