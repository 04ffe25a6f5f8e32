//! [`RateLimiter`]: the one trait of every rate limiter, keyed or not, local or distributed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Decision;
use crate::stage::{Admit, Stage};
use crate::{PatternKind, Rate, Rejection, RejectionReason};

/// A rate limiter: decides whether a request for a key fits its rate.
///
/// Implemented by [`LocalRateLimiter`](super::LocalRateLimiter) (keyed, in memory),
/// [`DirectRateLimiter`](super::DirectRateLimiter) (one budget; it ignores keys) and, in
/// `resilience-redis`, by limiters whose state lives in Redis. The methods return futures so a
/// distributed limiter can make its round trip; the in-memory ones decide before returning
/// and their futures are ready at once (they also have synchronous `check_now` methods).
///
/// * [`check`](Self::check) / [`check_rate`](Self::check_rate) never wait: they decide now,
///   spending one unit of budget if allowed. A denial spends nothing.
/// * [`acquire`](Self::acquire) / [`acquire_rate`](Self::acquire_rate) wait until the request
///   fits, for at most [`max_wait`](Self::max_wait), and otherwise reject at once with a
///   [`Rejection`] carrying the exact `retry_after`: they never sleep only to fail.
/// * `check_rate(key, rate)` is aioresilience's `check_rate_limit(key, rate)`: the rate is given
///   per call, and each `(key, rate)` pair has a budget of its own, separate from the budget
///   `check(key)` uses at the limiter's configured rate.
///
/// A distributed implementation never fails: when its backend is unreachable it decides by
/// its failure policy (allow, deny, or decide locally) and may report a denial reason of its
/// own through [`Decision::denied`].
///
/// ```
/// use resilience::rate_limit::{LocalRateLimiter, RateLimiter};
/// use resilience::Rate;
///
/// /// Generic over where the state lives.
/// async fn handle(limiter: &impl RateLimiter, user: &str) -> Result<String, String> {
///     let decision = limiter.check(user).await;
///     if decision.is_allowed() {
///         Ok(format!("hello {user}, {} left", decision.remaining()))
///     } else {
///         Err(format!("slow down, retry in {:?}", decision.retry_after().unwrap()))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = LocalRateLimiter::builder("api").rate(Rate::per_second(2)).build()?;
/// assert_eq!(handle(&limiter, "ada").await?, "hello ada, 1 left");
/// assert_eq!(handle(&limiter, "ada").await?, "hello ada, 0 left");
/// assert_eq!(handle(&limiter, "ada").await.unwrap_err(), "slow down, retry in 500ms");
/// assert!(handle(&limiter, "bob").await.is_ok());
/// # Ok(())
/// # }
/// ```
pub trait RateLimiter: Send + Sync {
    /// The limiter's name, for rejections, events and metrics.
    fn name(&self) -> &str;

    /// The rate `check` and `acquire` apply.
    fn rate(&self) -> Rate;

    /// How long `acquire` may wait for the budget.
    fn max_wait(&self) -> Duration;

    /// Decides one request for `key` at the configured rate, without waiting.
    fn check(&self, key: &str) -> impl Future<Output = Decision> + Send;

    /// Decides one request for `key` at `rate`, without waiting; `(key, rate)` has a budget of
    /// its own.
    fn check_rate(&self, key: &str, rate: Rate) -> impl Future<Output = Decision> + Send;

    /// Decides like [`check`](Self::check) (`rate` `None`) or
    /// [`check_rate`](Self::check_rate) (`Some(rate)`), counted and reported as they are, if
    /// the limiter can tell without awaiting anything (an in-memory one can); `None` if it
    /// cannot (a networked one), and then nothing was spent or counted. Lets a caller with
    /// nothing else to wait for skip a future. The default answers `None`.
    fn check_at_once(&self, key: &str, rate: Option<Rate>) -> Option<Decision> {
        let _ = (key, rate);
        None
    }

    /// Decides like [`check`](Self::check) (`rate` `None`) or
    /// [`check_rate`](Self::check_rate) (`Some(rate)`), spending the budget if allowed, but
    /// leaves the decision out of the metrics and emits no event for it: the caller reports
    /// it later, once, through [`report`](Self::report).
    ///
    /// [`acquire`](Self::acquire) checks this way on every wake-up of one wait, so a wait
    /// counts as one decision, however often it re-checks. The default checks and reports at
    /// once (an implementation without it counts every wake-up); this crate's limiters and
    /// the Redis one override both.
    fn check_unreported(
        &self,
        key: &str,
        rate: Option<Rate>,
    ) -> impl Future<Output = Decision> + Send {
        async move {
            match rate {
                Some(rate) => self.check_rate(key, rate).await,
                None => self.check(key).await,
            }
        }
    }

    /// Counts `decision`, made by [`check_unreported`](Self::check_unreported) for `key` at
    /// `rate` (`None`: the configured rate), and emits its `rate_limit_passed` or
    /// `rate_limit_exceeded` event. The default does nothing, matching the default
    /// `check_unreported`, which has reported already.
    fn report(&self, key: &str, rate: Option<Rate>, decision: &Decision) {
        let _ = (key, rate, decision);
    }

    /// Waits until a request for `key` fits the configured rate, or rejects at once if that
    /// would take longer than [`max_wait`](Self::max_wait).
    ///
    /// Waiting re-checks when the budget should allow it; another caller may take that slot
    /// first, in which case it waits again within the same limit (waiters are not queued in
    /// order). Dropping the future gives up without spending anything.
    ///
    /// A wait counts once in the metrics and emits one event: `rate_limit_passed` when it
    /// gets through, `rate_limit_exceeded` when it gives up. A wait dropped before either
    /// was never decided and counts nothing.
    fn acquire(&self, key: &str) -> impl Future<Output = Result<Decision, Rejection>> + Send {
        wait_until_allowed(self, key, None)
    }

    /// Like [`acquire`](Self::acquire), at `rate` (the budget of `(key, rate)`).
    fn acquire_rate(
        &self,
        key: &str,
        rate: Rate,
    ) -> impl Future<Output = Result<Decision, Rejection>> + Send {
        wait_until_allowed(self, key, Some(rate))
    }

    /// This limiter as a [`Stage`] spending the budget of `key`, waiting for it as
    /// [`acquire`](Self::acquire) does: a keyed or distributed limiter in a
    /// [`Pipeline`](crate::Pipeline) slot or a tower layer.
    fn for_key(self, key: impl Into<Arc<str>>) -> ForKey<Self>
    where
        Self: Sized + Clone + 'static,
    {
        ForKey {
            limiter: self,
            key: key.into(),
        }
    }

    /// The rejection for a denied `decision`: pattern [`PatternKind::RateLimiter`], reason
    /// [`RejectionReason::RateLimited`] ([`RejectionReason::BackendUnavailable`] for a
    /// [`Denial::BackendUnavailable`](super::Denial::BackendUnavailable)), and the decision's
    /// `retry_after`.
    ///
    /// The default allocates the name; implementations holding an `Arc<str>` return a clone.
    fn rejection(&self, decision: &Decision) -> Rejection {
        rejection_of(Arc::from(self.name()), decision)
    }
}

/// The rejection a rate limiter named `name` makes of a denied `decision`: see
/// [`RateLimiter::rejection`].
pub fn rejection_of(name: Arc<str>, decision: &Decision) -> Rejection {
    let reason = match decision.denial() {
        Some(super::Denial::BackendUnavailable) => RejectionReason::BackendUnavailable,
        _ => RejectionReason::RateLimited,
    };
    Rejection::new(
        PatternKind::RateLimiter,
        name,
        reason,
        decision.retry_after(),
    )
}

/// Checks, and while denied sleeps for the decision's `retry_after` as long as that stays
/// within the limiter's `max_wait`.
///
/// The wake-ups check unreported and only the outcome is reported: a caller that waits
/// through three wake-ups made one request, and metrics and events should say so.
async fn wait_until_allowed<L>(
    limiter: &L,
    key: &str,
    rate: Option<Rate>,
) -> Result<Decision, Rejection>
where
    L: RateLimiter + ?Sized,
{
    let started = Instant::now();
    let deadline = started.checked_add(limiter.max_wait());
    loop {
        let decision = limiter.check_unreported(key, rate).await;
        if decision.is_allowed() {
            limiter.report(key, rate, &decision);
            return Ok(decision);
        }
        let retry_at = decision
            .retry_after()
            .and_then(|after| Instant::now().checked_add(after));
        match (retry_at, deadline) {
            (Some(at), Some(deadline)) if at <= deadline => tokio::time::sleep_until(at).await,
            (Some(at), None) => tokio::time::sleep_until(at).await,
            _ => {
                limiter.report(key, rate, &decision);
                return Err(limiter.rejection(&decision));
            }
        }
    }
}

/// A [`RateLimiter`] admitting calls against the budget of one key; made by
/// [`RateLimiter::for_key`].
///
/// Every admission is a wait (boxed), since a distributed limiter decides after a round
/// trip; the single-budget [`DirectRateLimiter`](super::DirectRateLimiter) is a stage of its
/// own that decides without one.
#[derive(Debug, Clone)]
pub struct ForKey<L> {
    limiter: L,
    key: Arc<str>,
}

impl<L> ForKey<L> {
    /// The key whose budget is spent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.limiter
    }
}

impl<L: RateLimiter + Clone + 'static> Stage for ForKey<L> {
    /// The budget is spent on admission: nothing to release.
    type Permit = ();

    fn admit(&self) -> Admit<()> {
        let this = self.clone();
        Admit::waiting(async move { this.limiter.acquire(&this.key).await.map(drop) })
    }

    fn name(&self) -> &str {
        self.limiter.name()
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::RateLimiter
    }
}
