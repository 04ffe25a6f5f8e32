//! [`LocalRateLimiter`]: a keyed rate limiter in memory, bounded by `max_keys`.

use super::budget::PerKey;
use super::{Decision, InMemoryRateLimiter};
use crate::Rate;

/// A keyed rate limiter in memory: one budget per key (per user, per client IP, per API
/// token), at most `max_keys` of them at once.
///
/// Cheap to clone; clones share every budget, so a limiter built once can be handed to every
/// task and service. It is the [`InMemoryRateLimiter`] over [`PerKey`] budgets. See the [module docs](super) for how it decides and what it does when
/// the keys run out.
///
/// ```
/// use resilience::rate_limit::LocalRateLimiter;
/// use resilience::Rate;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let limiter = LocalRateLimiter::builder("login").rate("3/minute".parse()?).build()?;
/// for _ in 0..3 {
///     assert!(limiter.check_now("ada").is_allowed());
/// }
/// assert!(!limiter.check_now("ada").is_allowed());
/// assert!(limiter.check_now("bob").is_allowed(), "each key has its own budget");
///
/// // aioresilience's style: the rate given per call, each (key, rate) pair its own budget.
/// assert!(limiter.check_rate_limit("ada", Rate::per_hour(100)));
/// # Ok(())
/// # }
/// ```
pub type LocalRateLimiter = InMemoryRateLimiter<PerKey>;

impl InMemoryRateLimiter<PerKey> {
    /// Decides one request for `key` at the configured rate, now.
    pub fn check_now(&self, key: &str) -> Decision {
        self.inner.decide(key)
    }

    /// Decides one request for `key` at `rate`, now; `(key, rate)` has a budget of its own,
    /// separate from the one [`check_now`](Self::check_now) uses.
    pub fn check_rate_now(&self, key: &str, rate: Rate) -> Decision {
        self.inner.decide_at(key, rate)
    }

    /// The decision [`check_now`](Self::check_now) would return for `key` now, without
    /// spending anything: how much of its budget is left (`remaining` after one more
    /// request), when it is whole again and, if the next request would be denied, when it
    /// would fit: at the same instant, exactly the decision the check gets. Nothing is
    /// counted, reported or stored, so peeking any number of times never changes what the
    /// next check decides. A key the limiter does not hold reports a
    /// whole budget; whether a full limiter has room for it ([`Denial::KeysExhausted`]) is
    /// only found out by a check.
    ///
    /// [`Denial::KeysExhausted`]: super::Denial::KeysExhausted
    ///
    /// ```
    /// use resilience::rate_limit::LocalRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), resilience::ConfigError> {
    /// let limiter = LocalRateLimiter::builder("api").rate("3/minute".parse()?).build()?;
    /// limiter.check_now("ada");
    /// for _ in 0..10 {
    ///     assert_eq!(limiter.peek("ada").remaining(), 1, "peeking spends nothing");
    /// }
    /// // At the same instant (the clock is paused here), the check decides what the peek saw.
    /// let peeked = limiter.peek("ada");
    /// assert_eq!(limiter.check_now("ada"), peeked);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peek(&self, key: &str) -> Decision {
        self.inner.peek(key, None)
    }

    /// The decision [`check_rate_now`](Self::check_rate_now) would return for `(key, rate)`
    /// now, without spending anything.
    pub fn peek_rate(&self, key: &str, rate: Rate) -> Decision {
        self.inner.peek(key, Some(rate))
    }

    /// aioresilience's `check_rate_limit(key, rate)`: whether a request for `key` fits `rate`.
    /// A bad rate cannot reach this point (a [`Rate`] is valid by
    /// construction), so nothing ever fails open.
    pub fn check_rate_limit(&self, key: &str, rate: Rate) -> bool {
        self.check_rate_now(key, rate).is_allowed()
    }
}
