//! [`RedisRateLimiterBuilder`]: the front door to a Redis-backed limiter.

use std::time::Duration;

use resilience::rate_limit::{Algorithm, LocalRateLimiter};
use resilience::{ConfigError, ConfigProblem, Rate};

use super::RedisRateLimiter;
use crate::keys::{self, DEFAULT_PREFIX};
use crate::{FailurePolicy, RedisBackend};

/// The in-memory fallback's bound on keys, as the core limiter's default.
const DEFAULT_LOCAL_MAX_KEYS: usize = 10_000;

/// Builds a [`RedisRateLimiter`]; nothing is checked until [`build`](Self::build). The rate
/// is required.
///
/// ```no_run
/// use resilience::rate_limit::Algorithm;
/// use resilience_redis::{FailurePolicy, RedisBackend, RedisRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379/").await?;
/// let limiter = RedisRateLimiter::builder("login", &backend)
///     .rate("5/minute".parse()?)
///     .algorithm(Algorithm::SlidingLog)
///     .failure_policy(FailurePolicy::Local)
///     .prefix("myapp")
///     .build()?;
/// # let _ = limiter;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Debug)]
pub struct RedisRateLimiterBuilder {
    name: String,
    backend: RedisBackend,
    rate: Option<Rate>,
    burst: Option<u32>,
    algorithm: Algorithm,
    prefix: String,
    policy: FailurePolicy,
    max_wait: Duration,
    local_max_keys: usize,
}

impl RedisRateLimiterBuilder {
    pub(super) fn new(name: String, backend: RedisBackend) -> Self {
        Self {
            name,
            backend,
            rate: None,
            burst: None,
            algorithm: Algorithm::Gcra,
            prefix: DEFAULT_PREFIX.to_owned(),
            policy: FailurePolicy::default(),
            max_wait: Duration::ZERO,
            local_max_keys: DEFAULT_LOCAL_MAX_KEYS,
        }
    }

    /// The rate `check` and `acquire` apply (required).
    pub fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Requests allowed at once; the rate's count unless set. Zero fails at `build`.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// [`Algorithm::Gcra`] (the default: one short string per key) or
    /// [`Algorithm::SlidingLog`] (a sorted set of the allowed requests in the window). The
    /// other algorithms have no Redis script and fail at `build`.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The first part of every Redis key (`resilience` by default); no braces or whitespace.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// What to decide while Redis cannot ([`FailurePolicy::FailOpen`] by default).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long `acquire` may wait for the budget (zero by default: it never waits).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The most keys the in-memory fallback of [`FailurePolicy::Local`] tracks (10,000 by
    /// default); unused with the other policies.
    pub fn local_max_keys(mut self, max_keys: usize) -> Self {
        self.local_max_keys = max_keys;
        self
    }

    /// Validates the settings and builds the limiter; the error names the first bad field.
    pub fn build(self) -> Result<RedisRateLimiter, ConfigError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(ConfigError::new("name", ConfigProblem::Empty));
        }
        let rate = Rate::from_builder(self.rate, self.burst)?;
        if !matches!(self.algorithm, Algorithm::Gcra | Algorithm::SlidingLog) {
            return Err(ConfigError::new(
                "algorithm",
                ConfigProblem::Invalid(format!(
                    "{} has no Redis script; use gcra or sliding_log",
                    self.algorithm
                )),
            ));
        }
        keys::check_prefix(&self.prefix)?;
        let local = match self.policy {
            FailurePolicy::Local => Some(
                LocalRateLimiter::builder(name)
                    .rate(rate)
                    .algorithm(self.algorithm)
                    .max_keys(self.local_max_keys)
                    .build()?,
            ),
            _ => None,
        };
        Ok(RedisRateLimiter::new(
            name,
            self.backend,
            rate,
            self.algorithm,
            &self.prefix,
            self.policy,
            self.max_wait,
            local,
        ))
    }
}
